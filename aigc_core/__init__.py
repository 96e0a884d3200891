"""AIGC Studio engine: data, generative models, trainers, run store and metrics.

This package never imports streamlit: everything here works from the command
line (``python -m aigc_core``), from tests and from notebooks.
"""

__version__ = "0.1.0"
