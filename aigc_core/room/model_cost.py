"""What a run config costs, estimated before anything is queued.

A model's cost is estimated without allocating it: the trainer is built with
every tensor redirected to PyTorch's ``meta`` device (shapes and dtypes, no
storage), so asking about a 1.2 G-parameter model takes milliseconds and no
memory. Image data sets are stood in for by an empty meta tensor of the shape
their summary records (so a set not yet downloaded costs nothing); text,
tables and points are loaded (the vocabulary and the table encoder decide the
network sizes), and trainers that read their images' values get the real
images. Loading costs up to about a second for the built-in sets (fitting the
table encoder of ``ecommerce`` is the slowest).

Training memory for one step is estimated as::

    step = weights + gradients + optimiser state + activations + resident data

- weights and gradients: 4 bytes per parameter each (fp32);
- optimiser state: per parameter, Adam/AdamW keep two moments (8 bytes),
  RMSprop one, SGD with momentum one, plain SGD none;
- activations: the forward passes of one training step are run on the meta
  device, adding up the bytes of every tensor autograd keeps for the backward
  pass (parameters excluded); the largest graph of the step counts (a GAN
  builds one for the critic, one for the generator). It leaves out the
  short-lived tensors of the backward pass and assumes fp32, so it is a rough
  figure (bf16 autocast roughly halves it);
- resident data: tensors the trainer keeps on the device (the data set, fixed
  noise, validation windows).

A checkpoint holds the weights, buffers and optimiser state.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch

from ..errors import UserError
from .limits import MiB, Limits, bytes_words, count_words, memory_budget


# ---- the estimate ----------------------------------------------------------------

@dataclass
class Cost:
    """What a run config costs, in parameters and bytes (see the module docstring)."""

    params: int
    weight_bytes: int  # parameters and buffers
    optimizer_bytes: int
    activation_bytes: int | None  # None when one step could not be traced
    resident_bytes: int
    batch_size: int

    @property
    def train_bytes(self) -> int:
        """Weights, gradients and optimiser state: what a step needs before activations."""
        return 2 * self.weight_bytes + self.optimizer_bytes

    @property
    def step_bytes(self) -> int:
        return self.train_bytes + (self.activation_bytes or 0) + self.resident_bytes

    @property
    def checkpoint_bytes(self) -> int:
        return self.weight_bytes + self.optimizer_bytes


META = torch.device("meta")


class _OnMeta(torch.overrides.TorchFunctionMode):
    """Every tensor made or moved inside this mode lands on the meta device:
    factory calls get ``device=meta``, ``.to(device)``/``.cuda()`` go to meta.
    A trainer built inside it has its real shapes and no storage.
    ``on_backward``, when given, is called instead of ``Tensor.backward``."""

    def __init__(self, on_backward=None):
        super().__init__()
        self.on_backward = on_backward

    def __torch_function__(self, func, types, args=(), kwargs=None):
        initialiser = getattr(func, "__module__", None) == "torch.nn.init" or (
            func in _INIT_OPS and not torch.is_grad_enabled())
        target = args[0] if args else (kwargs or {}).get("tensor")  # torch.nn.init passes it by name
        if initialiser and getattr(target, "is_meta", False):
            return target  # initialising weights that have no values: nothing to do (and slow on meta)
        if func is torch.Tensor.backward and self.on_backward is not None:
            return self.on_backward(*args, **(kwargs or {}))
        kwargs = dict(kwargs or {})
        if "device" in kwargs or func in _factories():
            kwargs["device"] = META
            kwargs.pop("pin_memory", None)
        if func in (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu):
            tensor = args[0]
            if func is torch.Tensor.to:
                rest = [a for a in args[1:] if isinstance(a, torch.dtype)]
                dtype = kwargs.get("dtype") or (rest[0] if rest else None)
                return tensor.to(device=META, dtype=dtype) if dtype is not None else tensor.to(META)
            return tensor.to(META)
        return func(*args, **kwargs)


# in-place ops weight initialisers (torch.nn.init) are made of; none changes a shape
_INIT_OPS = {getattr(torch.Tensor, name) for name in (
    "normal_", "uniform_", "zero_", "fill_", "mul_", "add_", "sub_", "div_", "clamp_", "erfinv_", "copy_",
    "bernoulli_", "exponential_", "random_", "log_normal_", "cauchy_", "geometric_", "fill_diagonal_")}


@functools.cache
def _factories():
    from torch.utils._device import _device_constructors

    return _device_constructors()


def _stand_in(info):
    """An empty meta data set of the summary's shape (images: the set may not
    even be downloaded yet), or None for data whose contents size the networks
    or that is small to load (text, tables, points)."""
    from ..data.base import ImageData

    s = info.summary or {}
    if info.kind == "image" and all(s.get(k) for k in ("count", "size", "channels")):
        classes = int(s.get("classes") or 0)
        return ImageData(info.name, torch.empty((s["count"], s["channels"], s["size"], s["size"]),
                                                dtype=torch.uint8, device=META),
                         labels=torch.empty(s["count"], dtype=torch.long, device=META) if classes else None,
                         class_names=[str(i) for i in range(classes)] or None)
    return None


def _optimizer_slots(group: dict) -> int:
    """Tensors of optimiser state per parameter for a param group's settings."""
    if "betas" in group:  # Adam, AdamW, NAdam, RAdam ...: two moments (+ the max for AMSGrad)
        return 2 + bool(group.get("amsgrad"))
    slots = 1 if "alpha" in group and "momentum" in group else 0  # RMSprop's square average
    return slots + bool(group.get("momentum"))


