"""The training doctor: reads a run's logged numbers and film strip and says, in
plain words, what is going wrong, why, and what to try.

Each finding has a ``code`` (``d_wins``, ``mode_collapse``, ``diverged``,
``oscillation``, ``posterior_collapse``, ``overfitting``, ``stalled``, or
``healthy`` when nothing is wrong), the step it began at (``since_step``, or
``None`` when the numbers cannot tell), ``what`` and ``why`` in words, and a
``fix``: the settings a new run should change (``model_set`` / ``train_set``,
applied by :func:`apply_fix`, which links the new run to its parent through the
config key ``parent_run``).

The rules only read numbers every family already logs (``loss_d``,
``loss_g``, ``d_real``, ``d_fake`` for GANs; ``loss``, ``recon``, ``kl`` for
VAEs; ``loss`` and the end-of-run ``val_loss`` for text), so they work while a
run trains and after it ends. Thresholds were set on purposely broken runs and
on every model's Quick preset (tests/test_doctor.py repeats both).
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..errors import UserError
from ..room.identity import LOCAL, Actor

CODES = ("diverged", "d_wins", "mode_collapse", "oscillation", "posterior_collapse", "overfitting", "stalled",
         "healthy")
#: fewer logged points than this and the doctor does not judge trends yet
MIN_LOGS = 6
#: share of the logged points (at the end) that make the "late" window
LATE_SHARE = 0.3
#: a loss this large (in absolute value) is exploding whatever the model
EXPLODED = 1e4
#: KL below this many nats per example: the code carries almost nothing about the input
KL_FLOOR = 0.5
#: film-strip samples whose variety is below this share of the real data's variety are "near-identical"
COLLAPSE_VARIETY = 0.35
#: a generator whose points reach fewer than this share of a labelled point set's modes has collapsed
MODES_FLOOR = 0.75
#: a mode counts as reached when it gets at least this share of its fair share (1 / modes) of samples
MODE_SHARE = 0.2
POINT_SAMPLES = 2000
#: generated points farther than this from every real point (the point sets span about [-1.5, 1.5]) are off the data
NEAR_DATA = 0.25
#: below this share of generated points on the data, G is still finding the data (not collapsed)
ON_DATA_SHARE = 0.6


@dataclass
class Finding:
    code: str
    since_step: int | None
    what: str
    why: str
    fix: dict = field(default_factory=dict)  # {"label", "model_set", "train_set"}; {} when nothing to change

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evidence:
    """What the doctor reads about one run (built from the run store, or by hand in tests)."""

    history: dict[str, tuple[np.ndarray, np.ndarray]]  # key -> (steps, values), steps ascending
    model_config: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    family: str = ""
    status: str = "running"
    message: str | None = None
    final: dict = field(default_factory=dict)
    #: film-strip variety per frame: (steps, variety / real data's variety), images only
    variety: tuple[np.ndarray, np.ndarray] | None = None
    #: mean absolute change between consecutive film-strip frames (steps of the later frame, change in [0, 1])
    frame_change: tuple[np.ndarray, np.ndarray] | None = None
    field_limits: dict = field(default_factory=dict)  # model field -> (min, max)
    #: labelled 2-D points: (modes the generator's samples reach, modes in the data, share of samples on the data)
    modes: tuple[int, int, float] | None = None


# ---- small helpers ---------------------------------------------------------------------

def _series(ev: Evidence, key: str):
    s = ev.history.get(key)
    if s is None or len(s[0]) == 0:
        return None
    return s


def _late(n: int) -> int:
    """Index where the late window starts (at least 3 points)."""
    return max(0, n - max(3, int(round(n * LATE_SHARE))))


def _smooth(values: np.ndarray, k: int = 3) -> np.ndarray:
    if len(values) < k:
        return values
    pad = np.pad(values, (k // 2, k - 1 - k // 2), mode="edge")
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def _holds_since(steps: np.ndarray, cond: np.ndarray) -> int | None:
    """The first step from which ``cond`` holds to the end (None if it fails at the end)."""
    if len(cond) == 0 or not cond[-1]:
        return None
    i = len(cond) - 1
    while i > 0 and cond[i - 1]:
        i -= 1
    return int(steps[i])


def _mostly_since(steps: np.ndarray, cond: np.ndarray, share: float = 0.8) -> int:
    """The first step from which ``cond`` holds for at least ``share`` of the points to the end."""
    tail_share = np.cumsum(cond[::-1])[::-1] / np.arange(len(cond), 0, -1)
    ok = np.flatnonzero(cond & (tail_share >= share))
    return int(steps[ok[0]]) if len(ok) else int(steps[-1])


def _clamp(ev: Evidence, name: str, value):
    lo, hi = ev.field_limits.get(name, (None, None))
    if lo is not None:
        value = max(lo, value)
    if hi is not None:
        value = min(hi, value)
    return type(ev.model_config.get(name, value))(value)


def _fix(ev: Evidence, label: str, model: dict | None = None, train: dict | None = None) -> dict:
    """A fix that only names settings this model has, clamped to their ranges."""
    model_set = {k: _clamp(ev, k, v) for k, v in (model or {}).items() if k in ev.model_config}
    train_set = dict(train or {})
    if not model_set and not train_set:
        return {}
    return {"label": label, "model_set": model_set, "train_set": train_set}


def _fmt(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 1e-2 else f"{x:.3g}"


def _lr_keys(ev: Evidence) -> list[str]:
    return [k for k in ("lr", "lr_g", "lr_d") if k in ev.model_config]


def _main_loss(ev: Evidence):
    return _series(ev, "loss")


# ---- the rules ---------------------------------------------------------------------------

def check_diverged(ev: Evidence) -> Finding | None:
    since = None
    cause = ""
    if ev.message and re.search(r"\b(NaN|infinite)\b", ev.message):
        m = re.search(r"at step (\d+)", ev.message)
        since = int(m.group(1)) if m else None
        cause = "a loss became NaN or infinite, and training stopped"
    for key, (steps, values) in ev.history.items():
        if not (key.startswith("loss") or key in ("recon", "kl")):
            continue
        bad = ~np.isfinite(values) | (np.abs(np.nan_to_num(values, nan=np.inf)) > EXPLODED)
        if bad.any():
            step = int(steps[np.argmax(bad)])
            if since is None or step < since:
                since, cause = step, f"{key} reached {_fmt(float(values[np.argmax(bad)]))}"
    # a single-objective model whose loss ends above where an untrained model starts has blown up
    main = _main_loss(ev)
    if not cause and main is not None and "loss_d" not in ev.history and len(main[0]) >= MIN_LOGS:
        steps, values = main
        start = float(np.median(values[:2]))
        late = values[_late(len(values)):]
        best = float(values.min())
        if start > 0 and float(np.median(late)) > 1.25 * start and float(np.median(late)) > best * 1.5:
            cond = _smooth(values) > 1.25 * start
            since = _holds_since(steps, cond)
            cause = (f"the loss climbed from {_fmt(start)} at the start (and {_fmt(best)} at best) "
                     f"to {_fmt(float(values[-1]))}")
    if not cause:
        return None
    lrs = _lr_keys(ev)
    changes = {k: ev.model_config[k] / 10 for k in lrs}
    if "grad_clip" in ev.model_config and not ev.model_config["grad_clip"]:
        changes["grad_clip"] = 1.0
    label = "Train again with " + ", ".join(f"{k} = {_fmt(v)}" for k, v in changes.items())
    return Finding(
        "diverged", since,
        what=f"Training diverged: {cause}.",
        why="Each update overshot: with a learning rate this large one step can move the weights so far that "
            "the next loss is worse, and the errors feed on each other until the numbers overflow.",
        fix=_fix(ev, label, changes))


def check_d_wins(ev: Evidence) -> Finding | None:
    real, fake, loss_g = _series(ev, "d_real"), _series(ev, "d_fake"), _series(ev, "loss_g")
    if real is None or fake is None or loss_g is None or len(real[0]) < MIN_LOGS:
        return None
    loss = ev.model_config.get("loss", "nonsaturating")
    steps = real[0]
    r, f = real[1], fake[1]
    if loss == "nonsaturating":
        # strict: a well-trained DCGAN on digits sits near D(x) 0.9, D(G(z)) 0.1 and is fine
        cond = (r > 0.95) & (f < 0.05)
    elif loss == "hinge":
        cond = (r > 1.0) & (f < -1.0)  # both margins met: D's loss is 0 and it has nothing left to learn
    else:
        return None  # a WGAN critic's scores are unbounded; a wide gap is its job
    late = _late(len(cond))
    # most of the late window, not all of it: G lands a lucky batch now and then
    if cond[late:].mean() < 0.6 or not cond[late:][len(cond[late:]) // 2:].any():
        return None
    g = loss_g[1]
    early_g = float(np.median(g[: max(2, len(g) // 5)]))
    late_g = float(np.median(g[late:]))
    # G's loss at the balance point is log 2 (non-saturating) or 0 (hinge); D winning drives it far above
    # that, whether it climbs during the run or was already there at the first log
    balance_gap = 3.5 if loss == "nonsaturating" else 1.0
    if late_g <= early_g * 1.2 and late_g < balance_gap:
        return None  # D is confident, but G still gets a useful gradient
    since = _mostly_since(steps, cond, 0.6)
    lr_g, lr_d = ev.model_config.get("lr_g"), ev.model_config.get("lr_d")
    changes: dict = {}
    if lr_d is not None:
        changes["lr_d"] = min(lr_d / 4, lr_g) if lr_g else lr_d / 4
        if lr_g is not None and lr_g < lr_d / 4:
            changes["lr_g"] = lr_d / 4  # a generator far slower than D can never catch up
    if ev.model_config.get("d_steps", 1) > 1:
        changes["d_steps"] = 1
    label = "Slow the discriminator down: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in changes.items())
    return Finding(
        "d_wins", since,
        what=f"The discriminator wins: D(x) ~ {float(np.median(real[1][late:])):.2f} on real samples, "
             f"D(G(z)) ~ {float(np.median(fake[1][late:])):.2f} on generated ones, and the generator's loss is "
             f"{_fmt(late_g)} (it was {_fmt(early_g)} early on; about {'0.69' if loss == 'nonsaturating' else '0'} "
             "when the two are balanced).",
        why="When D separates real from fake perfectly, its verdict on G's samples is flat (saturated), so G's "
            "gradient carries almost no direction: G stops improving while D keeps getting sharper. A "
            "discriminator that learns much faster (or more often) than the generator gets there quickly.",
        fix=_fix(ev, label, changes))


def check_mode_collapse(ev: Evidence) -> Finding | None:
    if ev.family not in ("gan", "tabular") or "loss_d" not in ev.history:
        return None
    evidence, since = None, None
    if ev.variety is not None and len(ev.variety[0]) >= 2:
        steps, share = ev.variety
        cond = share < COLLAPSE_VARIETY
        # only after the strip has shown variety once: an untrained G's samples all look alike too
        varied = np.maximum.accumulate(share) >= COLLAPSE_VARIETY * 1.5
        cond = cond & varied
        if cond[-1]:
            since = _holds_since(steps, cond)
            evidence = (f"the film strip's samples, each from different noise, vary only {share[-1]:.0%} as much "
                        "as real images do")
    covered = ev.final.get("classes_covered")
    if evidence is None and covered is not None and covered <= 3 and ev.final.get("recognised", 0) >= 0.3:
        evidence = f"the recognisable samples belong to only {int(covered)} classes"
    # most samples already on the data, yet on few modes (a generator still finding the data has
    # many samples between the modes instead: that is early training, not collapse)
    if evidence is None and ev.modes is not None and ev.modes[0] < MODES_FLOOR * ev.modes[1] \
            and ev.modes[2] >= ON_DATA_SHARE:
        evidence = (f"{ev.modes[2]:.0%} of the generated points sit on the data, but on only {ev.modes[0]} of "
                    f"its {ev.modes[1]} modes")
    if evidence is None:
        return None
    loss = ev.model_config.get("loss")
    if loss == "nonsaturating":
        changes, label = {"loss": "hinge"}, "Switch to the hinge loss"
    elif loss == "hinge":
        changes, label = {"loss": "wgan_gp", "d_steps": 5}, "Switch to WGAN-GP with 5 critic steps per G step"
    else:
        changes = {k: ev.model_config[k] / 2 for k in _lr_keys(ev)}
        label = "Halve both learning rates"
    return Finding(
        "mode_collapse", since,
        what=f"Mode collapse: {evidence}.",
        why="The generator found a few outputs that fool the discriminator and maps most of its noise there. "
            "D then learns to reject them, G jumps to another few, and the variety of the data is never learnt. "
            "Losses that keep D from becoming overconfident (hinge, Wasserstein) give G a reason to spread out.",
        fix=_fix(ev, label, changes))


def _reversals(x: np.ndarray, h: float) -> int:
    """Turns of direction in ``x`` where each leg moves by more than ``h`` (a zigzag count)."""
    pivot, trend, turns = float(x[0]), 0, 0
    for v in x[1:]:
        if trend == 0:
            if abs(v - pivot) > h:
                trend, pivot = (1 if v > pivot else -1), v
        elif trend * (v - pivot) > 0:
            pivot = v  # the leg goes on
        elif abs(v - pivot) > h:
            trend, pivot, turns = -trend, v, turns + 1
    return turns


def check_oscillation(ev: Evidence) -> Finding | None:
    if "d_real" in ev.history and ev.model_config.get("loss", "nonsaturating") == "nonsaturating":
        # D's verdict on real data swinging between sure and unsure: the players take turns winning
        key, absolute = "d_real", 0.3
    else:
        key, absolute = ("loss_d" if "loss_d" in ev.history else "loss"), None
    s = _series(ev, key)
    if s is None or len(s[0]) < 3 * MIN_LOGS:
        return None
    steps, values = s
    half = values[len(values) // 2:]
    k = max(1, len(half) // 15)  # average neighbours, so logging noise does not count as swings
    chunks = np.array([half[i:i + k].mean() for i in range(0, len(half) - k + 1, k)])
    # the floor keeps the small wobbles of a loss near zero from counting as swings
    h = absolute if absolute is not None else 0.75 * max(float(np.median(np.abs(values))), 0.25)
    reversals = _reversals(chunks, h)
    if reversals < 3:
        return None
    changes = {k2: ev.model_config[k2] / 3 for k2 in _lr_keys(ev)}
    label = "Lower the learning rate(s) threefold: " + ", ".join(f"{k2} = {_fmt(v)}" for k2, v in changes.items())
    return Finding(
        "oscillation", int(steps[len(values) // 2]),
        what=f"{'D(x)' if key == 'd_real' else 'The ' + key} swings up and down by more than {_fmt(h)} again and "
             f"again ({reversals} reversals in the second half) instead of settling.",
        why="The updates are too large for the shape of the loss: each step jumps past the valley floor. In a GAN "
            "the two players can also chase each other in circles around the balance point.",
        fix=_fix(ev, label, changes))


def check_posterior_collapse(ev: Evidence) -> Finding | None:
    kl = _series(ev, "kl")
    if kl is None or len(kl[0]) < MIN_LOGS:
        return None
    steps, values = kl
    late = values[_late(len(values)):]
    if float(np.median(late)) >= KL_FLOOR:
        return None
    since = _holds_since(steps, _smooth(values) < KL_FLOOR)
    beta = ev.model_config.get("beta")
    changes = {"beta": 1.0 if beta and beta > 1 else (beta or 1.0) / 4} if beta is not None else {}
    label = f"Train again with beta = {_fmt(changes['beta'])}" if changes else ""
    return Finding(
        "posterior_collapse", since,
        what=f"Posterior collapse: the KL term is {_fmt(float(np.median(late)))} nats, so the code z says almost "
             "nothing about the input; every image decodes to much the same blur.",
        why="The loss is reconstruction + beta x KL. When beta is large the cheapest way down is to make "
            "q(z|x) equal to the prior for every x (KL = 0) and let the decoder draw the average image.",
        fix=_fix(ev, label, changes) if changes else {})


def check_overfitting(ev: Evidence) -> Finding | None:
    train = _main_loss(ev)
    if train is None:
        return None
    # a held-out curve logged during training: rising after its minimum while training loss falls
    for vkey in ("val_loss",):
        val = _series(ev, vkey)
        if val is not None and len(val[0]) >= 3:
            vs, vv = val
            i = int(np.argmin(vv))
            if i < len(vv) - 1 and vv[-1] > vv[i] * 1.05 and train[1][-1] < np.interp(vs[i], *train):
                return _overfit_finding(ev, int(vs[i]), f"the held-out loss rose from {_fmt(float(vv[i]))} at step "
                                        f"{int(vs[i])} to {_fmt(float(vv[-1]))} while the training loss kept falling",
                                        best_step=int(vs[i]))
    val_end = ev.final.get("val_loss")
    if val_end is None or len(train[0]) < MIN_LOGS:
        return None
    train_end = float(np.median(train[1][_late(len(train[1])):]))
    if val_end > 1.5 * train_end and val_end - train_end > 0.5:
        return _overfit_finding(ev, None, f"the held-out loss ends at {_fmt(val_end)}, far above the training "
                                f"loss ({_fmt(train_end)})", best_step=None)
    return None


def _overfit_finding(ev: Evidence, since, evidence: str, best_step) -> Finding:
    steps_now = int(ev.train.get("steps") or 0)
    changes = {}
    if "dropout" in ev.model_config and ev.model_config["dropout"] < 0.2:
        changes["dropout"] = 0.2
    train_changes = {}
    if best_step:
        train_changes["steps"] = best_step
    elif steps_now:
        train_changes["steps"] = max(100, steps_now // 3)
    parts = [f"{k} = {_fmt(v)}" for k, v in changes.items()] + [f"{k} = {v}" for k, v in train_changes.items()]
    return Finding(
        "overfitting", since,
        what=f"Overfitting: {evidence}.",
        why="The model is memorising its training examples instead of learning what generalises: on text it "
            "has learnt the corpus by heart, so new text surprises it. A small data set trained for long does "
            "this first.",
        fix=_fix(ev, "Train again with " + ", ".join(parts), changes, train_changes))


def check_stalled(ev: Evidence) -> Finding | None:
    main = _main_loss(ev)
    if main is not None and "loss_d" not in ev.history and len(main[0]) >= MIN_LOGS:
        steps, values = main
        start = float(np.median(values[:2]))
        best = float(values.min())
        if start > 0 and (start - best) < 0.03 * start:
            changes = {k: ev.model_config[k] * 10 for k in _lr_keys(ev)}
            label = "Raise the learning rate tenfold: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in changes.items())
            return Finding(
                "stalled", int(steps[0]),
                what=f"Stalled: after {int(steps[-1])} steps the loss is still {_fmt(float(values[-1]))}, "
                     f"within 3% of where it started ({_fmt(start)}).",
                why="Each update moves the weights too little to change what the model predicts: the learning rate "
                    "is far too small for this model (or the gradients vanish before they reach the weights).",
                fix=_fix(ev, label, changes))
    if ev.frame_change is not None and len(ev.frame_change[0]) >= 3 and "loss_d" in ev.history:
        steps, change = ev.frame_change
        cond = change < 1.0 / 255
        since = _holds_since(steps, cond)
        if since is not None and cond.sum() >= 3 and since <= steps[0] + 0.5 * (steps[-1] - steps[0]):
            changes = {"lr_g": ev.model_config["lr_g"] * 10} if "lr_g" in ev.model_config else {}
            return Finding(
                "stalled", since,
                what="Stalled: the generator's film strip has not visibly changed for the last "
                     f"{int(steps[-1] - since)} steps.",
                why="The generator's updates are too small to change its samples: its learning rate is too low, or "
                    "its gradient has vanished.",
                fix=_fix(ev, "Raise the generator's learning rate tenfold", changes))
    return None


RULES = (check_diverged, check_d_wins, check_mode_collapse, check_oscillation, check_posterior_collapse,
         check_overfitting, check_stalled)
#: a finding on the left explains the ones on the right; they are not reported with it
EXPLAINS = {"diverged": set(CODES), "d_wins": {"stalled", "oscillation"},
            "posterior_collapse": {"stalled"}}


def diagnose(ev: Evidence) -> list[Finding]:
    """Every finding for one run's evidence; ``[healthy]`` when nothing is wrong,
    ``[]`` when too little has been logged to judge."""
    if max((len(s[0]) for s in ev.history.values()), default=0) < MIN_LOGS and not ev.message:
        return []
    found: list[Finding] = []
    for rule in RULES:
        f = rule(ev)
        if f is not None and not any(f.code in EXPLAINS.get(g.code, ()) and f.code != g.code for g in found):
            found.append(f)
    if not found:
        last = max(int(s[0][-1]) for s in ev.history.values() if len(s[0]))
        found.append(Finding("healthy", None, what=f"Nothing looks wrong after {last} steps.",
                             why="The losses move the way a learning model's should, nothing overflowed, and the "
                                 "samples keep their variety. Let it train, or compare it with another run."))
    return found


# ---- reading a run -----------------------------------------------------------------------

def _grid_tiles(path) -> np.ndarray | None:
    """The tiles of a film-strip frame (an 8-column grid with 2-pixel padding) as (N, H, W, C) in [0, 1]."""
    from PIL import Image

    with Image.open(path) as img:
        a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    h, w = a.shape[:2]
    side = (w - 2) / 8 - 2
    if side != int(side) or side < 4:
        return None  # not an image grid (e.g. the 2-D points' scatter plot)
    side = int(side)
    rows = (h - 2) // (side + 2)
    tiles = [a[2 + r * (side + 2): 2 + r * (side + 2) + side, 2 + c * (side + 2): 2 + c * (side + 2) + side]
             for r in range(rows) for c in range(8)]
    return np.stack(tiles)


def variety(tiles: np.ndarray) -> float:
    """How different a set of images are from one another: the per-pixel standard
    deviation across them, averaged over pixels (0 for identical images)."""
    return float(tiles.std(axis=0).mean())


@functools.lru_cache(maxsize=32)  # a page re-reads a training run every few seconds; the data set does not change
def _real_variety(dataset: str, count: int = 64) -> float | None:
    try:
        import torch

        from ..data.catalog import load_dataset

        data = load_dataset(dataset)
        images = getattr(data, "images", None)
        if images is None or len(images) < 2:
            return None
        idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:count]
        x = images[idx].float().div(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return variety(x.permute(0, 2, 3, 1).numpy())
    except (UserError, OSError, ValueError):
        return None


def _film_strip_evidence(run) -> tuple:
    frames = sorted((run.folder / "samples").glob("step_*.png"))
    if len(frames) < 2 or run.data_kind != "image":
        return None, None
    frames = frames[-12:]  # bound the work: the recent story is what matters
    steps, tiles = [], []
    for p in frames:
        t = _grid_tiles(p)
        if t is None:
            return None, None
        steps.append(int(p.stem.split("_")[1]))
        tiles.append(t)
    steps_a = np.array(steps)
    change = np.array([float(np.abs(a - b).mean()) if a.shape == b.shape else 1.0
                       for a, b in zip(tiles[1:], tiles[:-1])])
    real = _real_variety(run.dataset)
    var = None
    if real:
        var = (steps_a, np.array([variety(t) / real for t in tiles]))
    return var, (steps_a[1:], change)


def modes_reached(real, labels, fake) -> tuple[int, int, float]:
    """(modes reached, modes, share of samples on the data) for generated points
    ``fake`` (M, 2) against real points with mode ``labels``: each sample near the
    data joins the mode of its nearest real point, and a mode is reached when it
    gets a fair part of all samples."""
    import torch

    n = len(fake)
    fake = fake[torch.isfinite(fake).all(1)]
    total = int(labels.max()) + 1
    if len(fake) == 0:
        return 0, total, 0.0
    dist, nearest = torch.cdist(fake.float(), real.float()).min(1)
    on_data = dist < NEAR_DATA  # a point far from every real point reaches no mode
    counts = torch.bincount(labels[nearest[on_data]], minlength=total).float()
    return int((counts >= MODE_SHARE * n / total).sum()), total, float(on_data.sum()) / n


def _point_modes(run) -> tuple[int, int, float] | None:
    """Sample the run's latest checkpoint on a labelled 2-D point set (a few
    milliseconds for a toy GAN)."""
    if run.data_kind != "points":
        return None
    import torch

    from ..data.catalog import load_dataset
    from ..runs.checkpoint import latest_checkpoint, load_state
    from ..train.loop import build_trainer

    found = latest_checkpoint(run.folder / "checkpoints")
    data = load_dataset(run.dataset)
    if not found or getattr(data, "labels", None) is None:
        return None
    _, _, trainer = build_trainer(run.config, device=torch.device("cpu"), data=data)
    trainer.load_state(load_state(found[1])[0])
    idx = torch.randperm(len(data.points), generator=torch.Generator().manual_seed(0))[:POINT_SAMPLES]
    fake = torch.as_tensor(trainer.sample(POINT_SAMPLES, 0)).float()
    return modes_reached(data.points[idx], data.labels[idx], fake)


def evidence_for(run, store) -> Evidence:
    frame = store.metrics(run.id)
    history = {}
    for key, part in frame.groupby("key"):
        part = part.sort_values("step")
        history[str(key)] = (part["step"].to_numpy(dtype=np.int64), part["value"].to_numpy(dtype=np.float64))
    # end-of-run numbers are logged once at the last step; they are evidence, not a curve
    final = dict(run.final_metrics or {})
    limits = {}
    try:
        from ..registry import get_model

        for f in fields(get_model(run.model).config_cls):
            if "min" in f.metadata:
                limits[f.name] = (f.metadata.get("min"), f.metadata.get("max"))
    except UserError:
        pass
    var, change = _film_strip_evidence(run)
    return Evidence(history=history, model_config=dict(run.config.get("model_config", {})),
                    train=dict(run.config.get("train", {})), family=run.family, status=run.status,
                    message=run.message, final=final, variety=var, frame_change=change, field_limits=limits,
                    modes=_point_modes(run))


def diagnose_run(run_id: str, store=None, *, actor: Actor = LOCAL) -> dict:
    """``{"run_id", "status", "step", "findings": [...]}`` for one run ``actor`` may see (the CLI's JSON)."""
    from ..runs.store import RunStore

    store = store or RunStore()
    run = store.get(run_id, actor=actor)
    findings = diagnose(evidence_for(run, store))
    return {"run_id": run.id, "status": run.status, "step": run.step,
            "findings": [f.to_dict() for f in findings]}


def apply_fix(run_id: str, code: str, store=None, start: bool = True, *, actor: Actor = LOCAL):
    """Start a new run like ``run_id`` with the fix of its ``code`` finding applied.

    The new run's config carries ``parent_run`` (the run it was fixed from) and
    ``doctor_fix`` (the finding's code)."""
    from ..runs.api import make_config, submit
    from ..runs.store import RunStore

    store = store or RunStore()
    run = store.get(run_id, actor=actor)
    findings = {f["code"]: f for f in diagnose_run(run_id, store, actor=actor)["findings"]}
    if code not in findings:
        raise UserError(f"the doctor finds no {code!r} in run {run_id} now; findings: {', '.join(findings) or 'none'}")
    fix = findings[code]["fix"]
    if not fix:
        raise UserError(f"the doctor has no settings to change for {code!r}")
    train = {**run.config.get("train", {}), **fix.get("train_set", {})}
    config = make_config(run.model, run.dataset, model_set={**run.config.get("model_config", {}), **fix["model_set"]},
                         train_set=train, actor=actor)
    config["preset"] = run.config.get("preset")
    config["parent_run"] = run.id
    config["doctor_fix"] = code
    return submit(config, name=f"{run.name} (doctor: {code})"[:120], store=store, start=start, actor=actor)
