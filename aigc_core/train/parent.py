"""Starting a run from another run's weights (a fine-tune, "pre-train, then fine-tune").

The training loop calls :func:`load_parent_weights` before step 0 of a run
whose config names a ``parent_run`` and an ``init_from`` step; the command
line's ``train --from`` and the Gallery's "Improve with my ratings" make such
configs (:mod:`aigc_core.improve`). It lives under ``train/`` because the
loop needs it, and the loop must not import the modules that start runs.
"""

from __future__ import annotations

from ..errors import UserError
from ..runs.checkpoint import latest_checkpoint, load_latest_good, load_state
from ..runs.store import RunStore


def parent_checkpoint(parent) -> tuple[int, object]:
    """(step, path) of the parent's latest checkpoint; a run with none cannot be fine-tuned from."""
    found = latest_checkpoint(parent.folder.checkpoints)
    if not found:
        raise UserError(f"run {parent.name} has no checkpoint yet, so there are no weights to start from; "
                        "let it train a little first")
    return found


def parent_state(parent, step: int | None, device, say=None) -> tuple[int, dict]:
    """(step, state) of the parent's checkpoint at ``step`` while it is kept
    and readable, else of its newest good one (a parent that trained on keeps
    only its last few checkpoints)."""
    path = parent.folder.checkpoint(int(step)) if step is not None else None
    if path is not None and path.exists():
        try:
            return int(step), load_state(path, device=device)[0]
        except UserError as exc:
            if say:
                say(f"the parent's checkpoint {path.name} could not be read ({exc}); using its newest good one")
    found = load_latest_good(parent.folder.checkpoints, device=device, say=say)
    if not found:
        raise UserError(f"run {parent.name} has no readable checkpoint, so there are no weights to start from")
    return found[0], found[2]


def load_parent_weights(trainer, config: dict, store: RunStore | None = None, echo=None) -> int | None:
    """Load the parent run's weights into a fresh trainer (before its step 0).

    Does nothing (returns None) unless the config names a ``parent_run`` and
    an ``init_from`` step (a run that only names its parent, as the doctor's
    fixed runs do, trains from fresh weights); otherwise returns the parent's
    step that was loaded. Network shapes must
    match (they do when the model config is the parent's and the data has
    the same image size, character set or table columns); a mismatch is a
    :class:`UserError` that says what differs. The optimiser state comes too
    when ``finetune_optimizer`` is set and its shapes match; the random
    stream stays the child's own."""
    parent_id = config.get("parent_run")
    if not parent_id or config.get("init_from") is None:
        return None  # e.g. the doctor's "new run with the fix applied" names a parent but starts afresh
    say = echo or (lambda _m: None)
    store = store or RunStore()
    if not store.exists(parent_id):
        raise UserError(f"the run to fine-tune from ({parent_id}) no longer exists, so there are no weights to "
                        "start from")
    parent = store.get(parent_id)
    step, state = parent_state(parent, config.get("init_from"), trainer.device, say)
    with_optimizer = bool(config.get("finetune_optimizer"))
    _check_shapes(trainer, state, parent)
    adopt = getattr(trainer, "load_parent_state", None)
    if adopt is not None:
        adopt(state, with_optimizer=with_optimizer)
    else:
        weights = {k: v for k, v in state.items() if k != "rng"}
        try:
            trainer.load_state(weights, weights_only=not with_optimizer)
        except ValueError:  # optimiser groups of another shape: keep fresh optimisers
            trainer.load_state(weights, weights_only=True)
    say(f"starting from the weights of {parent.name} (step {step})")
    return step


def _check_shapes(trainer, state: dict, parent) -> None:
    """A plain message when the parent's networks cannot fit this data (a
    different image size, another table's columns), instead of a tensor
    size error deep in ``load_state_dict``. Text is left to the trainer,
    which adopts the parent's vocabulary first."""
    if (state.get("extra") or {}).get("vocab") is not None or hasattr(trainer, "load_parent_state"):
        return
    nets = state.get("nets", {})
    for name, net in trainer.nets.items():
        theirs = nets.get(name)
        if theirs is None:
            raise UserError(f"run {parent.name} has no network {name!r}; fine-tune only from a run of the same model")
        for key, tensor in net.state_dict().items():
            other = theirs.get(key)
            if other is None or tuple(other.shape) != tuple(tensor.shape):
                raise UserError(
                    f"the weights of {parent.name} do not fit this data: {name}.{key} is "
                    f"{tuple(other.shape) if other is not None else 'missing'} there and {tuple(tensor.shape)} here. "
                    f"Fine-tune on data of the same shape as {parent.dataset!r} (image size and channels)")
