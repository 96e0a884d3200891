"""``python -m aigc_core bench``: speed and quality figures for this machine.

Each area has a module in :mod:`aigc_core.benchmarks` with ``run(quick)``
returning flat ``{"key": value}`` figures; this collects and prints them.
It is a command, not a timed test: the figures go into closing notes and the
README, not into assertions.
"""

from __future__ import annotations

import importlib
import platform
import time

import torch

SECTIONS = ["images", "text", "tabular", "metrics"]
#: sections run only when asked for by name (``--only``): long trainings, name -> (module, function)
ON_REQUEST = {"presets": ("presets", "run"), "image_presets": ("images", "preset_figures")}


def run_bench(quick: bool = False, only: str | None = None, echo=print) -> dict:
    from .train.device import device_name, pick_device

    device = pick_device("auto")
    results: dict = {"device": device_name(device), "torch": torch.__version__, "python": platform.python_version(),
                     "threads": torch.get_num_threads(), "quick": quick}
    chosen = [s.strip() for s in only.split(",")] if only else SECTIONS
    echo(f"AIGC Studio bench on {results['device']} (torch {results['torch']}, {results['threads']} threads)")
    for section in chosen:
        module, function = ON_REQUEST.get(section, (section, "run"))
        mod = importlib.import_module(f"aigc_core.benchmarks.{module}")
        t0 = time.perf_counter()
        figures = getattr(mod, function)(quick=quick)
        echo(f"\n[{section}] ({time.perf_counter() - t0:.0f} s)")
        for k, v in figures.items():
            echo(f"  {k:40s} {v:.4g}" if isinstance(v, float) else f"  {k:40s} {v}")
        results.update(figures)
    return results
