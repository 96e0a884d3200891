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
2. **Size follows N.** Below 100 k characters one layer fewer (never below
   one): a smaller model memorises less and takes more steps in the same time.
3. **The budget follows N.** steps = min(written steps, passes_max x N / tokens),
   at least :data:`MIN_STEPS`, with passes_max = :data:`MAX_PASSES` (the
   passes after which the held-out loss stopped improving in tuning, with the
   dropout above); the cosine decay ends with the new last step.
4. **The device.** On a CUDA GPU a step costs little, so the data, not the
   clock, bounds a run: from 1 M characters up the model is twice as wide
   (``n_embd``/``hidden`` doubled, the same layers); everything else follows
   the same rule. On the CPU and Apple's MPS the written size is kept.

The rule was tuned on pydoc (465 kB), Debian's licence texts (237 kB) and the
first 60 kB of pydoc, and checked on corpora it was not tuned on (see
``python -m aigc_core bench --only presets``, :mod:`aigc_core.benchmarks.presets`).
"""

from __future__ import annotations

import math

from ...data.text import VAL_FRACTION

SMALL_CHARS = 100_000
LARGE_CHARS = 1_000_000
MAX_PASSES = 6.0
MIN_STEPS = 200
SMALL_WEIGHT_DECAY = 0.2
#: models whose presets the rule fits (bigram: written presets)
FITTED = ("char_gpt", "char_lstm")


def training_chars(summary: dict) -> int | None:
    """Characters a run trains on: the corpus less its held-out last 10%
    (in line mode the last 10% of the items, about the same share)."""
    count = summary.get("count")
    return None if count is None else int(count) - int(int(count) * VAL_FRACTION)


def tokens_per_step(model: dict, summary: dict) -> int:
    """Characters one training step predicts with these settings."""
    batch, block = int(model.get("batch_size", 16)), int(model.get("block_size", 128))
    if summary.get("mode") == "lines" and summary.get("lines"):
        mean_item = summary["count"] / summary["lines"]
        return batch * max(1, min(block, round(mean_item + 1)))
    return batch * block


def kb(chars: int) -> str:
    return f"{chars / 1000:,.0f} kB" if chars >= 1000 else f"{chars} characters"


def fit_text_preset(model_name: str, name: str, preset: dict, summary: dict, device_type: str) -> tuple[dict, str]:
    """The rule in this module's docstring: ``(preset, why)``."""
    n = training_chars(summary)
    if model_name not in FITTED or not n:
        return preset, ""
    model, train = preset.setdefault("model", {}), preset.setdefault("train", {})
    layers_key = "n_layer"
    width_key = "n_embd" if model_name == "char_gpt" else "hidden"

    # 1. regularisation
    model["dropout"] = 0.2 if n < SMALL_CHARS else 0.1 if n < LARGE_CHARS else 0.0
    written_decay = float(model.get("weight_decay", 0.0))  # the configs' default is 0 where a preset names none
    model["weight_decay"] = max(written_decay, SMALL_WEIGHT_DECAY) if n < SMALL_CHARS else written_decay
    # 2. size
    if n < SMALL_CHARS and model.get(layers_key, 1) > 1:
        model[layers_key] -= 1
    # 4. the device: a GPU affords a wider model on a large corpus
    if device_type == "cuda" and n >= LARGE_CHARS and width_key in model:
        model[width_key] *= 2
    # 3. the budget
    tokens = tokens_per_step(model, summary)
    written = int(train.get("steps", 0)) or None
    wanted = max(MIN_STEPS, math.ceil(MAX_PASSES * n / tokens))
    steps = min(written, wanted) if written else wanted
    train["steps"] = steps
    model["lr_decay_steps"] = steps
    for key in ("sample_every", "checkpoint_every"):
        if key in train:
            train[key] = min(int(train[key]), steps)
    passes = steps * tokens / n
    width = f" x {model[width_key]}" if width_key in model else ""
    why = (f"for {kb(int(summary['count']))} of text{' on a GPU' if device_type == 'cuda' else ''}: "
           f"{model.get(layers_key, 1)} layer{'s' if model.get(layers_key, 1) != 1 else ''}{width}, "
           f"dropout {model['dropout']:g}, weight decay {model.get('weight_decay', 0):g}, "
           f"{steps:,} steps = ~{passes:.1f} passes over the text")
    return preset, why
