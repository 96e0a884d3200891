"""The one training loop every model runs in.

It owns what is common to all families: the device, budgets (steps and/or
seconds, pauses excluded), the logging cadence (the only place losses are
copied to the host), the film strip, atomic checkpoints, held-out checks with
the best checkpoint and early stopping (:mod:`.early_stop`), the control field
(pause / resume / stop), the heartbeat, and the NaN guard. The trainer only
knows how to take one step.

It writes only through a sink (:mod:`aigc_core.runs.sink`): the run store
and folder on this machine, or, on a Ray worker, a proxy to the one actor on
the head node that writes them there. Every write names the worker's claim
token (see :mod:`aigc_core.runs.store`): once the run has been handed to
another worker, a write or a control poll raises :class:`LostClaim` and this
worker stops at once, writing nothing more.
"""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from typing import Callable

import torch

from ..errors import UserError
from ..registry import build_trainer  # noqa: F401 - also importable from here, as before
from ..runs.checkpoint import load_state
from ..runs.sink import RunSink, save_frame, thin_film_strip  # noqa: F401 - also importable from here, as before
from ..runs.store import LostClaim, RunStore
from .device import device_name
from .early_stop import HeldOutWatch

CONTROL_POLL_S = 0.5
HEARTBEAT_S = 2.0
CHECKPOINT_EVERY_S = 60.0  # also save by time, so a crash loses at most a minute
PAUSE_RELEASED_MESSAGE = ("paused; its training slot went back to the queue after a while. "
                          "Resume puts it back in the queue; it continues from where it paused")


def _pause_release_seconds() -> float:
    """How long a paused run keeps its slot (``AIGC_PAUSE_RELEASE_SECONDS``; 0 = for ever)."""
    from ..room.limits import Limits

    return Limits.from_env().pause_release_seconds or float("inf")


class _Heartbeat(threading.Thread):
    """Writes the run's heartbeat every few seconds, also while a long step,
    an evaluation or a first-time data build is in progress."""

    def __init__(self, sink: RunSink, claim: str | None):
        super().__init__(daemon=True)
        self.sink, self.claim = sink, claim
        self.stop_event, self.lost = threading.Event(), threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_S):
            try:
                self.sink.write(self.claim, heartbeat=time.time())
            except LostClaim:
                self.lost.set()  # the loop sees it at its next control poll
                return
            except Exception:  # noqa: BLE001 - a busy database must not kill training
                pass


def _compile(trainer) -> None:
    for net in trainer.nets.values():
        net.compile()


def _frame(trainer):
    trainer.train_mode(False)
    try:
        with torch.no_grad():
            return trainer.film_strip()
    finally:
        trainer.train_mode(True)


def train_run(run_id: str, store: RunStore | None = None, echo: Callable[[str], None] | None = None,
              claim: str | None = None, sink: RunSink | None = None) -> str:
    """Train a claimed run to the end of its budget; returns its final status,
    or ``"lost"`` when the run was handed to another worker meanwhile.

    ``claim`` is the token the queue wrote when it handed the run out; when
    not given, the token in the run's row now is this worker's. ``sink``:
    where the writes go (default: ``store`` and the run folder here)."""
    sink = sink or RunSink(store or RunStore(), run_id)
    run = sink.run()
    claim = claim or run.claim
    beat = _Heartbeat(sink, claim)
    try:
        sink.write(claim, status="starting", heartbeat=time.time(), pid=os.getpid())
        beat.start()
        return _train(run, sink, echo, claim, beat)
    except LostClaim:
        return _lost(run_id, echo)
    except UserError as exc:
        return _fail(sink, run, claim, str(exc), echo)
    except Exception as exc:  # noqa: BLE001 - report any crash on the page, not as a traceback
        details = traceback.format_exc()
        status = _fail(sink, run, claim, f"training crashed: {type(exc).__name__}: {exc} (details in {sink.crash_log})", echo)
        if status == "failed":
            sink.save_crash(details)
        return status
    finally:
        beat.stop_event.set()


def _fail(sink: RunSink, run, claim: str | None, message: str, echo) -> str:
    try:
        sink.set_status(claim, "failed", message)
    except LostClaim:
        return _lost(run.id, echo)
    return "failed"


def _lost(run_id: str, echo) -> str:
    if echo:
        echo(f"run {run_id} was handed to another worker (this one was judged dead); stopping without writing")
    return "lost"


