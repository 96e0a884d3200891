"""One contract every registered model keeps, checked for each of them
(including the test plug-in's): adding a model adds no line here.

For each model, on a tiny data set of its kind and its spec's ``tiny``
settings: a run of three steps through the real training loop (film strip,
checkpoint, its evaluate() and the end-of-run quality numbers), every
number it logs explained on its spec, samples
with every declared knob at a non-default value, a checkpoint round trip that
gives the same samples for the same seed, and the Train and Gallery pages
(with a tab per declared capability) rendering the finished run.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch

from aigc_core.registry import CAPABILITIES, all_models, build_trainer
from aigc_core.runs import api
from aigc_core.runs.checkpoint import latest_checkpoint, load_state, state_to_bytes
from aigc_core.sample import load_for_sampling
from tests.tiny_runs import QUIET, open_page, tiny_images, tiny_lines, tiny_table

#: a tiny data set of each kind (a new kind of data adds one line here, a new model none); the images
#: are labelled, so a model whose tiny settings train on classes can
TINY_DATA = {"image": lambda: tiny_images("tiny_img_classes", classes=3), "text": tiny_lines, "table": tiny_table, "points": lambda: "tiny_points"}
#: Gallery tab of each capability
TABS = {"interpolate": "Walk between two seeds", "reconstruct": "Reconstructions", "write": "Write",
        "attention": "Attention", "denoise": "Denoising"}
SPECS = {spec.name: spec for spec in all_models()}


@pytest.fixture(scope="module", params=list(SPECS))
def contract(request):
    """(spec, finished run) for one model: three steps through the training loop."""
    spec = SPECS[request.param]
    dataset = TINY_DATA[spec.data_kind]()
    config = api.make_config(spec.name, dataset, model_set=spec.tiny.get("model", {}),
                             train_set={"steps": 3, "log_every": 1, "sample_every": 2, "checkpoint_every": 3,
                                        "device": "cpu", "precision": "fp32"})
    run = api.run_in_foreground(config, **QUIET)
    return spec, run


def non_default_knobs(spec, trainer) -> dict:
    """Every declared knob at a value other than its default, inside its range."""
    values = {}
    by_value = trainer.condition_choices() if spec.can("condition") else {}
    for field in spec.knob_fields():
        name, default, lo, hi = field["name"], field["default"], field.get("min"), field.get("max")
        if field.get("choices"):
            values[name] = next(c for c in field["choices"] if c != default)
        elif name != "condition" and by_value.get(name):  # a class the run was trained on
            values[name] = by_value[name][-1]
        elif isinstance(default, bool):
            values[name] = not default
        elif isinstance(default, int):
            values[name] = default + 1 if hi is None or default + 1 <= hi else default - 1
        elif isinstance(default, float):
            target = hi if hi is not None and hi != default else lo
            values[name] = default + 0.5 * (target - default) if target is not None else default * 0.5 + 0.1
        elif name == "condition" and spec.can("condition"):
            column, choices = next(iter(trainer.condition_choices().items()))
            values[name] = f"{column}={choices[0]}"
        else:  # a prompt: the start of what the model itself writes is always in its alphabet
            values[name] = str(trainer.sample(1, 0)[0])[:2]
    return values


def same_samples(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, pd.DataFrame):
        return a.equals(b)
    return a == b


def test_each_model_trains_three_steps_and_explains_every_number_it_logs(contract):
    spec, run = contract
    assert run.status == "completed", run.message
    assert run.step == 3
    assert spec.capabilities <= CAPABILITIES and spec.charts and spec.film_caption and spec.explanation({})
    logged = set(run.final_metrics) - {"samples_per_s", "step_time_ms"}
    from aigc_core.registry import metric_info

    info = metric_info(spec.name)
    unexplained = sorted(k for k in logged if k not in info)
    assert not unexplained, f"{spec.name} logs numbers its spec does not explain: {unexplained}"
    for chart in spec.charts:
        assert all(k in spec.metrics or k in info for k in chart.keys), chart
    frames = sorted((run.folder / "samples").glob("step_*"))
    assert len(frames) >= 2  # the film strip: step 0 and later
    # the loop ended with the trainer's evaluate() and the end-of-run quality numbers
    assert all(math.isfinite(v) for v in run.final_metrics.values()), run.final_metrics


def test_each_model_samples_with_every_declared_knob(contract):
    spec, run = contract
    trainer, _, _ = load_for_sampling(run.id)
    knobs = non_default_knobs(spec, trainer)
    assert set(knobs) == {f.name for f in dataclasses.fields(spec.knobs)}
    checked = spec.parse_knobs({k: str(v) for k, v in knobs.items()})  # as `sample --set k=v` gives them
    samples = trainer.sample(3, 7, **checked)
    count = len(samples) if not isinstance(samples, torch.Tensor) else samples.shape[0]
    assert count == 3 or (spec.data_kind == "text" and count == 3)
    if isinstance(samples, torch.Tensor):
        assert torch.isfinite(samples).all()


def test_each_model_survives_a_checkpoint_round_trip_with_the_same_samples(contract, tmp_path):
    spec, run = contract
    trainer, _, _ = load_for_sampling(run.id)
    path = tmp_path / "state.safetensors"
    path.write_bytes(state_to_bytes(trainer.state()))
    _, _, fresh = build_trainer(run.config, device=torch.device("cpu"))
    fresh.load_state(load_state(path)[0])
    fresh.train_mode(False)
    assert same_samples(trainer.sample(2, 11), fresh.sample(2, 11))
    assert latest_checkpoint(run.folder / "checkpoints")[0] == 3


def test_the_train_and_gallery_pages_render_each_model_and_each_capability(contract):
    spec, run = contract
    train = open_page("pages/train.py", run.id)
    assert not train.exception and not train.error, (train.exception, [e.value for e in train.error])
    gallery = open_page("pages/gallery.py", run.id)
    assert not gallery.exception and not gallery.error, (gallery.exception, [e.value for e in gallery.error])
    tabs = [t.label for t in gallery.tabs]
    assert [TABS[c] for c in TABS if c in spec.capabilities] == [t for t in tabs if t in TABS.values()]
    if spec.can("condition"):  # a picker beside the sampling knobs, not a tab
        trainer, _, _ = load_for_sampling(run.id)
        by_value = [k for k in trainer.condition_choices() if k in {f["name"] for f in spec.knob_fields()}]
        picker = gallery.selectbox(key=f"g_{by_value[0]}" if by_value else "tb_col")
        picker.set_value(picker.options[1]).run()
        assert not gallery.exception and not gallery.error, [e.value for e in gallery.error]
    for capability in sorted(spec.capabilities - {"condition"}):
        gallery.session_state["g_tab"] = TABS[capability]
        gallery.run()
        assert not gallery.exception and not gallery.error, (capability, gallery.exception,
                                                              [e.value for e in gallery.error])


def test_a_models_preset_rule_fits_the_preset_to_the_data_set_and_the_run_says_how(fresh_home, monkeypatch):
    spec = SPECS["bigram"]
    seen = {}

    def rule(name, preset, summary, device_type):
        seen.update(name=name, count=summary["count"], device=device_type)
        preset["train"]["steps"] = 7
        return preset, f"for {summary['count']:,} characters: 7 steps"

    monkeypatch.setattr(spec, "fit_preset", rule)
    dataset = tiny_lines()
    config = api.make_config("bigram", dataset, preset="Quick")
    assert seen["name"] == "Quick" and seen["device"] in {"cpu", "cuda", "mps"} and seen["count"] > 0
    assert config["train"]["steps"] == 7 and config["preset_fit"].endswith("7 steps")
    assert spec.presets["Quick"]["train"]["steps"] != 7  # the written preset is not changed by fitting it
    assert "preset_fit" not in api.make_config("bigram", dataset, preset=None, train_set={"steps": 5})
