"""What the training device will be, found without importing torch.

Importing torch costs seconds on a small machine; the device badge is on
every page, including the first one a visitor opens, so it is read from
files instead: torch's own ``version.py`` (was it built with CUDA?), the
NVIDIA driver's ``/proc`` entries (is there a GPU, and its name?) and the
platform (Apple silicon has MPS). Once torch is loaded anyway, its answer
(:func:`aigc_core.train.device.pick_device`) is used instead.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
from pathlib import Path

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def _torch_cuda_build() -> bool:
    """Whether the installed torch was built with CUDA (its version.py says ``cuda = '12.4'`` or ``None``)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    version = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        text = version.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^cuda\b[^=]*=\s*['\"]", text, re.M) is not None


def _nvidia_gpu_names(root: Path = NVIDIA_GPUS) -> list[str]:
    names = []
    try:
        for gpu in sorted(root.iterdir()):
            info = (gpu / "information").read_text(encoding="utf-8", errors="replace")
            m = re.search(r"^Model:\s*(.+)$", info, re.M)
            names.append(m.group(1).strip() if m else "NVIDIA GPU")
    except OSError:
        pass
    return names


def device_badge() -> str:
    """The device ``auto`` trains on, in words: a GPU's name, 'Apple MPS' or 'CPU (N cores)'."""
    if "torch" in sys.modules:  # loaded already: ask it, it knows best
        from .device import device_name, pick_device

        return device_name(pick_device("auto"))
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    if not hidden and _torch_cuda_build():
        gpus = _nvidia_gpu_names()
        if gpus:
            return gpus[0]
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "Apple MPS"
    return f"CPU ({os.cpu_count() or 1} cores)"