def _train(run, sink: RunSink, echo, claim: str | None, beat: _Heartbeat) -> str:
    run_id = run.id
    say = echo or (lambda _msg: None)

    def write(**fields) -> None:
        sink.write(claim, **fields)

    spec, settings, trainer = build_trainer(run.config)
    if not settings.steps and not settings.max_seconds:
        raise UserError("give the run a budget: a number of steps, a time limit, or both")
    device = trainer.device
    if settings.compile:
        _compile(trainer)

    step, train_seconds = 0, 0.0
    skipped: list[str] = []
    found = sink.latest_good(device, say=skipped.append)
    if found:
        step, path, state = found
        trainer.load_state(state)
        train_seconds = float(run.train_seconds or 0.0)
        say(f"resumed from step {step}")
    else:  # a fine-tune starts from its parent's weights (aigc_core.improve)
        from .parent import load_parent_weights
        load_parent_weights(trainer, run.config, sink.store, say)
    for line in skipped:
        say(line)
    note = None  # the run's message when a damaged checkpoint was skipped, so the page says so
    if skipped:
        note = "; ".join(skipped) + (f"; resumed from step {step}" if found else
                                     "; no checkpoint was readable, so training started again from step 0")
    write(status="running", device=str(device), device_name=device_name(device), step=step,
          control=None, message=note)
    say(f"training {spec.name} on {run.dataset} ({device_name(device)})")
    if step == 0:
        sink.save_frame(0, _frame(trainer))

    def checkpoint() -> None:
        if sink.take_control(claim) == "lost":
            raise LostClaim(run_id)  # the folder belongs to the run's new worker now
        sink.save_checkpoint(step, trainer.state(), {"model": spec.name, "run_id": run_id})

    watch = HeldOutWatch.for_run(spec, settings, sink.best(), step)
    held_at: tuple[int, dict[str, float]] | None = None  # (step, numbers) of the latest held-out check
    stopped_early: str | None = None

    def held_out_check() -> dict[str, float]:
        """Measure the held-out split; save the weights as the best when they beat it."""
        trainer.train_mode(False)
        try:
            with torch.no_grad():
                held = {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))}
        finally:
            trainer.train_mode(True)
        if watch.check(step, held):
            if sink.take_control(claim) == "lost":
                raise LostClaim(run_id)
            sink.save_best(step, trainer.state(), watch.key, watch.best, held, {"model": spec.name, "run_id": run_id})
        return held

    trainer.train_mode(True)
    sums: dict[str, torch.Tensor] = {}
    n_in_window, window_start, last_poll, last_ckpt = 0, time.perf_counter(), 0.0, time.perf_counter()
    status = "completed"
    compiled_ok = not settings.compile
    # training time (the budget's, and the page's) on the run's clock: wall seconds, or this process's CPU seconds
    clock = time.process_time if settings.clock == "cpu" else time.perf_counter
    seg_start = clock()  # start of the current un-paused stretch

    def budget_left() -> bool:
        elapsed = train_seconds + (clock() - seg_start)
        if settings.steps and step >= settings.steps:
            return False
        if settings.max_seconds and elapsed >= settings.max_seconds:
            return False
        return True

    while budget_left():
        now = time.perf_counter()
        if now - last_poll >= CONTROL_POLL_S:
            last_poll = now
            if step:  # the page's clock and step counter move from the first step, not the first log
                write(step=step, train_seconds=train_seconds + (clock() - seg_start))
            control = sink.take_control(claim)
            if control == "lost" or beat.lost.is_set():
                raise LostClaim(run_id)
            if control == "stop":
                status = "stopped"
                break
            if control == "pause":
                train_seconds += clock() - seg_start
                write(status="paused", control=None, train_seconds=train_seconds)
                say("paused")
                release_at = time.monotonic() + _pause_release_seconds()
                while (control := sink.take_control(claim)) not in ("resume", "stop"):
                    if control == "lost" or beat.lost.is_set():
                        raise LostClaim(run_id)
                    if time.monotonic() >= release_at:
                        # paused too long: save, give the slot to the queue and end this worker
                        checkpoint()
                        if sink.release_paused(claim, PAUSE_RELEASED_MESSAGE):
                            say("paused for a while: the training slot went back to the queue")
                            return "paused"
                        release_at = float("inf")  # a Resume or Stop came first: take it
                    time.sleep(0.25)
                if control == "stop":
                    status = "stopped"
                    seg_start = clock()
                    break
                write(status="running", control=None)
                say("resumed")
                seg_start, window_start = clock(), time.perf_counter()
                n_in_window = 0
                sums.clear()

        try:
            out = trainer.step()
        except Exception as exc:
            if compiled_ok:
                raise
            # torch.compile failed (no compiler, unsupported op): carry on eagerly
            say(f"torch.compile failed ({type(exc).__name__}); continuing without it")
            write(message=f"torch.compile was not available here ({type(exc).__name__}); trained without it")
            _, _, trainer = build_trainer(run.config, device=device)
            compiled_ok = True
            if found:
                trainer.load_state(load_state(found[1], device=device)[0])
            else:
                from .parent import load_parent_weights
                load_parent_weights(trainer, run.config, sink.store)
            out = trainer.step()
        compiled_ok = True
        step += 1
        n_in_window += 1
        for k, v in out.items():
            sums[k] = sums[k] + v.detach() if k in sums else v.detach().float().clone()

        at_log = step % settings.log_every == 0 or not budget_left()
        if at_log:
            # the only host sync: averages over the logging window
            keys = list(sums)
            values = torch.stack([sums[k].float() for k in keys]).cpu().tolist() if keys else []
            elapsed = time.perf_counter() - window_start
            record = {k: v / n_in_window for k, v in zip(keys, values)}
            for k, v in record.items():
                if k.startswith("loss") and not math.isfinite(v):
                    what = trainer.loss_names.get(k, f"the loss '{k}'")
                    kind = "NaN" if math.isnan(v) else "infinite"
                    checkpoint_msg = "The last good checkpoint is kept." if sink.has_checkpoint() else ""
                    raise UserError(f"{what} became {kind} at step {step}; {trainer.nan_hint}. {checkpoint_msg}".strip())
            record["step_time_ms"] = 1000 * elapsed / max(1, n_in_window)
            record["samples_per_s"] = n_in_window * trainer.batch_size / max(elapsed, 1e-9)
            total = train_seconds + (clock() - seg_start)
            wall = time.time()
            sink.log_metrics(step, record, wall, claim=claim, keep=not budget_left(),
                             row=dict(step=step, train_seconds=total, samples_per_s=record["samples_per_s"],
                                      heartbeat=time.time()))
            if echo and step % (settings.log_every * 4) == 0:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith("loss"))
                say(f"step {step}: {shown}")
            sums.clear()
            n_in_window, window_start = 0, time.perf_counter()

        if watch is not None and settings.eval_every and step % settings.eval_every == 0:
            check_start = time.perf_counter()
            held = held_out_check()
            sink.log_metrics(step, held, time.time(), claim=claim, keep=True)
            held_at = (step, held)
            window_start += time.perf_counter() - check_start  # steps/s counts training steps only
            if watch.exhausted:
                stopped_early = watch.reason(step)
                say(stopped_early)
                break

        if step % settings.sample_every == 0:
            sink.save_frame(step, _frame(trainer))
        if step % settings.checkpoint_every == 0 or time.perf_counter() - last_ckpt > CHECKPOINT_EVERY_S:
            checkpoint()
            last_ckpt = time.perf_counter()

    train_seconds += clock() - seg_start
    checkpoint()
    if not sink.has_frame(step):
        sink.save_frame(step, _frame(trainer))
    write(step=step, train_seconds=train_seconds)
    final = dict(sink.last_metrics())
    if held_at is not None and held_at[0] == step:
        last_held, evaluated = held_at[1], {}  # measured and logged at this very step
        trainer.train_mode(False)
    else:
        last_held = held_out_check() if watch is not None else None
        trainer.train_mode(False)
        if last_held is None:
            with torch.no_grad():
                last_held = trainer.evaluate()
        evaluated = dict(last_held)
    final.update(last_held)
    best = sink.best() if watch is not None else None
    if best is not None:
        # the run's final numbers describe the weights it is sampled and exported from: the best
        if best["step"] != step:
            trainer.load_state(sink.best_weights(device), weights_only=True)
            trainer.train_mode(False)
        final.update(best["held_out"])
        final["best_step"] = float(best["step"])
        if watch.key in last_held:
            final[f"last_{watch.key}"] = last_held[watch.key]
    quality = _quality_metrics(sink.run(), trainer, sink, say, claim)
    evaluated.update(quality)
    if evaluated:
        sink.log_metrics(step, evaluated, time.time(), claim=claim, keep=True)
    final.update(quality)
    write(final_metrics=final)
    message = "stopped by request" if status == "stopped" else "; ".join(m for m in (stopped_early, note) if m) or None
    sink.set_status(claim, status, message)
    say(f"{status} at step {step} after {train_seconds:.1f} s")
    return status


def _quality_metrics(run, trainer, sink: RunSink, say, claim: str | None) -> dict[str, float]:
    """The family's quality metrics (FID/KID, ELBO, bpc, ...) at the end of a run.

    A failing evaluation is reported in the run's message but never turns a
    finished training into a failed run."""
    from .evaluate import end_of_run_metrics

    if run.config.get("end_of_run_evaluation") is False:  # e.g. a short fine-tune that improve measures itself
        return {}
    try:
        return end_of_run_metrics(run, trainer)
    except Exception as exc:  # noqa: BLE001
        say(f"evaluation failed: {exc}")
        sink.write(claim, note=f"the end-of-run evaluation failed: {type(exc).__name__}: {exc}")
        return {}
