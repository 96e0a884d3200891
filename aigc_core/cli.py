"""The command line: ``python -m aigc_core COMMAND``.

``--json`` prints one JSON object as the last line of stdout. A user error
exits with status 2 and one line ``error: ...`` on stderr, never a traceback.

In workshop mode (``AIGC_WORKSHOP_CODE`` set) the commands that touch runs and
data sets act for ``--user NAME`` (or ``AIGC_USER``), or for the teacher with
``--teacher``, and obey the room's rules like the pages do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError


def _print_json(obj) -> None:
    print(json.dumps(obj, default=str))


def _run_dict(run) -> dict:
    return {"run_id": run.id, "name": run.name, "model": run.model, "dataset": run.dataset, "status": run.status,
            "step": run.step, "train_seconds": round(run.train_seconds, 2), "device": run.device_name or run.device,
            "message": run.message, "final_metrics": run.final_metrics, "user": run.user, "published": run.published}


def _actor(args):
    """Who this command acts for (the single local user outside workshop mode)."""
    from .room.identity import actor_for_command_line

    return actor_for_command_line(getattr(args, "user", None), getattr(args, "teacher", False))


# ---- commands ----------------------------------------------------------------------

def cmd_datasets(args) -> int:
    from .data.catalog import list_datasets

    infos = list_datasets(actor=_actor(args))
    if args.json:
        _print_json({"datasets": [vars(i) for i in infos]})
        return 0
    for i in infos:
        where = "built-in" if i.builtin else "uploaded"
        extra = " (downloads on first use)" if i.needs_download else ""
        print(f"{i.name:16s} {i.kind:7s} {where:9s} {i.description}{extra}")
    return 0


def cmd_import_data(args) -> int:
    from .data.catalog import check_room_for_upload

    actor = _actor(args)
    path = Path(args.path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    check_room_for_upload(actor)
    name = args.name or path.stem
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix in (".txt", ".text", ".md"):
        from .data.catalog import save_uploaded
        from .data.text import guess_text_mode, import_text

        mode, why = (args.text_mode, "as asked") if args.text_mode != "auto" else guess_text_mode(data)
        text = import_text(data, name, mode=mode, filename=path.name)
        save_uploaded(text, actor=actor)
        result = {"name": name, "kind": "text", **text.summary(), "mode": mode, "mode_reason": why}
    elif suffix in (".csv", ".tsv"):
        from .data.catalog import save_uploaded
        from .data.table import import_csv

        if args.label and args.no_label:
            raise UserError("give either --label COLUMN or --no-label, not both")
        label = None if args.no_label else args.label
        report = import_csv(data, name, label_column=label, guess_label=not args.no_label and not args.label,
                            filename=path.name)
        save_uploaded(report.data, actor=actor)
        reason = "as asked" if args.label else "--no-label" if args.no_label else report.label_guess.reason
        result = {"name": name, "kind": "table", **report.data.summary(), "label_reason": reason,
                  "dropped_rows": report.dropped_rows}
    else:
        from .data.uploads import import_and_save

        report = import_and_save(data, name, size=args.size, channels=args.channels, filename=path.name, actor=actor)
        result = {"name": name, "kind": "image", "accepted": report.accepted, "size": report.data.size,
                  "channels": report.data.channels,
                  "rejected": [{"file": f, "reason": r} for f, r in report.rejected],
                  "class_names": report.class_names, "notes": report.notes}
    if args.json:
        _print_json(result)
    else:
        print(f"imported {name!r}: " + ", ".join(f"{k}={v}" for k, v in result.items() if k not in ("name", "rejected")))
        for item in result.get("rejected", []):
            print(f"  rejected {item['file']}: {item['reason']}")
    return 0


def cmd_recommend(args) -> int:
    from .recommend import measure, measure_all, recommend

    if args.measure:
        out = Path(args.out) if args.out else None
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        if args.dataset:
            result = measure(args.dataset, models, out=out, threads=args.threads, actor=_actor(args))
        elif models:
            raise UserError("--models needs --dataset (the set to measure them on)")
        else:
            result = measure_all(out=out, threads=args.threads, actor=_actor(args))
        if args.json:
            _print_json(result)
        return 0
    if not args.dataset:
        raise UserError("recommend needs --dataset NAME")
    rec = recommend(args.dataset, args.device, actor=_actor(args))
    if args.json:
        _print_json(rec.to_dict())
    else:
        print(f"{rec.model} with the {rec.preset} preset: {rec.why}")
    return 0


def cmd_train(args) -> int:
    from .config import parse_sets
    from .runs.api import make_config, run_in_foreground, submit

    train_set = {}
    if args.steps is not None:
        train_set["steps"] = args.steps
    if args.max_seconds is not None:
        train_set["max_seconds"] = args.max_seconds
    if args.seed is not None:
        train_set["seed"] = args.seed
    if args.device:
        train_set["device"] = args.device
    # an explicit budget replaces the preset's: --steps alone means no time limit
    if args.steps is not None and args.max_seconds is None:
        train_set["max_seconds"] = 0.0
    if args.max_seconds is not None and args.steps is None:
        train_set["steps"] = 0
    actor = _actor(args)
    if args.from_run:
        from .improve import finetune_config

        if args.model or args.preset:
            raise UserError("a fine-tune (--from) keeps the parent's model and settings; leave out --model and --preset")
        config = finetune_config(args.from_run, args.dataset, train_set=train_set, model_set=parse_sets(args.set),
                                 actor=actor)
    else:
        if not args.model or not args.dataset:
            raise UserError("train needs --model and --dataset (or --from RUN_ID to fine-tune a run)")
        config = make_config(args.model, args.dataset, preset=args.preset, model_set=parse_sets(args.set),
                             train_set=train_set, actor=actor)
    if args.detach:
        run = submit(config, name=args.name, actor=actor)
        if not args.json:
            print(f"queued run {run.id} ({run.status}); follow it with `python -m aigc_core runs`")
    else:
        echo = (lambda m: print(m, file=sys.stderr)) if args.json else print
        run = run_in_foreground(config, name=args.name, echo=echo, actor=actor)
    if args.json:
        _print_json(_run_dict(run))
    return 0 if run.status in ("completed", "queued", "starting", "running", "paused", "stopped") else 1


def cmd_runs(args) -> int:
    from .runs.queue import dispatch
    from .runs.store import RunStore

    from .room.identity import workshop_mode
    from .runs.queue import queue_place

    actor = _actor(args)
    store = RunStore()
    store.refresh()
    dispatch(store)
    runs = store.list(actor=actor)
    places = {r.id: queue_place(store, r.id) for r in runs if r.status == "queued"}
    if args.json:
        _print_json({"runs": [{**_run_dict(r), **_place_dict(places.get(r.id))} for r in runs]})
        return 0
    if not runs:
        print("no runs yet; start one with `python -m aigc_core train --model dcgan --dataset glyphs --preset Quick`")
    for r in runs:
        who = f"{(r.user or 'starter')[:12]:12s} " if workshop_mode() else ""
        place = places.get(r.id)
        waiting = f"  ({_place_words(place)})" if place else ""
        print(f"{r.id:32s} {who}{r.status:11s} step {r.step:7d}  {r.train_seconds:7.1f}s  {r.name}"
              + (f"  ({r.message})" if r.message else "") + waiting)
    return 0


def _place_dict(place) -> dict:
    if place is None:
        return {}
    wait = None if place.wait_seconds is None else round(place.wait_seconds, 1)
    return {"queue_ahead": place.ahead, "expected_wait_s": wait}


def _place_words(place) -> str:
    wait = "unknown wait" if place.wait_seconds is None else f"starts in about {place.wait_seconds:.0f} s"
    return f"{place.ahead} ahead in the queue, {wait}"


def cmd_control(args) -> int:
    from .runs.api import control
    from .runs.store import RunStore

    run = control(args.run, args.action, RunStore(), actor=_actor(args))
    if args.action == "delete":
        print(f"deleted {run.id}")
        return 0
    print(f"{run.id}: {run.status}" + (f" (asked to {run.control})" if run.control else "")
          + (" (published to the room)" if args.action == "publish" else ""))
    return 0


def cmd_sample(args) -> int:
    from .config import parse_sets
    from .data.kinds import data_kind
    from .registry import get_model
    from .sample import load_for_sampling

    actor = _actor(args)
    trainer, run, step = load_for_sampling(args.run, actor=actor, checkpoint=args.checkpoint)
    # --set values are checked and typed by the model's own knobs dataclass
    knobs = get_model(run.model).parse_knobs(parse_sets(args.set))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = trainer.sample(args.n, args.seed, **knobs)
    data_kind(run.data_kind).save(result, out)
    if args.post:
        from .room.board import post_to_wall

        if out.suffix.lower() == ".png":
            post_to_wall(run.id, image_png=out.read_bytes(), caption=args.caption or "", actor=actor)
        else:
            post_to_wall(run.id, text=out.read_text(encoding="utf-8")[:4000], caption=args.caption or "", actor=actor)
    if args.json:
        _print_json({"run_id": run.id, "step": step, "n": args.n, "seed": args.seed, "out": str(out)})
    else:
        print(f"wrote {args.n} samples from {run.id} (step {step}) to {out}")
    return 0


def cmd_export(args) -> int:
    from .runs.api import export_run

    Path(args.out).write_bytes(export_run(args.run, actor=_actor(args), checkpoint=args.checkpoint))
    print(f"exported {args.run} to {args.out}")
    return 0


def cmd_import_run(args) -> int:
    from .runs.api import import_run

    path = Path(args.path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    run = import_run(path.read_bytes(), path.name)
    if args.json:
        _print_json(_run_dict(run))
    else:
        print(f"imported as run {run.id}")
    return 0


def cmd_worker(args) -> int:
    import torch

    from .room.limits import train_threads
    from .runs.queue import dispatch
    from .runs.store import RunStore
    from .train.loop import train_run

    torch.set_num_threads(train_threads())  # the server keeps a core for the pages
    store = RunStore()
    try:
        train_run(args.run, store, echo=print, claim=args.claim or None)
    finally:
        dispatch(store)  # hand the freed slot to the next queued run
    return 0


def cmd_repair(args) -> int:
    from .runs.repair import repair

    report = repair()
    if args.json:
        _print_json(report.as_dict())
        return 0
    if report.moved_aside:
        print(f"the damaged database was moved aside to {report.moved_aside}")
    for item in report.recovered:
        print(f"recovered {item['run_id']:32s} {item['status']:11s} step {item['step']:7d}  "
              f"{item['metric_rows']} metric rows  {item['name']}")
    for problem in report.skipped:
        print(f"skipped {problem['folder']}: {problem['reason']}")
    print(f"{len(report.recovered)} run(s) recovered, {len(report.kept)} already in the database, "
          f"{len(report.skipped)} folder(s) skipped")
    return 0


def cmd_bench(args) -> int:
    from .bench import SET_OPTIONS, chosen_sets, run_bench

    sets = chosen_sets(texts=args.texts, tables=args.tables, image_sets=args.image_sets)
    section = {option: SET_OPTIONS[option][0] for option in sets}
    only = args.only or ",".join(dict.fromkeys(section.values())) or None  # a set named asks for its section
    for option in sets:
        if section[option] not in [part.strip() for part in only.split(",")]:
            raise UserError(f"--{option.replace('_', '-')} narrows the {section[option]} section; add it to --only")
    results = run_bench(quick=args.quick, only=only, sets=sets)
    if args.json:
        _print_json(results)
    return 0


def cmd_eval(args) -> int:
    from .train.evaluate import evaluate_run

    result = evaluate_run(args.run, n=args.n, echo=print)
    if args.json:
        _print_json(result)
    else:
        for k, v in result.items():
            print(f"{k:20s} {v}")
    return 0


def cmd_rate(args) -> int:
    from .rating_rules import rate_by_rule

    if bool(args.rule) == bool(args.file):
        raise UserError("rate needs either --rule RULE (e.g. class=7) or --file RATINGS.csv")
    if args.rule:
        result = rate_by_rule(args.run, args.rule, n=args.n, seed=args.seed)
    else:
        from .rating_rules import rate_from_file

        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        result = rate_from_file(args.run, path.read_bytes(), path.name)
    if args.json:
        _print_json(result)
    else:
        print(f"rated {result['rated']} samples of {result['run_id']}: {result['liked']} liked, "
              f"{result['disliked']} not" + (f" ({result['meaning']})" if result.get("meaning") else ""))
    return 0


def cmd_improve(args) -> int:
    from .improve import improve

    echo = (lambda m: print(m, file=sys.stderr)) if args.json else print
    report = improve(args.run, max_seconds=args.max_seconds, liked_share=args.liked_share, compare_n=args.n,
                     echo=echo)
    if args.json:
        _print_json(report.to_dict())
        return 0

    def pct(x):
        return "-" if x is None else f"{x:.1%}"
    print(f"new run {report.run_id} (fine-tuned {report.fine_tune_seconds:.0f} s on {report.dataset})")
    print(f"expected to be liked: {pct(report.preference_before)} before, {pct(report.preference_after)} after")
    print(f"  ({report.preference_note})")
    for name, share in report.class_shares_before.items():
        print(f"  class {name:10s} {share:6.1%} -> {report.class_shares_after.get(name, 0.0):6.1%}")
    return 0


def cmd_bakeoff(args) -> int:
    from .bakeoff import run_bakeoff

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = run_bakeoff(args.dataset, models, max_seconds=args.max_seconds, out=args.out, echo=print,
                         budget=args.budget, steps=args.steps or 0)
    if args.json:
        _print_json(result)
    return 0


def cmd_make_starters(args) -> int:
    from .starters import make_starters

    make_starters(Path(args.out), echo=print)
    return 0


def cmd_install_starters(args) -> int:
    from .starters import install_starters

    report = install_starters()
    if args.json:
        _print_json({"runs": [_run_dict(r) for r in report.runs], "installed": [r.id for r in report.installed],
                     "problems": report.problems})
    else:
        for run in report.runs:
            print(f"{run.id:32s} {run.name}" + ("  (added now)" if run in report.installed else ""))
        for problem in report.problems:
            print(f"error: {problem}", file=sys.stderr)
    return 0 if not report.problems else 2


def cmd_doctor(args) -> int:
    from .learn.doctor import apply_fix, diagnose_run

    report = diagnose_run(args.run, actor=_actor(args))
    if args.fix:
        child = apply_fix(args.run, args.fix, actor=_actor(args))
        report["started"] = _run_dict(child)
    if args.json:
        _print_json(report)
        return 0
    if not report["findings"]:
        print(f"run {args.run}: too early to judge; let it log a few more steps")
    for f in report["findings"]:
        since = f" (since step {f['since_step']})" if f["since_step"] is not None else ""
        print(f"{f['code']}{since}: {f['what']}\n  why: {f['why']}")
        if f["fix"]:
            print(f"  try: {f['fix']['label']}  (python -m aigc_core doctor --run {args.run} --fix {f['code']})")
    if args.fix:
        print(f"started run {report['started']['run_id']} with the {args.fix} fix")
    return 0


def cmd_lessons(args) -> int:
    from .learn.lessons import export_notebook, list_lessons, set_room_lesson

    if args.action == "assign":  # the teacher points the whole room at one lesson (no NAME: none)
        set_room_lesson(args.name, _actor(args))
        print(f"the Learn page now opens {args.name!r} for everyone" if args.name else "no lesson is assigned now")
        return 0
    if args.action == "time":  # measured: reading + poking + every run the lesson asks for, trained here
        from .learn.timing import time_lesson

        names = [args.name] if args.name else [l.name for l in list_lessons()]
        say = None if args.json else (lambda line: print(line, flush=True))
        times = [time_lesson(n, train=not args.no_train, echo=say) for n in names]
        if args.json:
            _print_json([t.to_dict() for t in times])
        else:
            for t in times:
                print(f"{t.name:20s} claimed {t.minutes_claimed:2d} min · measured {t.total_min:5.1f} min = reading "
                      f"{t.reading_min} + labs/tries {t.interaction_min} + runs {sum(t.compute_s.values()) / 60:.1f}"
                      f" ({sum(t.compute_cpu_s.values()) / 60:.1f} CPU min)")
        return 0
    if args.action == "export":
        if not args.name or not args.out:
            raise UserError("usage: lessons export NAME --out FILE.ipynb")
        path = export_notebook(args.name, Path(args.out))
        if args.json:
            _print_json({"name": args.name, "out": str(path)})
        else:
            print(f"wrote {path}")
        return 0
    lessons = list_lessons()
    if args.json:
        _print_json({"lessons": [{"name": l.name, "title": l.title, "minutes": l.minutes} for l in lessons]})
        return 0
    for l in lessons:
        print(f"{l.name:24s} {l.minutes:3d} min  {l.title}")
    return 0


# ---- parser ------------------------------------------------------------------------

def _who(s: argparse.ArgumentParser) -> None:
    """``--user`` / ``--teacher``: who acts, in workshop mode."""
    s.add_argument("--user", metavar="NAME", help="in workshop mode: act as this participant (default: $AIGC_USER)")
    s.add_argument("--teacher", action="store_true", help="in workshop mode: act as the teacher")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aigc_core", description="AIGC Studio engine: data, training, sampling, evaluation.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("datasets", help="list data sets")
    s.add_argument("--json", action="store_true")
    _who(s)
    s.set_defaults(fn=cmd_datasets)

    s = sub.add_parser("import-data", help="import a .zip/.npz of images, a .txt or a .csv")
    s.add_argument("path")
    s.add_argument("--name")
    s.add_argument("--size", type=int, choices=(28, 32, 64), default=28)
    s.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="1 = grey, 3 = colour (default: as uploaded, colour when any image is in colour)")
    s.add_argument("--text-mode", choices=("auto", "stream", "lines"), default="auto",
                   help="auto: lines when the file looks like a list of short items (names, titles), else stream")
    s.add_argument("--label", help="label column of a CSV (default: guessed, see label_column and label_reason)")
    s.add_argument("--no-label", action="store_true", help="a CSV without a label column (no guess)")
    s.add_argument("--json", action="store_true")
    _who(s)
    s.set_defaults(fn=cmd_import_data)

    s = sub.add_parser("recommend", help="the model and preset to start from for a data set, from the measurements "
                                         "kept in the repository (--measure: make them)")
    s.add_argument("--dataset", help="the data set (with --measure: the one to measure on; default: every reference set)")
    s.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    s.add_argument("--measure", action="store_true",
                   help="train each model with its Quick preset (processor-seconds clock) and record the results")
    s.add_argument("--models", help="with --measure: comma-separated models (default: every model that fits)")
    s.add_argument("--threads", type=int, help="with --measure: torch threads (default: torch's own)")
    s.add_argument("--out", help="with --measure: the measurements file (default: the repository's)")
    s.add_argument("--json", action="store_true")
    _who(s)
    s.set_defaults(fn=cmd_recommend)

    s = sub.add_parser("train", help="train a model (in the foreground unless --detach)")
    s.add_argument("--model")
    s.add_argument("--dataset", help="the data set (with --from: defaults to the parent's)")
    s.add_argument("--from", dest="from_run", metavar="RUN_ID",
                   help="fine-tune: start from this run's latest weights, keeping its model and settings")
    s.add_argument("--preset", help="Quick, Standard, ...")
    s.add_argument("--steps", type=int)
    s.add_argument("--max-seconds", type=float)
    s.add_argument("--seed", type=int)
    s.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"))
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="a model or training setting (repeatable)")
    s.add_argument("--name")
    s.add_argument("--detach", action="store_true", help="queue it for a background worker and return")
    s.add_argument("--json", action="store_true")
    _who(s)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("runs", help="list runs")
    s.add_argument("--json", action="store_true")
    _who(s)
    s.set_defaults(fn=cmd_runs)

    s = sub.add_parser("control", help="pause, resume, stop, publish (to the room), unpublish or delete a run")
    s.add_argument("--run", required=True)
    s.add_argument("action", choices=("pause", "resume", "stop", "publish", "unpublish", "delete"))
    _who(s)
    s.set_defaults(fn=cmd_control)

    s = sub.add_parser("sample", help="generate samples from a run's best (or last) checkpoint")
    s.add_argument("--run", required=True)
    s.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="best = the weights with the lowest held-out loss (the last ones for a model without one); "
                        "last = the newest weights")
    s.add_argument("-n", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--set", action="append", metavar="KNOB=VALUE",
                   help="a sampling knob the model declares (e.g. truncation=0.7, temperature=0.8, condition=col=value)")
    s.add_argument("--out", required=True)
    s.add_argument("--post", action="store_true", help="also post the samples to the room's shared wall")
    s.add_argument("--caption", help="a caption for the wall")
    s.add_argument("--json", action="store_true")
    _who(s)
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("export", help="export a run as a zip")
    s.add_argument("--run", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="best = the weights with the lowest held-out loss (the last ones for a model without one); "
                        "last = the newest weights")
    _who(s)
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("import-run", help="import a run exported as a zip")
    s.add_argument("path")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_import_run)

    s = sub.add_parser("eval", help="quality metrics of a run")
    s.add_argument("--run", required=True)
    s.add_argument("-n", type=int, default=None,
                   help="generated and real samples to compare (default 5000; tables: synthetic rows in the report, "
                        "default as many as the training rows)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("rate", help="rate a run's samples by a rule (class=7, brightest=0.25, contains=ab, "
                                    "column=value) or from a file")
    s.add_argument("--run", required=True)
    s.add_argument("--rule", help="e.g. class=7, brightest=0.25, longest=0.25, contains=TEXT, purchase=True")
    s.add_argument("--file", help="a CSV with columns seed,index,rating (1 or up = liked, 0 or down = not)")
    s.add_argument("-n", type=int, default=200, help="samples to make and rate by the rule")
    s.add_argument("--seed", type=int, default=4242, help="seed of the samples rated by the rule")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_rate)

    s = sub.add_parser("improve", help="fine-tune a run on its liked samples and measure before and after")
    s.add_argument("--run", required=True)
    s.add_argument("--max-seconds", type=float, default=60.0, help="fine-tune budget")
    s.add_argument("--liked-share", type=float, default=0.5, help="share of the fine-tune data from liked samples")
    s.add_argument("-n", type=int, default=400, help="fresh samples compared before and after")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_improve)

    s = sub.add_parser("bakeoff", help="train several models on the same data and budget, then compare")
    s.add_argument("--dataset", required=True)
    s.add_argument("--models", required=True, help="comma-separated model names")
    s.add_argument("--max-seconds", type=float, default=60, help="seconds per model (processor or clock, see --budget)")
    s.add_argument("--budget", choices=("cpu", "wall", "steps"), default="cpu",
                   help="what the budget counts: processor seconds (fair on a shared machine), clock seconds, "
                        "or --steps optimisation steps")
    s.add_argument("--steps", type=int, help="steps per model, with --budget steps")
    s.add_argument("--out", help="write the HTML report here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_bakeoff)

    s = sub.add_parser("bench", help="print speed and quality figures for this machine")
    s.add_argument("--quick", action="store_true", help="shorter timings")
    s.add_argument("--only", help="comma-separated sections: images,text,tabular,metrics; asked for by name only "
                   "(long trainings of the presets on the sets their rules were tuned on and on unseen ones): "
                   "presets (text and tables), image_presets (each image family's Standard preset, --quick: Quick)")
    s.add_argument("--texts", help="presets: only these text corpora (comma-separated, e.g. stdlib_150k,pydoc)")
    s.add_argument("--tables", help="presets: only these tables (comma-separated, e.g. glyphs_7x7,blobs)")
    s.add_argument("--image-sets", help="image_presets: only these image sets (comma-separated, e.g. shapes,digits)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("make-starters", help="train the small starter checkpoints shipped with the app")
    s.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "starters"))
    s.set_defaults(fn=cmd_make_starters)

    s = sub.add_parser("install-starters", help="add the shipped starter models to this workspace as finished runs")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_install_starters)

    s = sub.add_parser("repair", help="rebuild the run database from the run folders (after runs.db was lost or damaged)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_repair)

    s = sub.add_parser("doctor", help="say what is going wrong with a run, and how to fix it")
    s.add_argument("--run", required=True)
    s.add_argument("--fix", metavar="CODE", help="start a new run with this finding's fix applied")
    s.add_argument("--json", action="store_true")
    _who(s)
    s.set_defaults(fn=cmd_doctor)

    s = sub.add_parser("lessons", help="list the lessons, export one as a Jupyter notebook, or assign one to the room")
    s.add_argument("action", nargs="?", choices=("list", "export", "assign", "time"), default="list")
    s.add_argument("name", nargs="?")
    s.add_argument("--out", help="the .ipynb file to write (export)")
    s.add_argument("--no-train", action="store_true", help="time: count reading and labs only, train nothing")
    s.add_argument("--json", action="store_true")
    _who(s)
    s.set_defaults(fn=cmd_lessons)

    s = sub.add_parser("worker", help=argparse.SUPPRESS)
    s.add_argument("run")
    s.add_argument("--claim", help="the claim token the queue wrote for this worker")
    s.set_defaults(fn=cmd_worker)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