def _trace_activations(trainer) -> int | None:
    """Bytes autograd keeps for the backward pass in one step on the meta
    device: the largest graph over the step's backward calls (a GAN has one
    for the critic and one for the generator). The backward passes themselves
    are skipped (they would only add time), and so are optimiser steps."""
    params = {id(p) for net in trainer.nets.values() for p in net.parameters()}
    graph, peak, backwards = [0], [0], [0]

    def pack(t):
        if id(t) not in params and id(getattr(t, "_base", None)) not in params:
            graph[0] += t.numel() * t.element_size()
        return t

    def backward(*_args, **_kwargs):
        peak[0], graph[0] = max(peak[0], graph[0]), 0
        backwards[0] += 1

    for opt in trainer.optims.values():
        opt.step = lambda *a, **k: None  # Adam's step reads its counter with .item(), which meta cannot
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), _OnMeta(on_backward=backward):
                trainer.step()
        except Exception:  # noqa: BLE001 - e.g. a host sync after backward; the count may still be whole
            pass
    return peak[0] if backwards[0] else None


def build_on_meta(config: dict, data=None):
    """(trainer, data) for a run config with every tensor on the meta device.

    Uses ``data`` when given, else a stand-in for image data, else loads the
    data set. A :class:`UserError` the trainer raises (a setting that cannot
    work with this data set) comes through unchanged."""
    from ..config import TrainSettings, from_dict
    from ..data.catalog import dataset_info, load_dataset
    from ..registry import get_model

    spec = get_model(config["model"])
    settings = from_dict(TrainSettings, config.get("train", {}))
    model_cfg = from_dict(spec.config_cls, config.get("model_config", {}))

    def build(data):
        with torch.random.fork_rng(devices=[]), _OnMeta():  # the caller's random stream stays as it was
            return spec.trainer_cls(model_cfg, data, torch.device("cpu"), settings.seed, None)

    if data is not None:
        return build(data), data
    stand_in = _stand_in(dataset_info(config["dataset"]))
    if stand_in is not None:
        try:
            return build(stand_in), stand_in
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - the trainer reads the images' values (statistics): use the real ones
            try:
                data = load_dataset(config["dataset"])
            except UserError:  # not here yet (a download): no estimate now, rather than no run
                raise exc from None
            return build(data), data
    data = load_dataset(config["dataset"])
    return build(data), data


