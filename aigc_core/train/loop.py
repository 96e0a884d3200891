"""The one training loop every model runs in.

It owns what is common to all families: the device, budgets (steps and/or
seconds, pauses excluded), the logging cadence (the only place losses are
copied to the host), the film strip, atomic checkpoints, the control field
(pause / resume / stop), the heartbeat, and the NaN guard. The trainer only
knows how to take one step.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from typing import Callable

import torch

from ..errors import UserError
from ..registry import build_trainer  # noqa: F401 - also importable from here, as before
from ..runs.checkpoint import latest_checkpoint, load_state, save_checkpoint
from ..runs.store import RunStore
from .device import device_name

CONTROL_POLL_S = 0.5
HEARTBEAT_S = 2.0
CHECKPOINT_EVERY_S = 60.0  # also save by time, so a crash loses at most a minute


class _Heartbeat(threading.Thread):
    """Writes the run's heartbeat every few seconds, also while a long step,
    an evaluation or a first-time data build is in progress."""

    def __init__(self, store: RunStore, run_id: str):
        super().__init__(daemon=True)
        self.store, self.run_id, self.stop_event = store, run_id, threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_S):
            try:
                self.store.update(self.run_id, heartbeat=time.time())
            except Exception:  # noqa: BLE001 - a busy database must not kill training
                pass


def _compile(trainer) -> None:
    for net in trainer.nets.values():
        net.compile()


def save_frame(folder, step: int, frame) -> None:
    from ..imaging import png_bytes
    from ..paths import write_atomic

    if frame is None:
        return
    if isinstance(frame, str):
        write_atomic(folder / f"step_{step:08d}.txt", frame.encode("utf-8"))
    else:
        write_atomic(folder / f"step_{step:08d}.png", png_bytes(frame))


def _frame(trainer):
    trainer.train_mode(False)
    try:
        with torch.no_grad():
            return trainer.film_strip()
    finally:
        trainer.train_mode(True)


def train_run(run_id: str, store: RunStore | None = None, echo: Callable[[str], None] | None = None) -> str:
    """Train a claimed run to the end of its budget; returns its final status."""
    store = store or RunStore()
    run = store.get(run_id)
    beat = _Heartbeat(store, run_id)
    store.update(run_id, status="starting", heartbeat=time.time(), pid=__import__("os").getpid())
    beat.start()
    try:
        return _train(run, store, echo)
    except UserError as exc:
        store.set_status(run_id, "failed", str(exc))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - report any crash on the page, not as a traceback
        (run.folder / "error.log").write_text(traceback.format_exc())
        store.set_status(run_id, "failed", f"training crashed: {type(exc).__name__}: {exc} (details in {run.folder / 'error.log'})")
        return "failed"
    finally:
        beat.stop_event.set()


def _train(run, store: RunStore, echo) -> str:
    run_id = run.id
    say = echo or (lambda _msg: None)
    spec, settings, trainer = build_trainer(run.config)
    if not settings.steps and not settings.max_seconds:
        raise UserError("give the run a budget: a number of steps, a time limit, or both")
    device = trainer.device
    if settings.compile:
        _compile(trainer)

    ckpt_dir, sample_dir = run.folder / "checkpoints", run.folder / "samples"
    step, train_seconds = 0, 0.0
    found = latest_checkpoint(ckpt_dir)
    if found:
        step, path = found
        state, _ = load_state(path, device=device)
        trainer.load_state(state)
        train_seconds = float(run.train_seconds or 0.0)
        say(f"resumed from step {step}")
    store.update(run_id, status="running", device=str(device), device_name=device_name(device), step=step,
                 control=None, message=None)
    say(f"training {spec.name} on {run.dataset} ({device_name(device)})")
    if step == 0:
        save_frame(sample_dir, 0, _frame(trainer))

    def checkpoint() -> None:
        save_checkpoint(ckpt_dir, step, trainer.state(), {"model": spec.name, "run_id": run_id})

    trainer.train_mode(True)
    sums: dict[str, torch.Tensor] = {}
    n_in_window, window_start, last_poll, last_ckpt = 0, time.perf_counter(), 0.0, time.perf_counter()
    status = "completed"
    compiled_ok = not settings.compile
    seg_start = time.perf_counter()  # start of the current un-paused stretch

    def budget_left() -> bool:
        elapsed = train_seconds + (time.perf_counter() - seg_start)
        if settings.steps and step >= settings.steps:
            return False
        if settings.max_seconds and elapsed >= settings.max_seconds:
            return False
        return True

    while budget_left():
        now = time.perf_counter()
        if now - last_poll >= CONTROL_POLL_S:
            last_poll = now
            control = store.take_control(run_id)
            if control == "stop":
                status = "stopped"
                break
            if control == "pause":
                train_seconds += now - seg_start
                store.update(run_id, status="paused", control=None, train_seconds=train_seconds)
                say("paused")
                while (control := store.take_control(run_id)) not in ("resume", "stop"):
                    time.sleep(0.25)
                if control == "stop":
                    status = "stopped"
                    seg_start = time.perf_counter()
                    break
                store.update(run_id, status="running", control=None)
                say("resumed")
                seg_start = window_start = time.perf_counter()
                n_in_window = 0
                sums.clear()

        try:
            out = trainer.step()
        except Exception as exc:
            if compiled_ok:
                raise
            # torch.compile failed (no compiler, unsupported op): carry on eagerly
            say(f"torch.compile failed ({type(exc).__name__}); continuing without it")
            store.update(run_id, message=f"torch.compile was not available here ({type(exc).__name__}); trained without it")
            _, _, trainer = build_trainer(run.config, device=device)
            compiled_ok = True
            if found:
                trainer.load_state(load_state(found[1], device=device)[0])
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
                    checkpoint_msg = "The last good checkpoint is kept." if latest_checkpoint(ckpt_dir) else ""
                    raise UserError(f"{what} became {kind} at step {step}; {trainer.nan_hint}. {checkpoint_msg}".strip())
            record["step_time_ms"] = 1000 * elapsed / max(1, n_in_window)
            record["samples_per_s"] = n_in_window * trainer.batch_size / max(elapsed, 1e-9)
            total = train_seconds + (time.perf_counter() - seg_start)
            store.log_metrics(run_id, step, record)
            store.update(run_id, step=step, train_seconds=total, samples_per_s=record["samples_per_s"],
                         heartbeat=time.time())
            if echo and step % (settings.log_every * 4) == 0:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith("loss"))
                say(f"step {step}: {shown}")
            sums.clear()
            n_in_window, window_start = 0, time.perf_counter()

        if step % settings.sample_every == 0:
            save_frame(sample_dir, step, _frame(trainer))
        if step % settings.checkpoint_every == 0 or time.perf_counter() - last_ckpt > CHECKPOINT_EVERY_S:
            checkpoint()
            last_ckpt = time.perf_counter()

    train_seconds += time.perf_counter() - seg_start
    checkpoint()
    if not (sample_dir / f"step_{step:08d}.png").exists() and not (sample_dir / f"step_{step:08d}.txt").exists():
        save_frame(sample_dir, step, _frame(trainer))
    store.update(run_id, step=step, train_seconds=train_seconds)
    final = dict(store.last_metrics(run_id))
    trainer.train_mode(False)
    with torch.no_grad():
        evaluated = trainer.evaluate()
    evaluated.update(_quality_metrics(run, trainer, store, say))
    if evaluated:
        store.log_metrics(run_id, step, evaluated)
        final.update(evaluated)
    store.update(run_id, final_metrics=final)
    store.set_status(run_id, status, "stopped by request" if status == "stopped" else None)
    say(f"{status} at step {step} after {train_seconds:.1f} s")
    return status


def _quality_metrics(run, trainer, store, say) -> dict[str, float]:
    """The family's quality metrics (FID/KID, ELBO, bpc, ...) at the end of a run.

    A failing evaluation is reported in the run's message but never turns a
    finished training into a failed run."""
    from .evaluate import end_of_run_metrics

    try:
        return end_of_run_metrics(run, trainer)
    except Exception as exc:  # noqa: BLE001
        say(f"evaluation failed: {exc}")
        store.update(run.id, note=f"the end-of-run evaluation failed: {type(exc).__name__}: {exc}")
        return {}
