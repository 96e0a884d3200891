"""How long a room waits: measured per-run times and the fair queue simulated for a room size.

``python -m aigc_core.room.capacity measure --out FILE.json`` trains the Quick
preset of one model per family here, one after another, and records each
run's seconds from "Train" to "completed" (data, training, film strip,
checkpoints and the end-of-run evaluation), with the machine's load.
``python -m aigc_core.room.capacity simulate --times FILE.json`` then plays
the room's queue with those times: everybody presses Train at once, runs go
out in the studio's fair order (:func:`aigc_core.room.policy.fair_order`) to
``nodes x slots-per-node`` training slots, and it prints the expected wait.
docs/scaling.md shows both for this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

from .policy import Waiting, fair_order

#: one model per family and a built-in data set it trains on (no download needed)
QUICK_RUNS = (("dcgan", "glyphs"), ("vae", "digits"), ("char_gpt", "unicode_names"), ("tab_gan", "iris"),
              ("ddpm", "glyphs"))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(runs=QUICK_RUNS, threads: int = 1, executor: str = "local", echo=print) -> dict:
    """Train each (model, data set)'s Quick preset to the end; seconds per run, measured.

    ``executor``: ``local`` trains in this process (as a worker does);
    ``ray`` submits to a local Ray with two CPUs and waits, so the difference
    is Ray's own cost per run."""
    import torch

    from ..runs import api
    from ..runs.store import RunStore

    os.environ["AIGC_TRAIN_THREADS"] = str(threads)
    os.environ["AIGC_EXECUTOR"] = executor
    torch.set_num_threads(threads)
    if executor == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = RunStore()
    out = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": threads,
           "executor": executor, "torch": torch.__version__, "load_before": _load(), "runs": []}
    try:
        for model, dataset in runs:
            config = api.make_config(model, dataset, preset="Quick")
            start = time.perf_counter()
            if executor == "local":
                run = api.run_in_foreground(config, store=store, echo=lambda _m: None)
            else:
                run = api.submit(config, store=store)
                while store.get(run.id).status not in ("completed", "failed", "stopped", "interrupted"):
                    time.sleep(0.5)
                run = store.get(run.id)
            seconds = time.perf_counter() - start
            row = {"model": model, "dataset": dataset, "status": run.status, "seconds": round(seconds, 1),
                   "train_seconds": round(run.train_seconds, 1), "steps": run.step, "load_after": _load()}
            echo(json.dumps(row))
            out["runs"].append(row)
    finally:
        if executor == "ray":
            import ray

            ray.shutdown()
    out["load_after"] = _load()
    return out


def head_rate(seconds: float = 10.0, threads: int = 4) -> dict:
    """Worker polls per second the head's store takes (``threads`` writers at
    once, each doing what a training worker does every half second: write its
    step and clock, read the control field), and so about how many runs one
    head can carry (a worker makes about 3 such calls a second)."""
    import threading

    from ..runs.store import RunStore

    store = RunStore()
    runs = [store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                         config={"train": {"steps": 1}}) for _ in range(threads)]
    for run in runs:
        store.update(run.id, claim=f"c{run.id}", status="running")
    counts = [0] * threads
    end = time.monotonic() + seconds

    def writer(i: int) -> None:
        run_id = runs[i].id
        while time.monotonic() < end:
            store.update_claimed(run_id, f"c{run_id}", step=counts[i], train_seconds=0.0)
            store.take_control(run_id, f"c{run_id}")
            counts[i] += 1

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    polls = sum(counts) / seconds
    # a training worker makes 2 such polls a second, plus a heartbeat every 2 s and a metrics row every
    # log_every steps: about 3 a second all told
    return {"polls_per_s": round(polls, 1), "threads": threads, "load": _load(), "runs_one_head_carries": int(polls / 3)}


@dataclass(frozen=True)
class Wait:
    """The room's waits in seconds (from pressing Train to the run starting) and when the last run ends."""

    mean: float
    median: float
    p90: float
    longest: float
    all_done: float


def simulate(participants: int, slots: int, run_seconds: list[float], runs_each: int = 1) -> Wait:
    """Everybody presses Train at once (``runs_each`` runs each, families taken
    in turn); each freed slot goes to the first run in the studio's fair order."""
    queued = [Waiting(f"r{p:04d}-{k}", f"p{p:04d}", created=k + p * 1e-6,
                      seconds=run_seconds[(p + k) % len(run_seconds)])
              for p in range(participants) for k in range(runs_each)]
    free_at = [0.0] * max(1, slots)
    running: list[tuple[float, str]] = []  # (end, user)
    served: dict[str, float] = {}
    waits, last_end = [], 0.0
    while queued:
        now = min(free_at)
        free_at.remove(now)
        running = [(end, user) for end, user in running if end > now]
        active: dict[str, int] = {}
        for _, user in running:
            active[user] = active.get(user, 0) + 1
        # requests are all made at time 0; created only orders them
        nxt = fair_order(queued, active, served)[0]
        queued.remove(nxt)
        end = now + nxt.seconds
        waits.append(now)
        served[nxt.user] = now
        running.append((end, nxt.user))
        free_at.append(end)
        last_end = max(last_end, end)
    waits.sort()
    return Wait(statistics.mean(waits), statistics.median(waits), waits[int(0.9 * (len(waits) - 1))], waits[-1],
                last_end)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def table(run_seconds: list[float], rooms=(30, 100, 300), nodes=(1, 4, 16), slots_per_node: int = 1,
          runs_each: int = 1) -> str:
    lines = ["| participants | nodes | slots | mean wait (min) | median | 90th percentile | longest | all done (min) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for people in rooms:
        for n in nodes:
            w = simulate(people, n * slots_per_node, run_seconds, runs_each)
            lines.append(f"| {people} | {n} | {n * slots_per_node} | {_minutes(w.mean)} | {_minutes(w.median)} | "
                         f"{_minutes(w.p90)} | {_minutes(w.longest)} | {_minutes(w.all_done)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aigc_core.room.capacity", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="train each family's Quick preset here and record its seconds")
    m.add_argument("--out", required=True)
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--executor", choices=("local", "ray"), default="local")
    m.add_argument("--models", help="only these models of the list, comma-separated (e.g. dcgan)")
    h = sub.add_parser("head-rate", help="worker writes per second the head's run store takes here")
    h.add_argument("--seconds", type=float, default=10.0)
    s = sub.add_parser("simulate", help="the room's expected wait from measured per-run seconds")
    s.add_argument("--times", required=True, help="a file written by `measure`")
    s.add_argument("--slots-per-node", type=int, default=1)
    s.add_argument("--runs-each", type=int, default=1)
    args = parser.parse_args(argv)
    if args.cmd == "measure":
        chosen = set(args.models.split(",")) if args.models else None
        runs = [r for r in QUICK_RUNS if chosen is None or r[0] in chosen]
        result = measure(runs, threads=args.threads, executor=args.executor)
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
        return 0
    if args.cmd == "head-rate":
        print(json.dumps(head_rate(args.seconds)))
        return 0
    with open(args.times) as fh:
        measured = json.load(fh)
    seconds = [r["seconds"] for r in measured["runs"] if r["status"] == "completed"]
    print(table(seconds, slots_per_node=args.slots_per_node, runs_each=args.runs_each))
    return 0


if __name__ == "__main__":
    sys.exit(main())
