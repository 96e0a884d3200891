"""Starter models: small checkpoints shipped in the repository's ``starters/``.

A visitor can generate samples seconds after opening the app, before training
anything. The starters are made by the project's own reproducible recipe,
``python -m aigc_core make-starters``: every one trains with the studio's
normal training loop on the CPU (one thread), in fp32, with a fixed seed, a step budget (no
time limit) and PyTorch's deterministic algorithms, so the same machine makes
the same weights again.

Each starter is one folder ``starters/<key>/``:

- ``model.safetensors``: the network weights (and the fixed noise of the film
  strip) stored in float16, no optimiser state; a studio checkpoint, so it
  loads like any other and can never run code;
- ``config.json``: the run config (model, data set, every setting), its title,
  training steps and time, final metrics and the logged curves;
- ``preview.png`` (64 images) or ``preview.txt`` (16 texts): samples from seed 0.

:func:`install_starters` copies them into the current workspace as completed
runs (once: installing again finds them), so the Gallery, Compare and
``python -m aigc_core sample`` treat them like the user's own runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UserError
from .paths import aigc_home, write_atomic

#: where the shipped starters live (the repository's top-level folder)
STARTERS_DIR = Path(__file__).resolve().parent.parent / "starters"
MODEL_FILE, CONFIG_FILE = "model.safetensors", "config.json"
PREVIEW_FILES = ("preview.png", "preview.txt")  # images; text
MARKER_FILE = "starter.json"  # in an installed run's folder: which starter it came from
FORMAT = 1
MAX_STARTER_BYTES = 5 * 1024 * 1024  # each starter folder
MAX_CONFIG_BYTES = 1024 * 1024
PREVIEW_SEED, PREVIEW_COUNT, PREVIEW_TEXTS = 0, 64, 16


@dataclass(frozen=True)
class Starter:
    """One starter: what trains, on what, for how many steps."""

    key: str  # folder name under starters/
    title: str  # the installed run's name
    blurb: str  # one sentence for the Home page
    model: str
    dataset: str
    model_config: dict
    steps: int


@dataclass(frozen=True)
class QuickStart:
    """A built-in data set and the model whose Quick preset gives a first sample
    from it in about half a minute (the Home page's first steps)."""

    dataset: str
    model: str
    description: str


# Built-in sets only, named here rather than listed from the catalog: the Home
# page shows them without importing every data module.
QUICK_STARTS = (
    QuickStart("glyphs", "dcgan", "Handwriting-like digits (28 x 28), offline"),
    QuickStart("shapes", "dcgan", "Coloured circles, squares and triangles (32 x 32)"),
    QuickStart("ring8", "toy_gan", "A ring of 8 Gaussian blobs in 2-D"),
    QuickStart("unicode_names", "char_gpt", "Names of Unicode characters, one per line"),
)


# Small widths keep every file near a megabyte or less; each trains in a few
# minutes on one CPU thread.
STARTERS = (
    Starter("dcgan-glyphs", "Starter: DCGAN on glyphs",
            "A convolutional GAN that paints handwriting-like digits from random noise.",
            "dcgan", "glyphs", dict(nz=64, ngf=32, ndf=32, batch_size=64), steps=3000),
    Starter("vae-glyphs", "Starter: VAE on glyphs",
            "A convolutional VAE: it squeezes each digit into 8 numbers and draws new digits from random codes.",
            "conv_vae", "glyphs", dict(latent_dim=8, width=32, batch_size=64), steps=3000),
    Starter("dcgan-shapes", "Starter: DCGAN on shapes",
            "A convolutional GAN that paints coloured circles, squares and triangles.",
            # a narrow discriminator (16 maps) and a wider generator (48): with
            # equal widths the discriminator wins outright on these easy-to-judge
            # images and the generator collapses onto a few colour blobs
            "dcgan", "shapes", dict(nz=64, ngf=48, ndf=16, batch_size=64), steps=4000),
    Starter("gpt-unicode-names", "Starter: Character GPT on Unicode names",
            "A small GPT that writes new names of Unicode characters, one letter at a time.",
            "char_gpt", "unicode_names", dict(n_layer=2, n_head=4, n_embd=96, block_size=64, batch_size=16, lr=5e-3,
                                              warmup_steps=50, lr_decay_steps=2000), steps=2000),
)


# ---- making the starters ------------------------------------------------------------

@contextlib.contextmanager
def _scratch_workspace():
    """A temporary ``$AIGC_HOME`` for the training runs, sharing the real
    workspace's cache so the built-in data sets are built only once."""
    real_cache = aigc_home() / "cache"
    real_cache.mkdir(exist_ok=True)
    saved = os.environ.get("AIGC_HOME")
    with tempfile.TemporaryDirectory(prefix="aigc_starters_") as tmp:
        (Path(tmp) / "cache").symlink_to(real_cache)
        os.environ["AIGC_HOME"] = tmp
        try:
            yield Path(tmp)
        finally:
            if saved is None:
                os.environ.pop("AIGC_HOME", None)
            else:
                os.environ["AIGC_HOME"] = saved


@contextlib.contextmanager
def _deterministic():
    import torch

    # One thread: the order of floating-point sums then never depends on how
    # work is split between threads (and on a busy shared machine one thread
    # is also much faster than two fighting for the cores).
    was, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)
        torch.set_num_threads(threads)


