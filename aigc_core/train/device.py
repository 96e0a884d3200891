"""The one place that picks the training device."""

from __future__ import annotations

import functools

import torch

from ..errors import UserError


def pick_device(choice: str = "auto") -> torch.device:
    """``auto`` = CUDA, then Apple MPS, then CPU; an explicit choice that is not
    available is a :class:`UserError`."""
    choice = (choice or "auto").lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise UserError("device 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'")
    if choice not in {"cpu", "cuda", "mps"}:
        raise UserError(f"unknown device {choice!r}; use auto, cpu, cuda or mps")
    return torch.device(choice)


def device_type(choice: str = "auto") -> str:
    """The kind of device a run with this choice trains on (``cpu``, ``cuda``,
    ``mps``): what a preset is fitted for. An unavailable explicit choice falls
    back to ``auto`` here; starting the run still refuses it."""
    try:
        return pick_device(choice).type
    except UserError:
        return pick_device("auto").type


def device_name(device: torch.device) -> str:
    """A human name for the badge: the GPU's name, 'Apple MPS' or 'CPU (N threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


@functools.lru_cache(maxsize=1)
def cpu_multiplies_in_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX)
    in /proc/cpuinfo's flags: bf16 autocast then runs about twice as fast as fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 autocast on CUDA (when ``auto`` or ``bf16``); None means plain fp32."""
    if precision == "fp32":
        return None
    if device.type == "cuda" and (precision in {"auto", "bf16"}) and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "bf16" and device.type == "cpu":
        return torch.bfloat16
    return None
