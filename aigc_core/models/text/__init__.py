"""Character-level language models: ``bigram``, ``char_lstm`` and ``char_gpt``: the declarations.

What they learn and the loss they share (cross-entropy, bits per character)
are explained where the networks are, in :mod:`.networks`.
"""

from __future__ import annotations

import functools
import math

from ...data.vocab import EOS, PAD, SOS, CharVocab  # noqa: F401 - as text.<name>
from ...registry import ModelSpec, register
from .config import BigramConfig, CharGPTConfig, CharLSTMConfig, TextKnobs
from .networks import MLP, BigramLM, Block, CausalSelfAttention, CharGPT, CharLSTM  # noqa: F401
from .explain import text_explanation
from .fit import fit_text_preset
from .trainer import BigramTrainer, CharGPTTrainer, CharLSTMTrainer, CharTrainer, mark_copies  # noqa: F401

# ---- what every character model declares ------------------------------------------------

TEXT = dict(
    family="text", data_kind="text", knobs=TextKnobs, capabilities={"write"},
    charts=[("Bits per character", ("bpc", "val_bpc"),
             "The training loss (cross-entropy) in bits: yes/no questions needed per next character; the loss "
             "in nats is this times ln 2. The held-out curve is measured on the last 10% of the text every few "
             "hundred steps; when it turns up while the training curve still falls, the model is memorising. "
             "The dotted line marks the best checkpoint (sampled and exported by default), the dashed one its "
             "held-out value.", "val_bpc"),
            ("Learning rate", ("lr",), "Warm-up, then a cosine decay to a tenth (to zero in the GPT's Standard preset).")],
    metrics={"loss": ("Training loss", "The cross-entropy of the next character on the last training batches, in nats.", "lower"),
             "bpc": ("Bits per character (training)", "The training loss in bits: loss / ln 2."),
             "lr": ("Learning rate", "The optimiser's step size (warm-up, then a cosine decay).")},
    derived={"bpc": ("loss", 1 / math.log(2))},
    film_caption="What the model writes from the same fixed start at every frame.",
    eval_budget=200,
    # a small text is memorised within a few passes: keep the best weights and stop once they stop improving
    best_by="val_loss", early_stop=True,
)

# ---- registration ------------------------------------------------------------------

def _fits(summary: dict) -> str | None:
    # a summary may leave out what is costly to count (a built-in not yet built)
    if summary.get("kind", "text") != "text":
        return "character models train on text"
    if summary.get("count") is not None and summary["count"] < 100:
        return "the text is too short (fewer than 100 characters)"
    return None


def _preset(steps: int, model: dict, sample_every: int, log_every: int = 25) -> dict:
    return dict(model=dict(model, lr_decay_steps=steps),
                train=dict(steps=steps, sample_every=sample_every, log_every=log_every, checkpoint_every=steps))


TEXT["fits"] = _fits  # every character model trains on the same texts

register(ModelSpec(
    name="bigram",
    explain=text_explanation("bigram"),
    tiny={"model": {"batch_size": 4, "block_size": 16}},
    title="Bigram (counting baseline)",
    **TEXT,
    description="Predicts the next character from the current one only: a table of next-character "
                "probabilities. The baseline that shows what a longer context buys.",
    config_cls=BigramConfig,
    trainer_cls=BigramTrainer,
    presets={
        "Quick": _preset(1000, dict(batch_size=32, block_size=64, lr=0.05), sample_every=200),
        "Standard": _preset(3000, dict(batch_size=64, block_size=128, lr=0.05), sample_every=500),
    },
))

register(ModelSpec(
    name="char_lstm",
    explain=text_explanation("char_lstm"),
    tiny={"model": {"n_embd": 8, "hidden": 16, "n_layer": 1, "batch_size": 4, "block_size": 16}},
    title="Character LSTM",
    **TEXT,
    description="An embedding and stacked LSTM layers read the text one character at a time and keep a "
                "memory of everything so far.",
    config_cls=CharLSTMConfig,
    trainer_cls=CharLSTMTrainer,
    fit_preset=functools.partial(fit_text_preset, "char_lstm", CharLSTMConfig),
    presets={
        # about 20 ms a step on a 2-core CPU: Quick trains in about half a minute
        "Quick": _preset(1200, dict(n_embd=48, hidden=192, n_layer=1, batch_size=32, block_size=64, lr=5e-3,
                                    warmup_steps=50), sample_every=200),
        "Standard": _preset(1500, dict(n_embd=64, hidden=256, n_layer=2, batch_size=32, block_size=128, lr=3e-3,
                                       warmup_steps=50), sample_every=250),
    },
))

register(ModelSpec(
    name="char_gpt",
    explain=text_explanation("char_gpt"),
    tiny={"model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "batch_size": 4, "block_size": 16}},

    title="Character GPT",
    **dict(TEXT, capabilities={"write", "attention"}),
    description="A small GPT: causal multi-head self-attention lets every character look back at the "
                "ones before it, softmax(QK^T / sqrt(d_k)) V, in pre-norm transformer blocks.",
    config_cls=CharGPTConfig,
    trainer_cls=CharGPTTrainer,
    fit_preset=functools.partial(fit_text_preset, "char_gpt", CharGPTConfig),
    presets={
        "Quick": _preset(1200, dict(n_layer=2, n_head=4, n_embd=96, block_size=64, batch_size=16, lr=5e-3,
                                    warmup_steps=50, dropout=0.0), sample_every=200),
        # Tuned on a 2-core CPU against the small-CPU recipe (4 layers x 128,
        # context 64, batch 12, lr 1e-3): with the same wall time a shallower,
        # narrower model that runs faster, sees twice the characters, reads a
        # longer context and takes bigger steps reaches a clearly lower
        # validation loss (see `python -m aigc_core bench --only text`).
        # Two heads of 48 rather than four of 24, and a cosine all the way to
        # zero, took 0.06 nats more off on Python source (stdlib_150k), the
        # one corpus where Standard was not 0.05 below the recipe, and
        # lowered the other corpora's figures too (:mod:`.fit`).
        "Standard": _preset(3000, dict(n_layer=3, n_head=2, n_embd=96, block_size=128, batch_size=16, lr=7e-3,
                                       warmup_steps=100, lr_floor=0.0, dropout=0.0, weight_decay=0.3, beta2=0.99,
                                       grad_clip=1.0),
                            sample_every=250),
    },
))
