"""Human evaluation: what people think of a run's samples.

Two scores, both kept in the run store so every browser in a workshop adds to
the same count:

- **Thumbs up**: the share of a run's rated samples that got a thumbs up,
  with the number of ratings. Ratings made by a rule (``rate --rule``) are
  not people and are left out.
- **Real or generated?** A round shows 20 samples (images, text or table
  rows), half from the data set and half from the model, in random order; the
  player marks each one. The run's score is the *fooling rate*: of all the
  generated samples anybody judged, the share taken for real,

      fooling rate = (generated samples marked "real") / (generated samples judged)

  pooled over every round and player, with a 95% Wilson interval
  (:func:`wilson_interval`). A perfect model fools half the time or more
  (people then guess), a poor one almost never. The real half of each round
  keeps players honest and gives their accuracy.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import UserError
from .runs.store import RunStore

ROUND_SIZE = 20
MAX_ROUND = 100
#: two-sided 95% normal quantile for the Wilson interval
Z95 = 1.959963984540054
REAL, GENERATED = "real", "generated"
#: characters of running text shown per item (a generated passage and a real excerpt alike)
TEXT_CHARS = 160

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgement_rounds (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    player TEXT NOT NULL,
    truth TEXT NOT NULL,
    created REAL NOT NULL,
    submitted REAL
);
CREATE TABLE IF NOT EXISTS judgements (
    round_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    player TEXT NOT NULL,
    position INTEGER NOT NULL,
    truth TEXT NOT NULL,
    answer TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (round_id, position)
);
CREATE INDEX IF NOT EXISTS judgements_run ON judgements(run_id);
"""


def _db(store: RunStore | None):
    store = store or RunStore()
    conn = store.connect()
    try:
        conn.executescript(SCHEMA)
    finally:
        conn.close()
    return store


def _rows(store: RunStore, sql: str, args: tuple) -> list:
    conn = store.connect()
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# ---- interval ------------------------------------------------------------------------------

def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a share ``successes / n``:

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    It stays inside [0, 1] and is sensible for small counts and shares near
    0 or 1, where the plain p +- z sqrt(p(1-p)/n) is not. (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}; got {successes}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)   # exact at the edges (no rounding dust)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


# ---- thumbs up -----------------------------------------------------------------------------

def thumbs_up(run_id: str, store: RunStore | None = None) -> dict[str, float]:
    """``human_like_share`` (thumbs up / rated) and ``human_ratings`` (how
    many), people's ratings only; an empty dict when nobody rated."""
    rows = [r for r in (store or RunStore()).ratings(run_id) if not r["payload"].get("rule")]
    if not rows:
        return {}
    up = sum(1 for r in rows if int(r["rating"]) == 1)
    low, high = wilson_interval(up, len(rows))
    return {"human_like_share": up / len(rows), "human_ratings": float(len(rows)),
            "human_like_low": low, "human_like_high": high}


# ---- real or generated? ------------------------------------------------------------------

@dataclass
class RoundItem:
    position: int
    kind: str      # image | text | row
    content: Any   # (C, H, W) float tensor in [0, 1], a str, or a dict (column -> value)
    truth: str     # real | generated (the page must not show it before the answers are in)


@dataclass
class Round:
    id: str
    run_id: str
    player: str
    items: list[RoundItem] = field(default_factory=list)


def make_round(run_id: str, player: str = "local", n: int = ROUND_SIZE, seed: int | None = None,
               store: RunStore | None = None) -> Round:
    """A new round for ``player``: ``n`` items (even), half real, half made
    by the run's latest checkpoint, in random order. The truth is kept in the
    run store, so answers are scored there."""
    from .sample import load_for_sampling

    store = _db(store)
    n = int(n)
    if n < 2 or n > MAX_ROUND or n % 2:
        raise UserError(f"a round has an even number of items between 2 and {MAX_ROUND}; got {n}")
    player = _player(player)
    seed = secrets.randbelow(2**31 - 1) if seed is None else int(seed)
    trainer, run, _ = load_for_sampling(run_id, store=store)
    half = n // 2
    gen = torch.Generator().manual_seed(seed)
    real, fake, kind = _real_and_generated(run, trainer, half, seed, gen, store)
    order = torch.randperm(n, generator=gen).tolist()
    pool = [(REAL, c) for c in real] + [(GENERATED, c) for c in fake]
    items = [RoundItem(pos, kind, pool[i][1], pool[i][0]) for pos, i in enumerate(order)]
    round_ = Round(f"r{secrets.token_hex(6)}", run_id, player, items)
    conn = store.connect()
    try:
        conn.execute("INSERT INTO judgement_rounds (id, run_id, player, truth, created) VALUES (?,?,?,?,?)",
                     (round_.id, run_id, player, json.dumps([it.truth for it in items]), time.time()))
    finally:
        conn.close()
    return round_


def _player(player: str) -> str:
    player = (player or "").strip()
    if not player:
        raise UserError("who is playing? a player name cannot be empty")
    return player[:80]


