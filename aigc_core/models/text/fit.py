"""How a character model's preset follows the corpus it trains on (``fit_preset``).

A preset is written for a corpus of a few hundred kB. On a smaller one the
same budget means many passes over the same characters, and a model that can
memorise them does: its training loss keeps falling while its held-out loss
turns up. On a larger one it sees a part of the text once. The rule, for
``char_gpt`` and ``char_lstm`` (a bigram's table holds pair counts and nothing
to memorise, so its presets stay as written)::

    N      = characters trained on (the corpus less its held-out last 10%)
    tokens = characters one step predicts (batch_size x block_size; in line
             mode batch_size x (mean item length + 1))
    passes = steps x tokens / N

1. **Regularisation follows N.** dropout = 0.2 below 100 k characters, 0.1
   below 1 M, 0 from 1 M up; AdamW's weight decay as written (0.1 for the
   GPT, 0 for the LSTM), raised to 0.2 below 100 k.
2. **The budget follows N, within the written one.** steps = min(written
   steps, max(MIN_STEPS, MAX_PASSES x N / tokens)); the cosine decay ends
   with the new last step. So only a corpus so small that the written steps
   would read it more than MAX_PASSES times gets a shorter run, and never
   below MIN_STEPS.
3. **Size follows N and the device.** On a CUDA GPU a step costs little, so
   the data, not the clock, bounds a run: from 1 M characters up the model is
   twice as wide (``n_embd``/``hidden`` doubled, the same layers). On the CPU
   and Apple's MPS the written size is kept.

What the tuning measured (one CPU thread, CPU-time budgets, a machine with a
load average near 20; ``python -m aigc_core bench --only presets`` repeats it):
stopping early is the wrong cure for memorising. Capped at 6 passes the GPT
had not learnt the language yet (licence texts, 237 kB: 2.10 nats after 626
steps, against 1.71 for the small-CPU recipe's 2,000 steps), and a model one
layer smaller on 60 kB was still improving at 1,000 steps (2.20 nats). Hence
no smaller model on the CPU, MIN_STEPS = 1,500 and a cap of 40 passes, which
binds only below about 80 kB of text (a Standard run's 3,000 steps of 2,048
characters). Dropout and weight decay are what is left against memorising.
Under that load the GPT's step cost 110 ms of CPU time (70 ms on a quiet
machine), so Standard took 880-990 steps in 110 CPU seconds and stayed behind
the recipe's 2,000 steps on five of the six corpora, still improving at the
end (undertrained, not memorising); only on 40 kB of changelogs, where the
recipe memorises, did it win (1.95 against 2.30 nats).

"""

from __future__ import annotations

import dataclasses
import math

from ...data.text import VAL_FRACTION

SMALL_CHARS = 100_000
LARGE_CHARS = 1_000_000
MAX_PASSES = 40.0
MIN_STEPS = 1500
SMALL_WEIGHT_DECAY = 0.2


def training_chars(summary: dict) -> int | None:
    """Characters a run trains on: the corpus less its held-out last 10%
    (in line mode the last 10% of the items, about the same share)."""
    count = summary.get("count")
    return None if count is None else int(count) - int(int(count) * VAL_FRACTION)


def tokens_per_step(batch_size: int, block_size: int, summary: dict) -> int:
    """Characters one training step predicts with these settings."""
    if summary.get("mode") == "lines" and summary.get("lines"):
        mean_item = summary["count"] / summary["lines"]
        return batch_size * max(1, min(block_size, round(mean_item + 1)))
    return batch_size * block_size


def kb(chars: int) -> str:
    return f"{chars / 1000:,.0f} kB" if chars >= 1000 else f"{chars} characters"


def fit_text_preset(model_name: str, config_cls: type, name: str, preset: dict, summary: dict,
                    device_type: str) -> tuple[dict, str]:
    """The rule in this module's docstring: ``(preset, why)``; ``config_cls``
    gives the defaults of what the preset leaves out."""
    n = training_chars(summary)
    if not n:
        return preset, ""
    model, train = preset.setdefault("model", {}), preset.setdefault("train", {})
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    setting = lambda key: model.get(key, defaults[key])  # noqa: E731
    width_key = "n_embd" if "n_embd" in defaults and "hidden" not in defaults else "hidden"

    # 1. regularisation
    model["dropout"] = 0.2 if n < SMALL_CHARS else 0.1 if n < LARGE_CHARS else 0.0
    written_decay = float(setting("weight_decay"))
    model["weight_decay"] = max(written_decay, SMALL_WEIGHT_DECAY) if n < SMALL_CHARS else written_decay
    # 3. size: a GPU affords a wider model on a large corpus
    if device_type == "cuda" and n >= LARGE_CHARS:
        model[width_key] = 2 * int(setting(width_key))
    # 2. the budget
    tokens = tokens_per_step(int(setting("batch_size")), int(setting("block_size")), summary)
    wanted = max(MIN_STEPS, math.ceil(MAX_PASSES * n / tokens))
    steps = min(int(train["steps"]), wanted) if train.get("steps") else wanted
    train["steps"] = model["lr_decay_steps"] = steps
    for key in ("sample_every", "checkpoint_every"):
        if key in train:
            train[key] = min(int(train[key]), steps)
    layers = int(setting("n_layer"))
    why = (f"for {kb(int(summary['count']))} of text{' on a GPU' if device_type == 'cuda' else ''}: "
           f"{layers} layer{'s' if layers != 1 else ''} x {setting(width_key)}, dropout {model['dropout']:g}, "
           f"weight decay {model['weight_decay']:g}, {steps:,} steps = ~{steps * tokens / n:.1f} passes over the text")
    return preset, why
