"""The training doctor: right on runs made to fail, silent on healthy ones.

Fast tests feed it synthetic metric histories (as a worker would log them) and
tiny real runs; the slow test trains purposely broken runs and every model's
Quick preset and prints the hit / false-alarm table.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from aigc_core import cli
from aigc_core.learn.doctor import Evidence, apply_fix, diagnose, diagnose_run
from aigc_core.runs import api
from aigc_core.runs.store import RunStore


def codes(ev: Evidence) -> list[str]:
    return [f.code for f in diagnose(ev)]


def history(**series) -> dict:
    out = {}
    for key, values in series.items():
        values = np.asarray(values, dtype=float)
        out[key] = (np.arange(1, len(values) + 1) * 25, values)
    return out


GAN_CFG = {"loss": "nonsaturating", "lr_g": 2e-4, "lr_d": 2e-4, "d_steps": 1}
N = 60
rng = np.random.default_rng(0)


def noisy(level, spread=0.05, n=N):
    return level + rng.normal(0, spread, n)


def healthy_gan() -> Evidence:
    return Evidence(history(loss_d=noisy(1.2), loss_g=noisy(1.0), d_real=noisy(0.6), d_fake=noisy(0.4)),
                    model_config=dict(GAN_CFG), family="gan")


def test_a_balanced_gan_is_healthy():
    assert codes(healthy_gan()) == ["healthy"]


def test_a_discriminator_that_wins_is_named_with_the_step_it_began_and_a_slower_d_as_the_fix():
    d_real = np.r_[noisy(0.6, n=20), np.full(40, 0.99)]
    d_fake = np.r_[noisy(0.4, n=20), np.full(40, 0.02)]
    loss_g = np.r_[noisy(0.9, n=20), np.linspace(2, 6, 40)]
    ev = Evidence(history(loss_d=noisy(0.3), loss_g=loss_g, d_real=d_real, d_fake=d_fake),
                  model_config={**GAN_CFG, "lr_d": 2e-3, "d_steps": 5}, family="gan")
    (finding,) = diagnose(ev)
    assert finding.code == "d_wins"
    assert 21 * 25 <= finding.since_step <= 23 * 25
    assert finding.fix["model_set"]["lr_d"] < 2e-3 and finding.fix["model_set"]["d_steps"] == 1


def test_a_confident_discriminator_whose_generator_keeps_up_is_not_d_wins():
    ev = Evidence(history(loss_d=noisy(0.5), loss_g=noisy(1.5), d_real=noisy(0.93, 0.01), d_fake=noisy(0.07, 0.01)),
                  model_config=dict(GAN_CFG), family="gan")
    assert "d_wins" not in codes(ev)


def test_nan_losses_and_a_nan_stop_message_are_diverged():
    loss = np.r_[noisy(2.0, n=30), [np.nan] * 5]
    ev = Evidence(history(loss=loss), model_config={"lr": 0.5, "grad_clip": 0.0}, family="text")
    (finding,) = diagnose(ev)
    assert finding.code == "diverged" and finding.since_step == 31 * 25
    assert finding.fix["model_set"] == {"lr": 0.05, "grad_clip": 1.0}
    stopped = Evidence(history(loss=noisy(2.0, n=8)), model_config={"lr": 0.5}, family="text", status="failed",
                       message="the training loss became NaN at step 180; try a lower learning rate.")
    assert [(f.code, f.since_step) for f in diagnose(stopped)] == [("diverged", 180)]


def test_a_loss_that_ends_above_its_start_is_diverged():
    loss = np.r_[np.linspace(4.0, 2.0, 20), np.linspace(2.0, 9.0, 40)]
    assert codes(Evidence(history(loss=loss), model_config={"lr": 0.3}, family="text")) == ["diverged"]


def test_a_kl_near_zero_is_posterior_collapse_and_the_fix_lowers_beta():
    kl = np.r_[np.linspace(5, 0.1, 15), np.full(45, 0.05)]
    ev = Evidence(history(loss=np.linspace(500, 250, N), recon=np.linspace(490, 249, N), kl=kl),
                  model_config={"beta": 20.0, "lr": 1e-3}, family="vae")
    (finding,) = diagnose(ev)
    assert finding.code == "posterior_collapse" and finding.fix["model_set"] == {"beta": 1.0}


def test_a_healthy_vae_is_not_posterior_collapse():
    ev = Evidence(history(loss=np.linspace(500, 110, N), recon=np.linspace(490, 85, N), kl=np.linspace(5, 25, N)),
                  model_config={"beta": 1.0, "lr": 1e-3}, family="vae", final={"val_loss": 112.0})
    assert codes(ev) == ["healthy"]


def test_held_out_loss_far_above_training_loss_is_overfitting_and_the_fix_trains_less():
    ev = Evidence(history(loss=np.linspace(3.3, 0.1, N)), model_config={"lr": 5e-3, "dropout": 0.0},
                  train={"steps": 1500}, family="text", final={"val_loss": 5.7})
    (finding,) = diagnose(ev)
    assert finding.code == "overfitting"
    assert finding.fix["model_set"] == {"dropout": 0.2} and finding.fix["train_set"]["steps"] < 1500


def test_a_held_out_curve_that_turns_up_is_overfitting_since_its_lowest_point():
    hist = history(loss=np.linspace(3.3, 0.5, N))
    hist["val_loss"] = (np.array([250, 500, 750, 1000, 1250, 1500]), np.array([2.5, 2.0, 1.8, 2.1, 2.6, 3.0]))
    ev = Evidence(hist, model_config={"lr": 5e-3}, train={"steps": 1500}, family="text")
    (finding,) = diagnose(ev)
    assert (finding.code, finding.since_step, finding.fix["train_set"]["steps"]) == ("overfitting", 750, 750)


def test_a_flat_loss_is_stalled_and_the_fix_raises_the_learning_rate():
    ev = Evidence(history(loss=noisy(4.1, 0.01)), model_config={"lr": 1e-6}, family="text")
    (finding,) = diagnose(ev)
    assert finding.code == "stalled" and finding.since_step == 25
    assert finding.fix["model_set"]["lr"] == pytest.approx(1e-5)


def test_a_loss_that_swings_up_and_down_is_oscillation():
    t = np.arange(N)
    d_real = 0.55 + 0.3 * np.sign(np.sin(t / 1.5))  # a period of about 9 logged points
    ev = Evidence(history(loss_d=noisy(1.2), loss_g=noisy(1.0), d_real=d_real, d_fake=noisy(0.4)),
                  model_config=dict(GAN_CFG), family="gan")
    assert codes(ev) == ["oscillation"]


def test_film_strip_samples_that_become_alike_are_mode_collapse_but_an_untrained_generator_is_not():
    steps = np.arange(0, 1200, 100)
    collapsing = np.r_[0.2, 0.6, 0.8, 0.9, 0.7, 0.5, 0.3, 0.2, 0.15, 0.1, 0.1, 0.1]
    ev = healthy_gan()
    ev.variety = (steps, collapsing)
    (finding,) = diagnose(ev)
    assert finding.code == "mode_collapse" and finding.since_step == 600
    assert finding.fix["model_set"] == {"loss": "hinge"}
    ev.variety = (steps, np.full(12, 0.2))  # never varied yet: too early, not collapse
    assert codes(ev) == ["healthy"]


def test_points_on_the_data_but_on_few_of_its_modes_are_mode_collapse():
    ev = healthy_gan()
    ev.modes = (2, 8, 0.9)
    assert codes(ev) == ["mode_collapse"]
    ev.modes = (8, 8, 0.95)
    assert codes(ev) == ["healthy"]


def test_a_generator_still_finding_the_data_is_not_called_collapsed():
    ev = healthy_gan()
    ev.modes = (1, 8, 0.4)  # most points are still between the modes: early training
    assert codes(ev) == ["healthy"]


def test_modes_reached_counts_the_modes_that_get_a_fair_part_of_the_samples():
    import torch

    from aigc_core.data.points import ring8
    from aigc_core.learn.doctor import modes_reached

    data = ring8(count=800)
    assert modes_reached(data.points, data.labels, data.points[:400]) == (8, 8, 1.0)
    two_modes = data.points[data.labels < 2][:100]
    assert modes_reached(data.points, data.labels, two_modes) == (2, 8, 1.0)
    between = torch.zeros(50, 2)  # the centre of the ring is far from every mode
    assert modes_reached(data.points, data.labels, torch.cat([two_modes, between]))[2] == pytest.approx(100 / 150)
    assert modes_reached(data.points, data.labels, torch.full((5, 2), float("nan"))) == (0, 8, 0.0)


def test_too_few_logged_steps_give_no_findings():
    assert diagnose(Evidence(history(loss=[4.0, 3.0]), model_config={"lr": 1e-3}, family="text")) == []


# ---- on the run store and the command line -------------------------------------------------------

def _stored_run(store: RunStore, **series) -> str:
    from tests.tiny_runs import tiny_images

    cfg = api.make_config("mlp_gan", tiny_images(), model_set={"lr_d": 2e-3, "d_steps": 5},
                          train_set={"steps": 1500})
    run = store.create(model="mlp_gan", family="gan", dataset=cfg["dataset"], data_kind="image", config=cfg)
    for i in range(len(next(iter(series.values())))):
        store.log_metrics(run.id, 25 * (i + 1), {k: float(v[i]) for k, v in series.items()})
    store.set_status(run.id, "completed")
    return run.id


def test_doctor_command_prints_the_findings_as_json(fresh_home, capsys):
    store = RunStore()
    run_id = _stored_run(store, loss_d=noisy(0.05), loss_g=np.linspace(3, 9, N), d_real=np.full(N, 0.99),
                         d_fake=np.full(N, 0.01))
    assert cli.main(["doctor", "--run", run_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (finding,) = report["findings"]
    assert finding["code"] == "d_wins" and set(finding) >= {"code", "since_step", "why", "fix"}
    assert finding["fix"]["model_set"]["d_steps"] == 1


def test_doctor_command_on_an_unknown_run_is_one_error_line(fresh_home, capsys):
    assert cli.main(["doctor", "--run", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: no run called 'nope'")


def test_applying_a_fix_starts_a_child_run_linked_to_its_parent(fresh_home):
    store = RunStore()
    run_id = _stored_run(store, loss_d=noisy(0.05), loss_g=np.linspace(3, 9, N), d_real=np.full(N, 0.99),
                         d_fake=np.full(N, 0.01))
    child = apply_fix(run_id, "d_wins", store=store, start=False)
    assert child.config["parent_run"] == run_id and child.config["doctor_fix"] == "d_wins"
    assert child.config["model_config"]["d_steps"] == 1
    assert child.config["model_config"]["lr_d"] < 2e-3
    assert child.status == "queued"
    with pytest.raises(Exception, match="no 'stalled'"):
        apply_fix(run_id, "stalled", store=store, start=False)


# ---- real runs ----------------------------------------------------------------------------------------

def _train(model, dataset, steps, preset=None, **model_set):
    cfg = api.make_config(model, dataset, preset=preset, model_set=model_set,
                          train_set={"steps": steps, "max_seconds": 0, "log_every": 10, "sample_every": 50,
                                     "checkpoint_every": 10_000})
    return api.run_in_foreground(cfg, echo=lambda _m: None)


def test_a_vae_with_beta_far_too_large_is_diagnosed_as_posterior_collapse():
    run = _train("vae", "glyphs", 90, beta=20.0, hidden=128)  # under 100 steps: no feature-net scores at the end
    assert [f["code"] for f in diagnose_run(run.id)["findings"]] == ["posterior_collapse"]


def _tiny_text() -> str:
    from aigc_core.data.base import TextData
    from aigc_core.data.catalog import list_datasets, load_dataset, save_uploaded

    if "tiny_text" not in {d.name for d in list_datasets()}:
        save_uploaded(TextData("tiny_text", load_dataset("pydoc").text[:4000], mode="stream"))
    return "tiny_text"


# (label, how to make it, the code it must be diagnosed with)
BROKEN = [
    ("discriminator far too fast", lambda: _train("mlp_gan", "glyphs", 300, lr_d=2e-3, lr_g=1e-5, d_steps=5,
                                                  width=64), "d_wins"),
    ("beta far too large", lambda: _train("vae", "glyphs", 400, beta=20.0), "posterior_collapse"),
    ("tiny text trained too long", lambda: _train("char_gpt", _tiny_text(), 1200, preset="Quick"), "overfitting"),
    ("generator far too fast on 8 modes", lambda: _train("toy_gan", "ring8", 1000, loss="nonsaturating", lr_g=5e-3),
     "mode_collapse"),
    ("learning rate far too large", lambda: _train("vae", "glyphs", 300, lr=0.1), "diverged"),
    ("learning rate far too small", lambda: _train("bigram", "unicode_names", 300, preset="Quick", lr=1e-5),
     "stalled"),
    # a Wasserstein critic clipped far too loosely (0.5 instead of 0.01) and stepped too far: its estimate swings
    # from side to side with a growing amplitude (measured: 0.2, -0.2, 1.1, -1.1, ..., 7.9, -28.6, 7.8, -73)
    ("critic clipped too loosely and stepped too far", lambda: _train("toy_gan", "moons", 2000, loss="wgan",
                                                                        lr_g=5e-3, lr_d=5e-3, clip_value=0.5,
                                                                        d_steps=1), "oscillation"),
]
QUICK_DATA = {"image": "glyphs", "points": "ring8", "text": "unicode_names", "table": "iris"}


def _quick_models() -> list[str]:
    from aigc_core.registry import all_models

    return [s.name for s in all_models() if "Quick" in s.presets and s.data_kind in QUICK_DATA
            and s.trainer_cls.__module__.startswith("aigc_core.")]


@pytest.mark.slow
@pytest.mark.parametrize("label, make, expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_run_made_to_fail_is_diagnosed(label, make, expected):
    found = [f["code"] for f in diagnose_run(make().id)["findings"]]
    print(f"\nDOCTOR {label:40s} expected {expected:20s} found {', '.join(found)}")
    assert expected in found


#: Quick presets whose full run is not healthy, and what the doctor must say of them: none now. (mlp_gan on
#: glyphs ended its 3,000 steps with D(x) 0.99, D(G(z)) 0.007 and FID 418 until its generator was
#: batch-normalised, g_norm; it now ends at D(x) 0.71, D(G(z)) 0.31, FID 23.)
UNHEALTHY_QUICK: dict[str, set[str]] = {}


@pytest.mark.slow
@pytest.mark.parametrize("model", _quick_models())
def test_a_quick_preset_run_raises_no_alarm(model):
    # the preset's steps without its time limit: a busy test machine would otherwise cut the run short
    # (a toy GAN stopped at step 800 of 3000 really does sit on one mode, and the doctor says so)
    run = api.run_in_foreground(api.make_config(model, QUICK_DATA[api.get_model(model).data_kind], preset="Quick",
                                                train_set={"max_seconds": 0}), echo=lambda _m: None)
    found = [f["code"] for f in diagnose_run(run.id)["findings"]]
    print(f"\nDOCTOR Quick {model:34s} expected {'healthy':20s} found {', '.join(found) or '(too early to judge)'}")
    if model in UNHEALTHY_QUICK:  # the doctor must name what is really wrong with it, and nothing else
        assert UNHEALTHY_QUICK[model] & set(found) and not set(found) - UNHEALTHY_QUICK[model] - {"healthy"}, found
        return
    assert not set(found) - {"healthy"}  # [] (too few steps logged to judge) is silent too