def _half(obj):
    """Floating-point tensors in float16 (half the bytes); integers stay as they are."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.half() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _half(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_half(v) for v in obj]
    return obj


def _curves(store, run_id: str) -> dict:
    """The logged metrics as columns, wall time counted from the first log."""
    frame = store.metrics(run_id)
    if frame.empty:
        return {"step": [], "key": [], "value": [], "wall": []}
    start = float(frame["wall"].min())
    return {"step": [int(s) for s in frame["step"]], "key": list(frame["key"]),
            "value": [float(v) for v in frame["value"]], "wall": [round(float(w) - start, 3) for w in frame["wall"]]}


def _card_json(card: dict) -> str:
    """config.json: one setting per line, each curve column on one line (a short, readable diff)."""
    lines = [f" {json.dumps(k)}: " + (json.dumps(v) if k == "curves" else json.dumps(v, indent=1).replace("\n", "\n "))
             for k, v in card.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def make_starters(out: Path | None = None, echo: Callable[[str], None] = print, steps: int | None = None,
                  only: tuple[str, ...] | None = None) -> list[Path]:
    """Train every starter (or those in ``only``) and write ``out/<key>/``.

    ``steps`` replaces each starter's step budget (tests use a few steps).
    Returns the folders written."""
    import torch

    from .imaging import grid_image, png_bytes
    from .runs.api import make_config, run_in_foreground
    from .runs.checkpoint import latest_checkpoint, load_state, state_to_bytes
    from .runs.store import RunStore
    from .sample import load_for_sampling

    chosen = [s for s in STARTERS if only is None or s.key in only]
    if only is not None and len(chosen) != len(set(only)):
        unknown = sorted(set(only) - {s.key for s in STARTERS})
        raise UserError(f"no starter called {', '.join(unknown)}; starters: {', '.join(s.key for s in STARTERS)}")
    out = Path(out or STARTERS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with _scratch_workspace(), _deterministic():
        store = RunStore()
        for starter in chosen:
            n_steps = int(steps or starter.steps)
            echo(f"== {starter.title}: {starter.model} on {starter.dataset}, {n_steps} steps on the CPU")
            config = make_config(starter.model, starter.dataset, model_set=starter.model_config,
                                 train_set=dict(steps=n_steps, max_seconds=0.0, seed=0, device="cpu", precision="fp32",
                                                compile=False, log_every=max(1, min(25, n_steps // 4)),
                                                sample_every=max(1, n_steps // 10), checkpoint_every=n_steps,
                                                # a recipe trains its steps: the shipped weights are its last ones
                                                early_stop="off"))
            run = run_in_foreground(config, name=starter.title, store=store, echo=echo)
            if run.status != "completed":
                raise UserError(f"{starter.title} did not finish training ({run.status}: {run.message})")
            step, ckpt = latest_checkpoint(run.folder.checkpoints)
            state, _ = load_state(ckpt)
            weights = {"nets": _half(state["nets"]), "extra": _half(state.get("extra") or {})}
            trainer, _, _ = load_for_sampling(run.id, store=store)
            trainer.load_state(weights, weights_only=True)  # the preview shows exactly what ships
            if run.data_kind == "text":
                preview_name = "preview.txt"
                preview = "\n".join(trainer.sample(PREVIEW_TEXTS, PREVIEW_SEED)).encode("utf-8")
            else:
                preview_name = "preview.png"
                preview = png_bytes(grid_image(trainer.sample(PREVIEW_COUNT, PREVIEW_SEED), nrow=8))

            folder = out / starter.key
            tmp = out / f".{starter.key}.incoming"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            # no extra metadata keys: safetensors writes them in hash order,
            # and the same weights should give the same bytes
            (tmp / MODEL_FILE).write_bytes(state_to_bytes(weights))
            (tmp / preview_name).write_bytes(preview)
            card = {"format": FORMAT, "key": starter.key, "title": starter.title, "blurb": starter.blurb,
                    "model": config["model"], "dataset": config["dataset"], "preset": None,
                    "model_config": config["model_config"], "train": config["train"], "step": step,
                    "train_seconds": round(run.train_seconds, 1), "final_metrics": run.final_metrics,
                    "made_with": f"python -m aigc_core make-starters (torch {torch.__version__}, CPU, one thread, fp32, seed 0, "
                                 "deterministic algorithms); weights stored in float16",
                    "curves": _curves(store, run.id)}
            (tmp / CONFIG_FILE).write_text(_card_json(card), encoding="utf-8")
            size = sum(p.stat().st_size for p in tmp.iterdir())
            if size > MAX_STARTER_BYTES:
                shutil.rmtree(tmp)
                raise UserError(f"{starter.title} came out at {size / 2**20:.1f} MB, over the "
                                f"{MAX_STARTER_BYTES // 2**20} MB limit; choose smaller widths")
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
            written.append(folder)
            echo(f"   wrote {folder} ({size / 1024:.0f} KB, {run.train_seconds:.0f} s of training)")
    return written


# ---- installing them into a workspace -----------------------------------------------

@dataclass
class InstallReport:
    """What :func:`install_starters` did: runs added now, runs found from an
    earlier install, and a plain message per starter that could not be installed."""

    installed: list = field(default_factory=list)
    existing: list = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def runs(self) -> list:
        """Every usable starter run, in the shipped order."""
        return _in_order(self.existing + self.installed)


def _in_order(runs: list) -> list:
    order = {s.title: i for i, s in enumerate(STARTERS)}
    return sorted(runs, key=lambda r: order.get(r.name, len(order)))


def shipped_starters(source: Path | None = None) -> list[Path]:
    """The starter folders in ``source`` (default: the shipped ``starters/``) that
    have a config.json, in the shipped order."""
    source = Path(source or STARTERS_DIR)
    if not Path(source).is_dir():
        return []
    folders = [p for p in Path(source).iterdir() if p.is_dir() and not p.name.startswith(".")
               and (p / CONFIG_FILE).exists()]
    order = {s.key: i for i, s in enumerate(STARTERS)}
    return sorted(folders, key=lambda p: (order.get(p.name, len(order)), p.name))


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_starter(folder: Path) -> dict:
    """A starter's config.json, validated: the model and data set exist, every
    setting is known and in range, and model.safetensors is a readable studio
    checkpoint with finite weights. Raises :class:`UserError` naming the folder."""
    import torch

    from .runs.api import make_config
    from .runs.checkpoint import load_state

    folder = Path(folder)
    name = folder.name
    config_path, model_path = folder / CONFIG_FILE, folder / MODEL_FILE
    if not config_path.is_file() or not model_path.is_file():
        raise UserError(f"starter {name!r} is incomplete: it needs {CONFIG_FILE} and {MODEL_FILE}; "
                        "run `python -m aigc_core make-starters` to make it again")
    if config_path.stat().st_size > MAX_CONFIG_BYTES or model_path.stat().st_size > MAX_STARTER_BYTES:
        raise UserError(f"starter {name!r} is larger than a starter can be ({MAX_STARTER_BYTES // 2**20} MB); refusing it")
    try:
        card = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(card, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"starter {name!r}: {CONFIG_FILE} is not valid JSON ({exc}); "
                        "run `python -m aigc_core make-starters` to make it again") from None
    missing = [k for k in ("model", "dataset", "model_config", "train", "title") if k not in card]
    if missing:
        raise UserError(f"starter {name!r}: {CONFIG_FILE} has no {', '.join(missing)}")
    if card.get("format") != FORMAT:
        raise UserError(f"starter {name!r} has format {card.get('format')!r}; this studio reads format {FORMAT}")
    if not isinstance(card["model_config"], dict) or not isinstance(card["train"], dict):
        raise UserError(f"starter {name!r}: model_config and train must be objects in {CONFIG_FILE}")
    try:
        config = make_config(str(card["model"]), str(card["dataset"]), model_set=card["model_config"],
                             train_set=card["train"])
    except UserError as exc:
        raise UserError(f"starter {name!r} does not fit this studio: {exc}") from None
    try:
        state, _ = load_state(model_path)
    except UserError as exc:
        raise UserError(f"starter {name!r} is damaged: {exc}") from None
    nets = state.get("nets") if isinstance(state, dict) else None
    if not isinstance(nets, dict) or not nets:
        raise UserError(f"starter {name!r} is damaged: {MODEL_FILE} holds no network weights")
    for net_name, weights in nets.items():
        for key, tensor in (weights or {}).items():
            if not isinstance(tensor, torch.Tensor):
                raise UserError(f"starter {name!r} is damaged: {net_name}.{key} is not a tensor")
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise UserError(f"starter {name!r} is damaged: {net_name}.{key} holds NaN or infinite values")
    return {**card, "config": config, "checksum": _checksum(model_path)}


@contextlib.contextmanager
def _install_lock():
    """Two browser tabs pressing the button at once install each starter once."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; a double install is harmless
        yield
        return
    path = aigc_home() / ".starters.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def installed_starters(store=None) -> dict[str, tuple[str, object]]:
    """Starter runs in this workspace: key -> (checksum, run)."""
    from .runs.store import RunStore

    store = store or RunStore()
    found = {}
    for run in store.list(statuses=("completed",)):
        marker = run.folder / MARKER_FILE
        if not marker.is_file():
            continue
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
            found.setdefault(info["key"], (info.get("checksum"), run))  # newest first
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def install_starter(folder: Path, store=None):
    """Install one starter folder as a completed run; returns ``(run, new)``.

    A starter already installed (same key, same weights) is found, not copied again."""
    from .registry import get_model
    from .runs.store import RunStore

    store = store or RunStore()
    card = read_starter(folder)
    key = Path(folder).name
    have = installed_starters(store).get(key)
    if have and have[0] == card["checksum"]:
        return have[1], False
    spec = get_model(card["config"]["model"])
    run = store.create(model=spec.name, family=spec.family, dataset=card["config"]["dataset"],
                       data_kind=spec.data_kind, config=card["config"], name=str(card["title"])[:120], owner="starter")
    try:
        step = int(card.get("step") or card["config"]["train"]["steps"])
        shutil.copyfile(Path(folder) / MODEL_FILE, run.folder.checkpoint(step))
        for name in PREVIEW_FILES:  # the run's film strip shows it
            if (Path(folder) / name).is_file():
                shutil.copyfile(Path(folder) / name, run.folder.frame(step, Path(name).suffix))
        _log_curves(store, run.id, card.get("curves"))
        final = {k: float(v) for k, v in (card.get("final_metrics") or {}).items() if isinstance(v, (int, float))}
        store.update(run.id, step=step, train_seconds=float(card.get("train_seconds") or 0.0), final_metrics=final,
                     device="cpu", device_name="CPU (made by make-starters)", started=run.created)
        write_atomic(run.folder / MARKER_FILE, json.dumps({"key": key, "checksum": card["checksum"],
                                                           "installed": time.time()}).encode())
        store.set_status(run.id, "completed", "a starter model shipped with the studio, made by "
                                              "`python -m aigc_core make-starters`")
    except Exception:
        store.delete(run.id)
        raise
    return store.get(run.id), True


