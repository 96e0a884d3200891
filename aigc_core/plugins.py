"""Modules named in ``$AIGC_PLUGINS`` that register their own models or data sets.

Its own module (not the registry) because both the model registry and the
data catalog read it, and neither may import the other's layer for it.
"""

from __future__ import annotations

import os


def plugin_modules() -> list[str]:
    """Extra modules named in ``$AIGC_PLUGINS`` (comma-separated) that register
    their own models or data sets; worker processes import them too."""
    return [m.strip() for m in os.environ.get("AIGC_PLUGINS", "").split(",") if m.strip()]
