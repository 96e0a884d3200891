"""Text benchmarks: training and sampling speed, and the quality each model
reaches in a fixed wall time on the ``pydoc`` corpus.

Every model trains for the same wall time (110 s; 10 s in quick mode, and the
keys say so) from the same seed, with its learning rate following a cosine
over that time, then is scored on the held-out last 10% of the corpus. The
baseline row is a GPT in the widely used small CPU recipe (4 layers, 4 heads,
128-wide embeddings, context 64, batch 12, AdamW at 1e-3 with cosine decay,
no dropout): the ``char_gpt`` Standard preset has to beat it in the same time.
"""

from __future__ import annotations

import time

import torch

from ..config import from_dict
from ..data.catalog import load_dataset
from ..registry import get_model
from ..train.device import device_name, pick_device

TRAIN_SECONDS = 110.0
QUICK_SECONDS = 10.0
SAMPLE_CHARS = 500
SAMPLE_PROMPT = "The "
#: the widely used small CPU recipe for a character GPT (nanoGPT's
#: shakespeare_char on a laptop): what the Standard preset is measured against
BASELINE = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, lr=1e-3, warmup_steps=100,
                dropout=0.0, weight_decay=0.1, beta2=0.99, grad_clip=1.0, bias=False)
ROWS = [  # (key, model, config overrides)
    ("bigram", "bigram", None),
    ("char_lstm", "char_lstm", None),
    ("char_gpt", "char_gpt", None),
    ("gpt_baseline", "char_gpt", BASELINE),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_for(trainer, seconds: float) -> tuple[int, float]:
    """Train until ``seconds`` of wall time are used, the cosine following the
    time; returns (steps, seconds actually taken)."""
    start = time.perf_counter()
    trainer.budget_progress = lambda: (time.perf_counter() - start) / seconds
    steps = 0
    while time.perf_counter() - start < seconds:
        trainer.step()
        steps += 1
        if steps % 50 == 0:
            _sync(trainer.device)  # keep queued GPU work from running past the budget
    _sync(trainer.device)
    return steps, time.perf_counter() - start


def build(model: str, overrides: dict | None, data, device: torch.device, seed: int = 0):
    spec = get_model(model)
    values = dict(spec.presets["Standard"]["model"]) if overrides is None else dict(overrides)
    return spec.trainer_cls(from_dict(spec.config_cls, values), data, device, seed)


def run(quick: bool = False, rows: list | None = None) -> dict:
    device = pick_device("auto")
    seconds = QUICK_SECONDS if quick else TRAIN_SECONDS
    tag = f"{seconds:.0f}s"
    data = load_dataset("pydoc")
    out: dict = {"text.device": device_name(device), "text.corpus": f"pydoc ({len(data.text)} characters)"}
    for key, model, overrides in rows or ROWS:
        trainer = build(model, overrides, data, device)
        trainer.train_mode(True)
        steps, took = train_for(trainer, seconds)
        trainer.train_mode(False)
        scores = trainer.evaluate()
        out[f"text.{key}.train_tokens_per_s"] = steps * trainer.tokens_per_step / took
        out[f"text.{key}.steps_{tag}"] = steps
        out[f"text.{key}.val_loss_{tag}"] = scores["val_loss"]
        out[f"text.{key}.val_bpc_{tag}"] = scores["val_bpc"]
        trainer.sample(1, 0, prompt=SAMPLE_PROMPT, length=20)  # warm-up
        _sync(device)
        start = time.perf_counter()
        trainer.sample(1, 0, prompt=SAMPLE_PROMPT, length=SAMPLE_CHARS)
        _sync(device)
        took = time.perf_counter() - start
        out[f"text.{key}.sample_tokens_per_s"] = SAMPLE_CHARS / took
        out[f"text.{key}.sample_{SAMPLE_CHARS}_chars_s"] = took
    if f"text.char_gpt.val_loss_{tag}" in out and f"text.gpt_baseline.val_loss_{tag}" in out:
        out[f"text.char_gpt_minus_baseline.val_loss_{tag}"] = (
            out[f"text.char_gpt.val_loss_{tag}"] - out[f"text.gpt_baseline.val_loss_{tag}"])
    out["text.note"] = (f"each model trained {seconds:.0f} s of wall time on pydoc (seed 0, cosine over the time), "
                        "scored on the last 10%; tokens are characters"
                        + ("; quick mode: 10 s instead of 110 s" if quick else ""))
    return out
