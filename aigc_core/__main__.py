"""``python -m aigc_core ...``: see :mod:`aigc_core.cli`."""

import sys

from .cli import main

sys.exit(main())
