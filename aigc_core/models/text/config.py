"""The character models' settings and sampling knobs."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import param
from ...data.vocab import max_vocab_param

MAX_SAMPLE_LENGTH = 20_000


# ---- configs -----------------------------------------------------------------
# Fields every text model shares; each call makes a new dataclass field.

def _batch_size(default: int):
    return param(default, "Batch size", "Text windows (or items, in line mode) per training step.", min=1, max=1024, step=1)


def _block_size(default: int):
    return param(default, "Context length (characters)",
                 "The longest stretch of text one training window holds. A GPT can look back at most this far; "
                 "in line mode longer items are cut to it.", min=4, max=1024, step=8)


def _lr(default: float):
    return param(default, "Learning rate", "Peak step size of AdamW.", min=1e-5, max=1.0, log=True)


def _warmup(default: int):
    return param(default, "Warm-up steps", "The learning rate rises linearly from 0 over these first steps.",
                 min=0, max=100_000, step=10, advanced=True)


def _decay(default: int):
    return param(default, "Decay steps",
                 "The learning rate follows a cosine from its peak down to its floor (a tenth of it unless the "
                 "settings say otherwise) over this many steps "
                 "(set it to the run's training steps), then stays there. 0 = no decay.",
                 min=0, max=10_000_000, step=100, advanced=True)


def _weight_decay(default: float):
    return param(default, "Weight decay", "AdamW's pull of weight matrices towards zero (biases and norms are exempt).",
                 min=0.0, max=1.0, step=0.01, advanced=True)


def _grad_clip(default: float):
    return param(default, "Gradient clip", "Largest allowed gradient norm per step (0 = off); guards against spikes.",
                 min=0.0, max=100.0, step=0.1, advanced=True)


def _dropout(default: float):
    return param(default, "Dropout", "Fraction of activations zeroed during training; helps against memorising a "
                 "small corpus, slows learning on a large one.", min=0.0, max=0.9, step=0.05)


@dataclass
class BigramConfig:
    batch_size: int = _batch_size(64)
    block_size: int = _block_size(128)
    lr: float = _lr(0.05)
    warmup_steps: int = _warmup(0)
    lr_decay_steps: int = _decay(3000)
    weight_decay: float = _weight_decay(0.0)
    grad_clip: float = _grad_clip(0.0)
    max_vocab: int = max_vocab_param()


@dataclass
class CharLSTMConfig:
    n_embd: int = param(64, "Embedding size", "Length of the vector each character is turned into.", min=4, max=1024, step=8)
    hidden: int = param(256, "LSTM width", "Size of the recurrent state: everything the model remembers about the past.",
                        min=8, max=4096, step=32)
    n_layer: int = param(2, "LSTM layers", "Stacked LSTM layers; each reads the one below.", min=1, max=8, step=1)
    dropout: float = _dropout(0.0)
    batch_size: int = _batch_size(32)
    block_size: int = _block_size(128)
    lr: float = _lr(3e-3)
    warmup_steps: int = _warmup(50)
    lr_decay_steps: int = _decay(1500)
    weight_decay: float = _weight_decay(0.0)
    grad_clip: float = _grad_clip(1.0)
    max_vocab: int = max_vocab_param()


@dataclass
class CharGPTConfig:
    n_layer: int = param(3, "Layers", "Transformer blocks (attention + MLP) stacked.", min=1, max=24, step=1)
    n_head: int = param(4, "Attention heads", "Heads per layer; each attends to the past in its own way. "
                        "Must divide the embedding size.", min=1, max=32, step=1)
    n_embd: int = param(96, "Embedding size", "Width of the residual stream (a multiple of the number of heads).",
                        min=8, max=2048, step=8, multiple_of="n_head")
    dropout: float = _dropout(0.0)
    bias: bool = param(False, "Biases", "Biases in linear layers and LayerNorms (usually a little slower, no better).",
                       advanced=True)
    batch_size: int = _batch_size(16)
    block_size: int = _block_size(128)
    lr: float = _lr(5e-3)
    warmup_steps: int = _warmup(100)
    lr_decay_steps: int = _decay(3000)
    weight_decay: float = _weight_decay(0.1)
    lr_floor: float = param(0.1, "Learning-rate floor", "Where the cosine decay ends, as a fraction of the peak "
                            "learning rate (0 = it decays all the way to zero).", min=0.0, max=1.0, step=0.05,
                            advanced=True)
    beta2: float = param(0.99, "Adam beta2", "Averaging of squared gradients; 0.99 reacts faster than 0.999 on "
                         "small batches.", min=0.5, max=0.9999, step=0.001, advanced=True)
    grad_clip: float = _grad_clip(1.0)
    max_vocab: int = max_vocab_param()


@dataclass
class TextKnobs:
    """What a character model's samples can be asked for."""

    prompt: str = param("", "Prompt", "The text the model continues (in line mode: the start of an item).")
    length: int = param(200, "Length (characters)", "How many new characters to write (in line mode at most: an "
                        "item ends when the model ends it).", min=1, max=MAX_SAMPLE_LENGTH, step=10)
    temperature: float = param(1.0, "Temperature", "Divides the scores before the softmax. Below 1: safer, more "
                               "repetitive; above 1: wilder; 0: always the likeliest character.",
                               min=0.0, max=2.0, step=0.05)
    top_k: int = param(0, "Top-k (0 = off)", "Only the k likeliest characters can be drawn.", min=0, max=500)
    top_p: float = param(1.0, "Top-p", "Only the likeliest characters whose probabilities add up to p can be drawn "
                         "(1 = off).", min=0.05, max=1.0, step=0.05)
    greedy: bool = param(False, "Greedy (always the likeliest character)", "Ignore the randomness: always take the "
                         "likeliest next character.")
