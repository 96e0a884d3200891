"""How long a lesson takes, measured: its runs trained here, its reading and poking counted.

A lesson promises "10-15 minutes on a 2-core CPU". That is three parts:

- **reading**: the words of its text, run captions and try cells at
  :data:`WORDS_PER_MINUTE` (a careful, technical reading pace);
- **interaction**: :data:`TRY_MINUTES` per try cell (write a prediction, read
  the answer) and :data:`LAB_MINUTES` per lab (the 2-D GAN and latent labs are
  meant to be played with for longer than a table of numbers);
- **compute**: every run the lesson asks for (its run cells, and the runs its
  try cells start with one setting changed), trained here through the real
  training loop with the settings the Learn page would use, wall-clock.

The total adds the three (a learner usually waits for a run before reading on),
so it is an upper bound on a reader who reads while a run trains.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field

WORDS_PER_MINUTE = 180
TRY_MINUTES = 1.0
LAB_MINUTES = {"gan2d": 2.5, "latent": 2.0}
OTHER_LAB_MINUTES = 1.0


@dataclass
class LessonTime:
    name: str
    minutes_claimed: int
    words: int
    reading_min: float
    interaction_min: float
    compute_s: dict = field(default_factory=dict)  # run label -> wall seconds
    compute_cpu_s: dict = field(default_factory=dict)  # run label -> this process's CPU seconds (all threads)
    total_min: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _words(text: str) -> int:
    text = re.sub(r"\$\$.*?\$\$", " formula ", text, flags=re.S)  # a display formula reads like a few words
    return len(re.findall(r"[A-Za-z0-9]+", text))


def lesson_runs(lesson) -> list[tuple[str, object, dict]]:
    """(label, run cell, extra settings) for every run the lesson asks a learner to train."""
    out = [(cell.id, cell, {}) for cell in lesson.run_cells().values()]
    for index, cell in enumerate(lesson.cells):
        base, change = lesson.tried_run(cell) or (None, {})
        if base is not None and change:
            out.append((f"{base.id} (try {index}: {', '.join(f'{k}={v}' for k, v in change.items())})", base, change))
    return out


def time_lesson(name: str, *, train: bool = True, echo=None) -> LessonTime:
    """Measure lesson ``name``; with ``train=False`` only reading and interaction
    (no compute), for a quick look. Runs go to the current run store, named
    after the lesson, as if a learner had pressed each button."""
    from ..runs.api import make_config, run_in_foreground
    from .lessons import get_lesson

    lesson = get_lesson(name)
    words = sum(_words(c.body) for c in lesson.cells if c.kind in ("text", "try", "run", "lab"))
    words += _words(lesson.summary)
    reading = words / WORDS_PER_MINUTE
    interaction = sum(TRY_MINUTES for c in lesson.cells if c.kind == "try")
    interaction += sum(LAB_MINUTES.get(c.id, OTHER_LAB_MINUTES) for c in lesson.cells if c.kind == "lab")
    compute: dict[str, float] = {}
    cpu: dict[str, float] = {}
    if train:
        for label, cell, extra in lesson_runs(lesson):
            config = make_config(str(cell.args["model"]), str(cell.args["dataset"]), preset=cell.args.get("preset"),
                                 model_set={**cell.settings(), **extra})
            start, cpu_start = time.perf_counter(), time.process_time()
            run = run_in_foreground(config, name=f"{lesson.title}: {label}"[:120], echo=lambda _m: None)
            compute[label] = round(time.perf_counter() - start, 1)
            cpu[label] = round(time.process_time() - cpu_start, 1)
            if echo:
                echo(f"{name}: {label}: {compute[label]:.0f} s wall, {cpu[label]:.0f} s CPU ({run.status})")
    total = reading + interaction + sum(compute.values()) / 60
    return LessonTime(name, lesson.minutes, words, round(reading, 1), round(interaction, 1), compute, cpu,
                      round(total, 1))
