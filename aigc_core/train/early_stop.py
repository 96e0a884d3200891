"""The best checkpoint and early stopping, driven by a held-out loss.

A model that declares a held-out loss (``ModelSpec.best_by``, e.g. the text
models' ``val_loss``) is measured on its fixed held-out split every
``eval_every`` steps. With L_k the loss at check k:

- best checkpoint: when L_k < best = min(L_1 .. L_{k-1}), the weights are
  saved as ``best.safetensors`` (replacing the previous best);
- improvement: L_k < best - ``min_delta``; it sets the count of checks without
  one back to 0, any other check adds 1;
- early stop: the run ends once ``patience`` checks in a row were not
  improvements (a run of gains smaller than ``min_delta`` counts as none).

The last weights are always kept as well (resuming needs them); sampling and
export use the best by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import TrainSettings


@dataclass
class HeldOutWatch:
    """The best held-out value so far and how many checks have passed without beating it."""

    key: str
    min_delta: float
    patience: int | None  # None: never stop early
    best: float = math.inf
    best_step: int | None = None
    since_best: int = 0  # checks since the last improvement by more than min_delta

    @classmethod
    def for_run(cls, spec, settings: TrainSettings, found: dict | None, step: int) -> "HeldOutWatch | None":
        """The watch of a run (``None`` when its model declares no held-out loss).
        A resumed run takes the best so far from its ``best.safetensors`` and
        counts the checks since then from the schedule (since the best, which
        is at most the count since the last improvement by ``min_delta``, so a
        resumed run never stops sooner than it would have), so resuming neither
        forgets the best nor restarts the patience."""
        if not spec.best_by:
            return None
        stop = settings.early_stop == "on" or (settings.early_stop == "auto" and spec.early_stop)
        watch = cls(spec.best_by, settings.min_delta, settings.patience if stop else None)
        if found is not None and found["key"] == spec.best_by and math.isfinite(found["value"]):
            watch.best, watch.best_step = found["value"], found["step"]
            if settings.eval_every and step > found["step"]:
                watch.since_best = step // settings.eval_every - found["step"] // settings.eval_every
        return watch

    def check(self, step: int, held_out: dict[str, float]) -> bool:
        """Count one check; True when it is the best so far (save the weights)."""
        value = held_out.get(self.key)
        if value is None or not math.isfinite(value) or value >= self.best:
            self.since_best += 1
            return False
        self.since_best = 0 if value < self.best - self.min_delta else self.since_best + 1
        self.best, self.best_step = float(value), step
        return True

    @property
    def exhausted(self) -> bool:
        """Early stop: ``patience`` checks in a row without an improvement by more than ``min_delta``."""
        return self.patience is not None and self.best_step is not None and self.since_best >= self.patience

    def reason(self, step: int) -> str:
        return (f"stopped early at step {step}: the held-out loss had not improved by more than {self.min_delta:g} "
                f"in {self.since_best} checks; the best weights ({self.key} {self.best:.4f} at step "
                f"{self.best_step}) are the ones sampled and exported")
