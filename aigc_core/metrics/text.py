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


def mark_copies(items: list[str], train_text: str) -> list[bool]:
    """For each generated item, whether it is a line of the training text verbatim
    (a name the model memorised rather than invented)."""
    seen = set(train_text.split("\n"))
    return [item in seen for item in items]


def text_scores(samples: list[str], real: list[str], train_text: str | None = None) -> dict[str, float]:
    """``distinct_ngrams`` and ``distinct_ngrams_real`` of generated ``samples``
    against ``real`` texts, and with ``train_text`` (line corpora)
    ``copy_share``, the share of samples that are training lines verbatim."""
    out: dict[str, float] = {}
    if train_text is not None and samples:
        out["copy_share"] = sum(mark_copies(samples, train_text)) / len(samples)
    # the share of distinct n-grams falls as text grows, so both sides get the same amount
    amount = min(sum(len(s) for s in samples), sum(len(r) for r in real))
    made = distinct_ngrams(_same_amount(samples, amount))
    real_same = distinct_ngrams(_same_amount(real, amount))
    if made == made:  # not nan
        out["distinct_ngrams"] = made
    if real_same == real_same:
        out["distinct_ngrams_real"] = real_same
    return out
