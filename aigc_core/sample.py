"""Sampling from a run: load its trainer with its best (or last) weights and generate.

Pages and the command line call :func:`load_for_sampling` (cache the result:
it builds the model and reads the checkpoint) and then the trainer's own
``sample`` / ``interpolate`` / ``reconstruct`` / text methods.

Sampling reads only the networks' weights (and the trainer's extra state) from
the checkpoint, never the optimiser state, and refuses a model over the
parameter ceiling before building anything (pages call this inside the server
process).

Which weights: ``best`` (the default) is the checkpoint with the lowest
held-out loss (:mod:`aigc_core.train.early_stop`), or the last one for a run
that has none (a GAN, a run from before best checkpoints); ``last`` is the
newest checkpoint.
"""

from __future__ import annotations

import torch

from .errors import UserError
from .room.identity import LOCAL, Actor
from .room.limits import check_weights
from .runs.checkpoint import best_checkpoint, chosen_checkpoint, latest_checkpoint, load_weights
from .runs.store import RunStore
from .registry import build_trainer


def load_for_sampling(run_id: str, device: str = "cpu", store: RunStore | None = None, *, actor: Actor = LOCAL,
                      checkpoint: str = "best"):
    """(trainer, run, step) with the weights of the ``checkpoint`` asked for
    (``best`` or ``last``), in eval mode, for a run ``actor`` may see."""
    store = store or RunStore()
    run = store.get(run_id, actor=actor)
    found = chosen_checkpoint(run.folder.checkpoints, checkpoint)
    if not found:
        raise UserError(f"run {run.name} has no checkpoint yet; wait for its first save (or let it finish)")
    step, path = found
    dev = torch.device(device)
    try:
        check_weights(path, device=dev)
    except UserError as exc:
        raise UserError(f"run {run.name}: {exc}") from None
    _, _, trainer = build_trainer(run.config, device=dev)
    state, _ = load_weights(path, device=dev)
    trainer.load_state(state, weights_only=True)
    trainer.train_mode(False)
    return trainer, run, step


def checkpoint_step(run_id: str, store: RunStore | None = None, checkpoint: str = "best") -> int | None:
    """The step of a run's best (or last) checkpoint (a cache key for sampling)."""
    store = store or RunStore()
    found = chosen_checkpoint(store.get(run_id).folder.checkpoints, checkpoint)
    return found[0] if found else None


def checkpoints_of(run) -> dict:
    """What a page says about a run's weights: ``{"last": step | None, "best":
    {"step", "key", "value"} | None}``; ``best`` is None when the run has no
    best checkpoint (a GAN, a run from before best checkpoints, or one with no
    held-out check yet)."""
    latest = latest_checkpoint(run.folder.checkpoints)
    best = best_checkpoint(run.folder.checkpoints)
    return {"last": latest[0] if latest else None,
            "best": None if best is None else {k: best[k] for k in ("step", "key", "value")}}
