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


#: --texts / --tables / --image-sets: which data sets a section asked for by name trains on
#: (option -> (the section, its function's keyword, what the names are called))
SET_OPTIONS = {"texts": ("presets", "texts", "text corpora"), "tables": ("presets", "tables", "tables"),
               "image_sets": ("image_presets", "sets", "image sets")}


def known_sets() -> dict[str, list[str]]:
    """The data-set names each of :data:`SET_OPTIONS` accepts."""
    from .benchmarks import corpora, images

    return {"texts": [*corpora.TUNED, *corpora.UNSEEN], "tables": [*corpora.TUNED_TABLES, *corpora.UNSEEN_TABLES],
            "image_sets": [*images.TUNING_SETS, *images.UNSEEN_SETS]}


def chosen_sets(**lists: str | None) -> dict[str, list[str]]:
    """``texts="pydoc,licences"`` -> ``{"texts": ["pydoc", "licences"]}``,
    refusing a name the bench does not have (with the ones it has)."""
    from .errors import UserError

    known, out = known_sets(), {}
    for option, text in lists.items():
        if not text:
            continue
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known[option]]
        if unknown:
            flag = "--" + option.replace("_", "-")
            raise UserError(f"{flag}: no {SET_OPTIONS[option][2]} called {', '.join(map(repr, unknown))}; "
                            f"the bench has {', '.join(known[option])}")
        out[option] = names
    return out


def run_bench(quick: bool = False, only: str | None = None, echo=print, sets: dict[str, list[str]] | None = None) -> dict:
    """Run the sections (all of :data:`SECTIONS`, or ``only``); ``sets``
    (from :func:`chosen_sets`) narrows the data sets of the sections asked
    for by name."""
    import inspect

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
        fn = getattr(mod, function)
        accepted = inspect.signature(fn).parameters
        narrowed = {SET_OPTIONS[o][1]: names for o, names in (sets or {}).items() if SET_OPTIONS[o][1] in accepted}
        figures = fn(quick=quick, **narrowed)
        echo(f"\n[{section}] ({time.perf_counter() - t0:.0f} s)")
        for k, v in figures.items():
            echo(f"  {k:40s} {v:.4g}" if isinstance(v, float) else f"  {k:40s} {v}")
        results.update(figures)
    return results