def _real_and_generated(run, trainer, half: int, seed: int, gen: torch.Generator, store):
    """(real items, generated items, kind) for one round."""
    data = trainer.data
    with torch.no_grad():
        if run.data_kind == "image":
            from .rating_rules import reference_data

            reference = reference_data(run, store)
            pick = torch.randperm(len(reference), generator=gen)[:half]
            real = [img.float().div(255.0) for img in reference.images[pick]]
            fake = list(trainer.sample(half, seed).float().cpu())
            return real, fake, "image"
        if run.data_kind == "text":
            if data.mode == "lines":
                items = [line for line in data.text.split("\n") if line.strip()]
                pick = torch.randperm(len(items), generator=gen)[:half].tolist()
                real = [items[i] for i in pick]
                fake = [s.strip() for s in trainer.sample(half, seed)]
            else:
                starts = torch.randint(0, max(1, len(data.text) - TEXT_CHARS), (half,), generator=gen).tolist()
                real = [data.text[s:s + TEXT_CHARS] for s in starts]
                fake = [s[:TEXT_CHARS] for s in trainer.sample(half, seed, length=TEXT_CHARS)]
            return real, fake, "text"
        if run.data_kind == "table":
            from .data_loop import row_dict

            frame = data.frame
            pick = torch.randperm(len(frame), generator=gen)[:half].tolist()
            real = [row_dict(frame, i) for i in pick]
            synth = trainer.sample(half, seed)
            fake = [row_dict(synth, i) for i in range(len(synth))]
            return real, fake, "row"
    raise UserError(f"{run.data_kind} runs have no real-or-generated game; it exists for images, text and tables")


def submit_round(round_id: str, answers, store: RunStore | None = None) -> dict[str, int]:
    """Score a round: ``answers`` lists "real" or "generated" per position
    (or maps position -> answer; every item must be answered). Stored once;
    returns what this player got right and how often they were fooled."""
    store = _db(store)
    rows = _rows(store, "SELECT * FROM judgement_rounds WHERE id = ?", (round_id,))
    if not rows:
        raise UserError(f"no round {round_id!r}; start a new round")
    row = rows[0]
    if row["submitted"]:
        raise UserError("this round's answers are already in; start a new round")
    truth = json.loads(row["truth"])
    if isinstance(answers, dict):
        answers = [answers.get(i, answers.get(str(i))) for i in range(len(truth))]
    answers = [str(a).strip().lower() if a is not None else None for a in answers]
    if len(answers) != len(truth) or any(a not in (REAL, GENERATED) for a in answers):
        missing = sum(1 for a in answers if a not in (REAL, GENERATED)) + max(0, len(truth) - len(answers))
        raise UserError(f"mark every item as real or generated ({missing} of {len(truth)} still open)")
    now = time.time()
    with store.transaction() as conn:
        done = conn.execute("SELECT submitted FROM judgement_rounds WHERE id = ?", (round_id,)).fetchone()
        if done["submitted"]:
            raise UserError("this round's answers are already in; start a new round")
        conn.executemany("INSERT INTO judgements (round_id, run_id, player, position, truth, answer, created)"
                         " VALUES (?,?,?,?,?,?,?)",
                         [(round_id, row["run_id"], row["player"], i, t, a, now)
                          for i, (t, a) in enumerate(zip(truth, answers))])
        conn.execute("UPDATE judgement_rounds SET submitted = ? WHERE id = ?", (now, round_id))
    return round_score(truth, answers)


def round_score(truth: list[str], answers: list[str]) -> dict[str, int]:
    """right: items marked as what they are; fooled: generated ones marked
    real; generated: how many generated ones there were."""
    return {"right": sum(t == a for t, a in zip(truth, answers)),
            "fooled": sum(t == GENERATED and a == REAL for t, a in zip(truth, answers)),
            "generated": sum(t == GENERATED for t in truth), "items": len(truth)}


def fooling_rate(run_id: str, store: RunStore | None = None) -> dict[str, float]:
    """The run's human-evaluation score, pooled over every player and round:
    ``fooling_rate`` with its 95% Wilson interval (``fooling_rate_low``,
    ``fooling_rate_high``), ``fooling_judged`` (generated items judged),
    ``fooling_players`` and ``fooling_accuracy`` (players' share right on all
    items). Empty when nobody has played."""
    store = _db(store)
    rows = _rows(store, "SELECT player, truth, answer FROM judgements WHERE run_id = ?", (run_id,))
    generated = [r for r in rows if r["truth"] == GENERATED]
    if not generated:
        return {}
    fooled = sum(1 for r in generated if r["answer"] == REAL)
    low, high = wilson_interval(fooled, len(generated))
    return {"fooling_rate": fooled / len(generated), "fooling_rate_low": low, "fooling_rate_high": high,
            "fooling_judged": float(len(generated)), "fooling_players": float(len({r["player"] for r in rows})),
            "fooling_accuracy": sum(1 for r in rows if r["truth"] == r["answer"]) / len(rows)}


def human_scores(run_id: str, store: RunStore | None = None) -> dict[str, float]:
    """Both human scores of a run, for the Compare page (keys of
    :func:`thumbs_up` and :func:`fooling_rate`)."""
    store = store or RunStore()
    return {**thumbs_up(run_id, store), **fooling_rate(run_id, store)}


