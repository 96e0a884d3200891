"""Lessons: Markdown files with a few cell directives, read top to bottom like a
notebook (the syntax is documented in ``lessons/README.md``).

- :func:`list_lessons` / :func:`get_lesson` read ``lessons/*.md``;
- :func:`parse_lesson` turns one file into a :class:`Lesson` of :class:`Cell` s
  (``text``, ``run``, ``lab``, ``try``, ``code``);
- :func:`to_notebook` / :func:`export_notebook` write the lesson as a Jupyter
  notebook (``nbformat``) whose code cells reproduce it with ``aigc_core`` calls;
- :func:`progress` / :func:`save_progress` remember where each learner is, and
  :func:`room_lesson` / :func:`set_room_lesson` let a teacher point the room
  at one lesson.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..paths import aigc_home, write_atomic
from ..room.identity import LOCAL, Actor

LESSONS_DIR = Path(__file__).resolve().parent.parent.parent / "lessons"
CELL_KINDS = ("text", "run", "lab", "try", "code")
#: the labs a ``lab`` cell can open (engine or page pieces that exist)
LABS = ("gan2d", "latent", "attention", "sample", "metrics", "doctor", "real_or_fake")
#: labs that read a run trained by an earlier ``run`` cell (``run=ID``)
LABS_ON_A_RUN = ("attention", "sample", "metrics", "doctor", "real_or_fake")
#: arguments of a ``run`` cell that are not model or training settings
RUN_KEYS = ("model", "dataset", "preset", "chart")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,60}$")
DIRECTIVE_RE = re.compile(r"^:::\s*([a-z_]+)\s*(.*?)\s*$")
REVEAL = "???"


@dataclass
class Cell:
    kind: str
    body: str = ""  # Markdown (text, try), a caption (run, lab) or Python (code)
    args: dict = field(default_factory=dict)
    id: str = ""  # a run cell's name, for later cells' run=ID
    line: int = 0

    @property
    def prompt(self) -> str:
        """A try cell's question (before the ``???`` line)."""
        return self.body.split(f"\n{REVEAL}", 1)[0].strip()

    @property
    def answer(self) -> str:
        """A try cell's explanation, shown after the learner has predicted."""
        parts = self.body.split(f"\n{REVEAL}", 1)
        return parts[1].strip() if len(parts) > 1 else ""

    def settings(self) -> dict:
        """A run (or try) cell's model and training settings."""
        return {k: v for k, v in self.args.items() if k not in RUN_KEYS + ("run",)}


