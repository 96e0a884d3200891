"""Quality scores for generated text, beside the held-out bits per character
and perplexity the text trainer measures itself (``trainer.evaluate()``).

- ``copy_share`` (line corpora): the share of generated items that are lines
  of the training text verbatim - names the model memorised, not invented.
- ``distinct_ngrams``: distinct character 3-grams divided by all 3-grams in
  the generated text (within items for line corpora). A model that repeats
  itself scores low; the same figure on as much real held-out text is
  ``distinct_ngrams_real``, the value to aim for.
"""

from __future__ import annotations

NGRAM = 3
#: generated items (line corpora) and characters (stream corpora) that are scored
LINE_SAMPLES = 200
STREAM_SAMPLES = 4
STREAM_LENGTH = 500
SEED = 0


def distinct_ngrams(texts: list[str], n: int = NGRAM) -> float:
    """Distinct character n-grams / all character n-grams within ``texts``
    (nan when the texts hold no n-gram at all)."""
    grams = [t[i:i + n] for t in texts for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def _same_amount(texts: list[str], chars: int) -> list[str]:
    """The first pieces of ``texts`` holding about ``chars`` characters."""
    out, total = [], 0
    for t in texts:
        if total >= chars:
            break
        out.append(t[: chars - total])
        total += len(out[-1])
    return out


def text_scores(trainer, seed: int = SEED, line_samples: int = LINE_SAMPLES) -> dict[str, float]:
    """``copy_share`` (line corpora), ``distinct_ngrams`` and
    ``distinct_ngrams_real`` of samples from a character model's trainer."""
    from ..models.text import mark_copies

    out: dict[str, float] = {}
    if trainer.mode == "lines":
        items = [line for line in trainer.train_text.split("\n") if line]
        longest = max((len(x) for x in items), default=20)
        samples = trainer.sample(line_samples, seed, length=min(200, 2 * longest + 2))
        out["copy_share"] = sum(mark_copies(samples, trainer.train_text)) / len(samples)
        # held-out lines first, then training lines when there are too few
        real = [line for line in (trainer.val_text + "\n" + trainer.train_text).split("\n") if line]
    else:
        samples = trainer.sample(STREAM_SAMPLES, seed, length=STREAM_LENGTH)
        real = [trainer.val_text + trainer.train_text]
    # the share of distinct n-grams falls as text grows, so both sides get the same amount
    amount = min(sum(len(s) for s in samples), sum(len(r) for r in real))
    made = distinct_ngrams(_same_amount(samples, amount))
    real_same = distinct_ngrams(_same_amount(real, amount))
    if made == made:  # not nan
        out["distinct_ngrams"] = made
    if real_same == real_same:
        out["distinct_ngrams_real"] = real_same
    return out
