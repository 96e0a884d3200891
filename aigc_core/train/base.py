"""The contract between a model family and the shared training loop.

A trainer owns its networks, optimisers and a fixed noise batch (or fixed
prompt); the loop in :mod:`aigc_core.train.loop` owns everything else: the
device choice, budgets, logging cadence, film strip, checkpoints, the control
field (pause/resume/stop) and the NaN guard.

Rules for ``step``:
- it takes its batch itself by indexing a data tensor already on the device
  (no per-item DataLoader);
- it returns *detached tensors* (scalars), never Python floats: the loop turns
  them into numbers only at the logging cadence, so there is no host sync in
  the hot loop. The keys are metric names shown on the charts
  (e.g. ``loss_d``, ``loss_g``, ``d_real``, ``d_fake``, ``grad_norm_g``,
  ``recon``, ``kl``, ``loss``). Keys whose name starts with ``loss`` are
  checked for NaN/inf.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Trainer:
    """Base class; subclasses set up models in ``__init__``.

    Subclasses must implement :meth:`step`, :meth:`film_strip` and
    :meth:`sample`, and put every network in ``self.nets`` and every optimiser
    in ``self.optims`` (dicts keyed by a short name such as ``"G"``, ``"D"``),
    so checkpoints and ``torch.compile``/``channels_last`` can treat them all
    alike.
    """

    #: a plain-language description of a loss key for the NaN message, e.g.
    #: {"loss_d": "the discriminator's loss"}
    loss_names: dict[str, str] = {}
    #: a hint added to the NaN message
    nan_hint: str = "try a lower learning rate"
    #: number of training examples one step consumes (for samples/s)
    batch_size: int = 1

    def __init__(self, cfg, data, device: torch.device, seed: int, autocast: torch.dtype | None = None):
        self.cfg = cfg
        self.data = data
        self.device = device
        self.seed = seed
        self.autocast = autocast
        self.nets: dict[str, nn.Module] = {}
        self.optims: dict[str, torch.optim.Optimizer] = {}
        # One generator for every random draw in training (batches, noise), so a
        # resumed run continues the same seed stream.
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)

    # ---- the loop calls these -------------------------------------------------
    def step(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def film_strip(self) -> Any:
        """A frame from fixed noise / a fixed prompt: a PIL image, or a str for
        text; ``None`` when the family has no frame."""
        raise NotImplementedError

    def sample(self, n: int, seed: int, **knobs) -> Any:
        """Generate ``n`` samples; the same seed gives the same samples. The
        knobs are the fields of the model's declared knobs dataclass
        (``ModelSpec.knobs``). What comes back follows the kind of data
        (:mod:`aigc_core.data.kinds`): images a float tensor (N, C, H, W) in
        [0, 1] on the CPU; points (N, 2); text a list of str; tables a DataFrame."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Held-out numbers at the end of a run (e.g. validation loss). Optional."""
        return {}

    def autocast_ctx(self):
        """``torch.autocast`` for the chosen precision, or a no-op."""
        if self.autocast is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.autocast)

    # ---- checkpoints ----------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimiser states, the RNG."""
        return {
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "optims": {k: v.state_dict() for k, v in self.optims.items()},
            "rng": self.gen.get_state(),
            "extra": self.extra_state(),
        }

    def load_state(self, state: dict[str, Any], *, weights_only: bool = False) -> None:
        for k, net in self.nets.items():
            net.load_state_dict(state["nets"][k])
        if weights_only:
            self.load_extra_state(state.get("extra") or {})
            return
        for k, opt in self.optims.items():
            if k in state.get("optims", {}):
                opt.load_state_dict(state["optims"][k])
        if "rng" in state:
            self.gen.set_state(state["rng"].cpu() if hasattr(state["rng"], "cpu") else state["rng"])
        self.load_extra_state(state.get("extra") or {})

    def extra_state(self) -> dict[str, Any]:
        """Tensors or JSON-able values beyond nets/optims (e.g. fixed noise,
        a vocabulary, fitted code statistics). Override when needed."""
        return {}

    def load_extra_state(self, extra: dict[str, Any]) -> None:
        pass

    def train_mode(self, on: bool = True) -> None:
        for net in self.nets.values():
            net.train(on)


class FixedNoiseTrainer(Trainer):
    """A trainer whose film strip decodes a fixed noise batch (the GANs and the
    VAEs/AEs): the noise is saved with every checkpoint, so a resumed run's
    frames continue from the same inputs, and a loaded optimiser's parameter
    layout is matched to the networks'."""

    fixed_noise: torch.Tensor

    def load_state(self, state, *, weights_only: bool = False) -> None:
        from .utils import match_param_layout

        super().load_state(state, weights_only=weights_only)
        match_param_layout(self.optims)

    def extra_state(self) -> dict:
        return {"fixed_noise": self.fixed_noise.detach().cpu()}

    def load_extra_state(self, extra: dict) -> None:
        if "fixed_noise" in extra:
            self.fixed_noise = extra["fixed_noise"].to(self.device, torch.float32)