def _log_curves(store, run_id: str, curves) -> None:
    """Write a starter's logged metrics into the run store (the charts read them there)."""
    if not isinstance(curves, dict):
        return
    cols = [curves.get(k) or [] for k in ("step", "key", "value", "wall")]
    if len({len(c) for c in cols}) != 1:
        return
    now = time.time()
    rows = [(run_id, int(s), str(k), float(v), now + float(w)) for s, k, v, w in zip(*cols)]
    conn = store.connect()
    try:
        conn.executemany("INSERT INTO metrics (run_id, step, key, value, wall) VALUES (?,?,?,?,?)", rows)
    finally:
        conn.close()


def install_starters(source: Path | None = None, store=None) -> InstallReport:
    """Install every shipped starter into the current workspace (idempotent).

    A damaged or unfit starter is reported in ``problems`` and the others still
    install."""
    from .runs.store import RunStore

    store = store or RunStore()
    source = Path(source or STARTERS_DIR)
    report = InstallReport()
    folders = shipped_starters(source)
    if not folders:
        report.problems.append(f"no starter models found in {source}; make them with "
                               "`python -m aigc_core make-starters`")
        return report
    with _install_lock():
        for folder in folders:
            try:
                run, new = install_starter(folder, store)
            except UserError as exc:
                report.problems.append(str(exc))
                continue
            (report.installed if new else report.existing).append(run)
    return report