@dataclass
class Lesson:
    name: str
    title: str
    minutes: int
    summary: str
    cells: list[Cell]
    order: int = 100

    def run_cells(self) -> dict[str, Cell]:
        return {c.id: c for c in self.cells if c.kind == "run"}

    def tried_run(self, cell: Cell) -> tuple[Cell, dict] | None:
        """For a try cell that retrains a run: (that run cell, the settings the try changes); else None."""
        base = self.run_cells().get(cell.args.get("run")) if cell.kind == "try" else None
        return None if base is None else (base, {k: v for k, v in cell.args.items() if k != "run"})


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _args(text: str, where: str) -> tuple[str, dict]:
    """``ID key=value key="a b"`` -> (ID or "", {key: value})."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise UserError(f"{where}: cannot read the directive's arguments ({exc})") from None
    first, args = "", {}
    for i, tok in enumerate(tokens):
        if "=" not in tok:
            if i == 0:
                first = tok
                continue
            raise UserError(f"{where}: expected key=value, got {tok!r}")
        k, v = tok.split("=", 1)
        args[k.strip()] = _value(v.strip())
    return first, args


def _front_matter(lines: list[str], where: str) -> tuple[dict, int]:
    if not lines or lines[0].strip() != "---":
        raise UserError(f"{where}: a lesson starts with a front matter block (---, title: ..., minutes: ..., ---)")
    meta = {}
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return meta, i + 1
        if ":" not in line:
            raise UserError(f"{where}, line {i + 1}: expected 'key: value' in the front matter, got {line!r}")
        k, v = line.split(":", 1)
        meta[k.strip()] = v.strip()
    raise UserError(f"{where}: the front matter is not closed with a line '---'")


def parse_lesson(text: str, name: str) -> Lesson:
    """One lesson from its Markdown; every mistake is a UserError naming the line."""
    where = f"lesson {name}"
    lines = text.replace("\r\n", "\n").split("\n")
    meta, start = _front_matter(lines, where)
    for key in ("title", "minutes"):
        if key not in meta:
            raise UserError(f"{where}: the front matter needs '{key}:'")
    try:
        minutes = int(meta["minutes"])
    except ValueError:
        raise UserError(f"{where}: minutes must be a whole number, got {meta['minutes']!r}") from None
    cells: list[Cell] = []
    text_buf: list[str] = []
    open_cell: Cell | None = None
    body: list[str] = []

    def flush_text(line_no: int) -> None:
        chunk = "\n".join(text_buf).strip()
        if chunk:
            cells.append(Cell("text", chunk, line=line_no))
        text_buf.clear()

    for no, line in enumerate(lines[start:], start=start + 1):
        m = DIRECTIVE_RE.match(line)
        if open_cell is None:
            if m and m.group(1):
                kind = m.group(1)
                if kind not in CELL_KINDS or kind == "text":
                    raise UserError(f"{where}, line {no}: unknown cell ':::{kind}'; cells are "
                                    f"{', '.join(k for k in CELL_KINDS if k != 'text')}")
                flush_text(no)
                first, args = _args(m.group(2), f"{where}, line {no}")
                open_cell, body = Cell(kind, args=args, line=no), []
                if kind == "run":
                    open_cell.id = first or f"run{sum(c.kind == 'run' for c in cells) + 1}"
                elif kind == "lab":
                    open_cell.id = first
                elif first:
                    raise UserError(f"{where}, line {no}: expected key=value after ':::{kind}', got {first!r}")
            elif line.strip() == ":::":
                raise UserError(f"{where}, line {no}: ':::' closes a cell, but no cell is open")
            else:
                text_buf.append(line)
        elif line.strip() == ":::":
            open_cell.body = "\n".join(body).strip("\n")
            cells.append(open_cell)
            open_cell = None
        elif m and m.group(1) in CELL_KINDS:
            raise UserError(f"{where}, line {no}: a new cell starts before the one at line {open_cell.line} "
                            "is closed with ':::'")
        else:
            body.append(line)
    if open_cell is not None:
        raise UserError(f"{where}, line {open_cell.line}: the ':::{open_cell.kind}' cell is never closed with ':::'")
    flush_text(len(lines))
    lesson = Lesson(name=name, title=meta["title"], minutes=minutes, summary=meta.get("summary", ""),
                    cells=cells, order=int(meta.get("order", 100)))
    _check(lesson, where)
    return lesson


def _check(lesson: Lesson, where: str) -> None:
    """Names that must exist: models, data sets, labs, earlier run cells."""
    from ..config import TrainSettings
    from ..registry import get_model

    def unknown_settings(run: Cell, settings: dict) -> str:
        spec = get_model(str(run.args["model"]))
        known = set(spec.config_cls.__dataclass_fields__) | set(TrainSettings.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        return f"{spec.name} has no setting {', '.join(unknown)}" if unknown else ""

    seen_runs: dict[str, Cell] = {}
    for cell in lesson.cells:
        at = f"{where}, line {cell.line}"
        if cell.kind == "run":
            if cell.id in seen_runs:
                raise UserError(f"{at}: two run cells are called {cell.id!r}")
            for key in ("model", "dataset"):
                if key not in cell.args:
                    raise UserError(f"{at}: a run cell needs {key}=...")
            problem = unknown_settings(cell, cell.settings())
            if problem:
                raise UserError(f"{at}: {problem}")
            seen_runs[cell.id] = cell
        elif cell.kind == "lab":
            if cell.id not in LABS:
                raise UserError(f"{at}: unknown lab {cell.id!r}; labs are {', '.join(LABS)}")
            if cell.id in LABS_ON_A_RUN and cell.args.get("run") not in seen_runs:
                raise UserError(f"{at}: the {cell.id} lab needs run=ID of a run cell above it")
        elif cell.kind == "try":
            if not cell.prompt:
                raise UserError(f"{at}: a try cell needs a question")
            if "run" in cell.args and cell.args["run"] not in seen_runs:
                raise UserError(f"{at}: try run={cell.args['run']} names no run cell above it")
            # a typo in the one setting a try cell changes would otherwise surface only when a learner presses it
            problem = unknown_settings(seen_runs[cell.args["run"]], cell.settings()) if "run" in cell.args else ""
            if problem:
                raise UserError(f"{at}: {problem}")


def lesson_files() -> list[Path]:
    return sorted(p for p in LESSONS_DIR.glob("*.md") if p.name.lower() != "readme.md")


def _name_of(path: Path) -> str:
    return re.sub(r"^\d+[-_]", "", path.stem)


def list_lessons() -> list[Lesson]:
    """Every lesson, in teaching order."""
    lessons = [parse_lesson(p.read_text(encoding="utf-8"), _name_of(p)) for p in lesson_files()]
    return sorted(lessons, key=lambda l: (l.order, l.name))


def get_lesson(name: str) -> Lesson:
    for path in lesson_files():
        if _name_of(path) == name:
            return parse_lesson(path.read_text(encoding="utf-8"), name)
    names = ", ".join(_name_of(p) for p in lesson_files())
    raise UserError(f"no lesson called {name!r}; lessons: {names}")


# ---- links from other pages -------------------------------------------------------------------

def labs_for(run) -> list[dict]:
    """The labs that match a run, as links to the Learn page: ``{"label", "query_params"}``
    (for ``st.page_link("pages/learn.py", ...)`` beside the run on Train)."""
    from ..registry import get_model

    links = []
    labs = get_model(run.model).labs  # each model says which labs explain it
    if "gan2d" in labs:
        links.append({"label": "Open the 2-D GAN lab", "query_params": {"lab": "gan2d", "dataset": run.dataset}})
    if "latent" in labs:
        links.append({"label": "Open the VAE latent lab", "query_params": {"lab": "latent"}})
    links.append({"label": "Ask the training doctor", "query_params": {"lab": "doctor", "run": run.id}})
    return links


# ---- where each learner is -------------------------------------------------------------------

def _learn_dir() -> Path:
    path = aigc_home() / "learn"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _learner_file(learner: str) -> Path:
    # readable, and unique: two names that differ only in characters a file name cannot hold stay two learners
    learner = learner or "local"
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", learner)[:60] or "local"
    return _learn_dir() / f"progress-{safe}-{hashlib.sha256(learner.encode()).hexdigest()[:10]}.json"


def progress(learner: str) -> dict:
    """``{"lesson": last lesson opened, "lessons": {name: {"reached": cell index, "runs": {cell id: run id},
    "predictions": {cell index: text}}}}``."""
    data = _read_json(_learner_file(learner))
    data.setdefault("lessons", {})
    return data


def save_progress(learner: str, data: dict) -> None:
    write_atomic(_learner_file(learner), json.dumps(data, indent=1).encode())


def room_lesson() -> str | None:
    """The lesson the teacher has pointed the room at (part of the room preset), if any."""
    from ..room.board import room_preset

    return room_preset().get("lesson")


def set_room_lesson(name: str | None, actor: Actor = LOCAL) -> None:
    """Point the room at one lesson (the teacher, or the command line); None: at none."""
    from ..room.board import set_room_lesson as point_room

    if name:
        get_lesson(name)  # a typo is a clear error, not a room pointed at nothing
    point_room(actor, name)


# ---- notebooks ---------------------------------------------------------------------------------

SETUP = '''\
# Set-up: the studio's engine, and one knob for the size of every training run.
import os

from aigc_core.runs import api
from aigc_core.runs.store import RunStore

# 1 = the lesson's budgets; lower it (e.g. 0.1) for a quick try on a slow machine
BUDGET = float(os.environ.get("AIGC_LESSON_BUDGET", "1"))


def steps(n):
    return max(5, int(n * BUDGET))


store = RunStore()
runs = {}  # run cell name -> finished run'''


def _py(value) -> str:
    return repr(value)


def _run_code(cell: Cell, key: str, settings: dict, title: str) -> str:
    s = dict(settings)
    steps = int(s.pop("steps", 0) or 0) or _preset_steps(cell)
    train_keys = {"seed", "log_every", "sample_every", "checkpoint_every", "device", "precision"}
    train = {k: s.pop(k) for k in list(s) if k in train_keys}
    s.pop("max_seconds", None)
    preset = cell.args.get("preset")
    chart = [c.strip() for c in str(cell.args.get("chart", "")).split(",") if c.strip()]
    lines = [f"# {title}",
             f"config = api.make_config({_py(cell.args['model'])}, {_py(cell.args['dataset'])}, "
             f"preset={_py(preset)},",
             f"                         model_set={_py(s)},",
             f"                         train_set={{**{_py(train)}, 'steps': steps({steps}), 'max_seconds': 0}})",
             f"runs[{_py(key)}] = api.run_in_foreground(config, echo=lambda message: None)",
             f"run = runs[{_py(key)}]",
             "print(run.name, run.status, f'{run.step} steps in {run.train_seconds:.1f} s')",
             "curves = store.metrics(run.id).pivot_table(index='step', columns='key', values='value')"]
    if chart:
        lines.append(f"curves[[k for k in {_py(chart)} if k in curves]].tail(10)")
    else:
        lines.append("curves.tail(10)")
    return "\n".join(lines)


def _preset_steps(cell: Cell) -> int:
    """The step budget a run cell without ``steps=`` gets from its preset (or the default)."""
    from ..config import TrainSettings
    from ..registry import get_model

    preset = get_model(str(cell.args["model"])).presets.get(cell.args.get("preset") or "", {})
    return int(preset.get("train", {}).get("steps") or TrainSettings().steps)


def _film_code(key: str) -> str:
    return "\n".join([
        "# The newest film-strip frame (an image, or the text the model writes)",
        "from PIL import Image",
        "",
        f"frames = sorted((runs[{_py(key)}].folder / 'samples').glob('step_*'))",
        "last = frames[-1]",
        "Image.open(last) if last.suffix == '.png' else print(last.read_text())"])


def _lab_code(cell: Cell) -> str:
    a = cell.args
    run = f"runs[{_py(a.get('run'))}].id" if a.get("run") else ""
    if cell.id == "gan2d":
        return "\n".join([
            "# The 2-D GAN lab: tiny G and D on points in the plane",
            "from aigc_core.learn.gan_lab import GanLab, lab_figure",
            "",
            f"lab = GanLab(dataset={_py(a.get('dataset', 'ring8'))}, loss={_py(a.get('loss', 'nonsaturating'))}, "
            f"seed={_py(a.get('seed', 0))})",
            f"for _ in range(steps({int(a.get('steps', 300))})):",
            f"    lab.step({_py(a.get('train', 'both'))})",
            "frame = lab.frame()",
            "print(f'step {frame.step}: loss_d={frame.loss_d:.3f} loss_g={frame.loss_g:.3f}')",
            "lab_figure(frame)"])
    if cell.id == "latent":
        return "\n".join([
            "# The VAE latent lab: a VAE whose code z has two numbers, on the glyphs",
            "from aigc_core.learn.latent_lab import latent_vae",
            "",
            f"vae = latent_vae(beta={_py(float(a.get('beta', 1.0)))}, seconds=30 * BUDGET)",
            "points, digits = vae.encode_held_out()   # where each held-out digit lands in the plane",
            "grid = vae.decode_grid(n=9)              # the images the decoder draws over the plane",
            "print(points.shape, grid.shape)",
            "vae.decode_point(0.0, 0.0).shape          # any point you like"])
    if cell.id == "attention":
        return "\n".join([
            "# Attention maps: which earlier characters each position looks at",
            "from aigc_core.sample import load_for_sampling",
            "",
            f"trainer, _, _ = load_for_sampling({run})",
            f"maps = trainer.attention_maps({_py(str(a.get('prompt', '')))})  # (layers, heads, T, T)",
            "print(maps.shape, trainer.context_labels(" + _py(str(a.get('prompt', ''))) + ")[-10:])",
            "maps[-1].mean(0)[-1]  # the last layer, heads averaged: where the last character looks"])
    if cell.id == "sample":
        return "\n".join([
            "# Sampling knobs: temperature and top-k",
            "from aigc_core.sample import load_for_sampling",
            "",
            f"trainer, _, _ = load_for_sampling({run})",
            "for temperature, top_k in [(0.5, 0), (1.0, 0), (1.5, 0), (1.0, 5)]:",
            f"    text = trainer.sample(1, 0, prompt={_py(str(a.get('prompt', '')))}, length=120, "
            "temperature=temperature, top_k=top_k)[0]",
            "    print(f'--- temperature {temperature}, top-k {top_k or \"off\"}:')",
            "    print(text)"])
    if cell.id == "metrics":
        keys = [k.strip() for k in str(a.get("keys", "")).split(",") if k.strip()]
        return "\n".join([
            "# The run's quality numbers, and what each one means",
            "from aigc_core.registry import metric_info",
            "",
            f"final = runs[{_py(a.get('run'))}].final_metrics",
            f"METRIC_INFO = metric_info(runs[{_py(a.get('run'))}].model)",
            f"for key in {_py(keys)} or sorted(final):",
            "    if key in final:",
            "        info = METRIC_INFO.get(key, {'label': key, 'how': ''})",
            "        print(f\"{info['label']:>16}: {final[key]:.4g}   {info['how'][:90]}\")"])
    if cell.id == "doctor":
        return "\n".join([
            "# The training doctor reads the run's numbers and says what went wrong",
            "from aigc_core.learn.doctor import diagnose_run",
            "",
            f"for finding in diagnose_run({run})['findings']:",
            "    print(finding['code'], '-', finding['what'])",
            "    print('   why:', finding['why'])",
            "    if finding['fix']:",
            "        print('   try:', finding['fix']['label'])"])
    if cell.id == "real_or_fake":
        return "\n".join([
            "# Real or generated? Look at the grid, guess each one, then read the key",
            "from aigc_core.learn.human_round import real_or_fake_round",
            "from aigc_core.imaging import grid_image",
            "",
            f"images, is_real = real_or_fake_round({run}, n={int(a.get('rounds', 8))}, seed=0)",
            "print('key (left to right, top to bottom):', ['real' if r else 'generated' for r in is_real])",
            "grid_image(images, nrow=4)"])
    raise UserError(f"no notebook code for the {cell.id} lab")


def to_notebook(lesson: Lesson):
    """The lesson as an ``nbformat`` v4 notebook."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(new_markdown_cell(f"# {lesson.title}\n\n{lesson.summary}\n\n*About {lesson.minutes} minutes. "
                                      "Exported from AIGC Studio's Learn page; run the cells from the top.*"))
    nb.cells.append(new_code_cell(SETUP))
    tries = 0
    for cell in lesson.cells:
        if cell.kind == "text":
            nb.cells.append(new_markdown_cell(cell.body))
        elif cell.kind == "run":
            if cell.body:
                nb.cells.append(new_markdown_cell(cell.body))
            nb.cells.append(new_code_cell(_run_code(cell, cell.id, cell.settings(), f"Train: {cell.id}")))
            nb.cells.append(new_code_cell(_film_code(cell.id)))
        elif cell.kind == "lab":
            if cell.body:
                nb.cells.append(new_markdown_cell(cell.body))
            nb.cells.append(new_code_cell(_lab_code(cell)))
        elif cell.kind == "try":
            tries += 1
            md = f"### Try this\n\n{cell.prompt}\n\n*Write down your prediction before you run the next cell.*"
            if cell.answer:
                md += f"\n\n<details><summary>What happens, and why</summary>\n\n{cell.answer}\n\n</details>"
            nb.cells.append(new_markdown_cell(md))
            tried = lesson.tried_run(cell)
            if tried is not None:
                base, change = tried
                key = f"{base.id}_try{tries}"
                nb.cells.append(new_code_cell(_run_code(base, key, {**base.settings(), **change},
                                                        f"Try: {base.id} with {change}")))
                nb.cells.append(new_code_cell(_film_code(key)))
        elif cell.kind == "code":
            nb.cells.append(new_code_cell(cell.body))
    nbformat.validate(nb)
    return nb


def export_notebook(name: str, out: Path) -> Path:
    import nbformat

    out = Path(out)
    if out.suffix != ".ipynb":
        raise UserError(f"a notebook file ends in .ipynb; got {out.name}")
    nb = to_notebook(get_lesson(name))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, nbformat.writes(nb).encode("utf-8"))
    return out


def notebook_bytes(name: str) -> bytes:
    import nbformat

    return nbformat.writes(to_notebook(get_lesson(name))).encode("utf-8")
