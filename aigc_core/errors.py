"""One exception type for mistakes a user can make.

Anything raised as a :class:`UserError` carries a message written for a person
(what went wrong and what to do next). Pages show it with ``st.error`` and the
command line prints ``error: <message>`` and exits non-zero; neither shows a
traceback.
"""


class UserError(Exception):
    """A problem caused by input the user gave us, explained in plain words."""