def estimate(config: dict, data=None, *, trace: bool = True) -> tuple[Cost, object, object]:
    """(cost, trainer on meta, the data it was built with) of a run config;
    ``trace=False`` skips the activation trace (``activation_bytes`` is then None)."""
    trainer, data = build_on_meta(config, data)
    seen, params, weight_bytes = set(), 0, 0
    for net in trainer.nets.values():
        for t in [*net.parameters(), *net.buffers()]:
            if id(t) in seen:
                continue
            seen.add(id(t))
            weight_bytes += t.numel() * t.element_size()
            params += t.numel() if isinstance(t, torch.nn.Parameter) else 0
    optimizer_bytes = sum(_optimizer_slots(g) * p.numel() * 4
                          for opt in trainer.optims.values() for g in opt.param_groups for p in g["params"])
    resident = sum(v.numel() * v.element_size() for v in vars(trainer).values()
                   if isinstance(v, torch.Tensor) and v.device.type == "meta" and id(v) not in seen)
    with torch.random.fork_rng(devices=[]):
        activations = _trace_activations(trainer) if trace else None
    batch = int(getattr(trainer.cfg, "batch_size", 0) or trainer.batch_size)
    return Cost(params, weight_bytes, optimizer_bytes, activations, resident, batch), trainer, data


def _size_fields(config: dict, data, trainer) -> list[str]:
    """The integer settings whose halving shrinks the parameter count the most
    (what to lower), found by rebuilding on the meta device."""
    from dataclasses import fields

    base = sum(p.numel() for net in trainer.nets.values() for p in net.parameters())
    cuts = []
    for f in fields(trainer.cfg):
        value = getattr(trainer.cfg, f.name)
        # advanced settings (schedules, step counts) do not size networks
        if type(value) is not int or value < 2 or f.name == "batch_size" or f.metadata.get("advanced"):
            continue
        smaller = max(int(f.metadata.get("min") or 1), value // 2)
        try:
            other, _ = build_on_meta({**config, "model_config": {**config["model_config"], f.name: smaller}}, data)
        except Exception:  # noqa: BLE001 - a halved value can break a cross-field rule; skip that field
            continue
        n = sum(p.numel() for net in other.nets.values() for p in net.parameters())
        if n < 0.8 * base:
            cuts.append((n, f.name))
    return [name for _, name in sorted(cuts)[:2]]


def check_cost(config: dict, limits: Limits | None = None, data=None) -> Cost | None:
    """Refuse (UserError) a run config whose model is over the parameter
    ceiling, whose step would not fit the device's memory, or whose
    checkpoint is over the checkpoint ceiling. Returns the estimate (None
    when this trainer cannot be built on the meta device)."""
    from ..config import TrainSettings, from_dict
    from ..train.device import pick_device

    limits = limits or Limits.from_env()
    try:
        cost, trainer, data = estimate(config, data, trace=False)
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - a trainer that needs real tensors to build: the worker will tell
        return None

    def refuse(what: str, limit: str, var: str) -> UserError:
        lower = _size_fields(config, data, trainer)
        advice = f"lower {' or '.join(lower)}" if lower else "make the model smaller"
        return UserError(f"this model has {count_words(cost.params)} parameters and needs {what}; the limit here is "
                         f"{limit} ({var}); {advice}")

    train_words = f"about {bytes_words(cost.train_bytes)} to train (weights, gradients and optimiser state)"
    if limits.max_params and cost.params > limits.max_params:
        raise refuse(train_words, f"{count_words(limits.max_params)} parameters", "AIGC_MAX_PARAMS")
    if limits.max_checkpoint_mb and cost.checkpoint_bytes > limits.max_checkpoint_mb * MiB:
        raise refuse(f"about {bytes_words(cost.checkpoint_bytes)} per checkpoint",
                     f"{bytes_words(limits.max_checkpoint_mb * MiB)} per checkpoint", "AIGC_MAX_CHECKPOINT_MB")
    device = pick_device(from_dict(TrainSettings, config.get("train", {})).device)
    budget, how = memory_budget(limits, device)
    if budget and cost.train_bytes > budget:
        raise refuse(train_words, f"{bytes_words(budget)}, {how}", "AIGC_MAX_STEP_MEMORY_MB")
    with torch.random.fork_rng(devices=[]):
        cost.activation_bytes = _trace_activations(trainer)
    if budget and cost.step_bytes > budget:
        parts = (f"about {bytes_words(cost.step_bytes)} for one training step (of which "
                 f"{bytes_words(cost.activation_bytes or 0)} activations for a batch of {cost.batch_size})")
        error = refuse(parts, f"{bytes_words(budget)}, {how}", "AIGC_MAX_STEP_MEMORY_MB")
        if (cost.activation_bytes or 0) > cost.train_bytes:
            error = UserError(f"{error}, or lower batch_size")
        raise error
    return cost


