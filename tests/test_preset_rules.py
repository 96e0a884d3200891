"""The presets' fitting rules (issue 15, item 1): a preset's budget, size,
dropout and weight decay follow the data set's size and the device, by a
written rule whose one-line reason the run records and the Train page shows."""

from __future__ import annotations

import math

import pytest

from aigc_core.models.text import fit as text_fit
from aigc_core.registry import get_model
from aigc_core.runs import api
from tests.tiny_runs import open_page

SIZES = [5_000, 60_000, 300_000, 900_000, 5_000_000]  # characters, small to large


def _text(count: int, mode: str = "stream") -> dict:
    return dict(kind="text", count=count, vocab=90, mode=mode,
                lines=count // 30 if mode == "lines" else None)


@pytest.mark.parametrize("model", ["char_gpt", "char_lstm"])
@pytest.mark.parametrize("preset", ["Quick", "Standard"])
def test_a_larger_corpus_gets_less_dropout_no_fewer_layers_and_no_fewer_steps(model, preset):
    spec = get_model(model)
    fitted = [spec.preset(preset, _text(n), "cpu")[0] for n in SIZES]
    dropout = [f["model"]["dropout"] for f in fitted]
    decay = [f["model"].get("weight_decay", 0.0) for f in fitted]
    layers = [f["model"]["n_layer"] for f in fitted]
    steps = [f["train"]["steps"] for f in fitted]
    assert dropout == sorted(dropout, reverse=True) and dropout[0] > dropout[-1] == 0.0
    assert decay == sorted(decay, reverse=True)
    written = spec.presets[preset]["model"]["n_layer"]
    assert layers == sorted(layers) and layers[0] == max(1, written - 1) and layers[-1] == written
    assert steps == sorted(steps) and steps[0] < steps[-1] == spec.presets[preset]["train"]["steps"]
    for f in fitted:  # the cosine ends with the run, and the film strip and checkpoints come within it
        assert f["model"]["lr_decay_steps"] == f["train"]["steps"] >= text_fit.MIN_STEPS
        assert f["train"]["sample_every"] <= f["train"]["steps"]
        assert f["train"]["checkpoint_every"] <= f["train"]["steps"]


def test_the_budget_is_at_most_the_tuned_number_of_passes_over_the_text():
    spec = get_model("char_gpt")
    for n in SIZES:
        fitted, why = spec.preset("Standard", _text(n), "cpu")
        m = fitted["model"]
        steps, tokens, chars = fitted["train"]["steps"], m["batch_size"] * m["block_size"], text_fit.training_chars(_text(n))
        passes = steps * tokens / chars
        assert steps <= math.ceil(text_fit.MAX_PASSES * chars / tokens) or steps == text_fit.MIN_STEPS
        assert f"~{passes:.1f} passes" in why and f"{m['n_layer']} layers" in why and f"dropout {m['dropout']:g}" in why


def test_the_why_line_names_the_corpus_size_as_the_issue_asks():
    _, why = get_model("char_gpt").preset("Standard", _text(303_000), "cpu")
    assert why.startswith("for 303 kB of text: 3 layers x 96, dropout 0.1,") and "passes" in why


def test_line_corpora_count_a_step_by_its_items_not_the_context_length():
    spec = get_model("char_gpt")
    stream, _ = spec.preset("Quick", _text(30_000), "cpu")
    lines, _ = spec.preset("Quick", _text(30_000, "lines"), "cpu")
    # items of ~30 characters fill half of a 64-character window: twice the steps for the same passes
    assert lines["train"]["steps"] > stream["train"]["steps"]


def test_the_bigram_has_nothing_to_memorise_and_keeps_its_written_presets():
    spec = get_model("bigram")
    for n in SIZES:
        fitted, why = spec.preset("Standard", _text(n), "cpu")
        assert fitted == spec.presets["Standard"] and why == ""


def test_a_gpu_gets_a_wider_model_only_for_a_large_corpus_and_within_the_rooms_limits(fresh_home):
    from aigc_core.room.limits import Limits
    from aigc_core.room.model_cost import estimate

    spec = get_model("char_gpt")
    written = spec.presets["Standard"]["model"]["n_embd"]
    assert spec.preset("Standard", _text(300_000), "cuda")[0]["model"]["n_embd"] == written
    fitted, why = spec.preset("Standard", _text(5_000_000), "cuda")
    assert fitted["model"]["n_embd"] == 2 * written and "on a GPU" in why
    # the largest model the rule makes, costed as the room would (the meta device: no memory used)
    dataset = _saved_text(3000)
    cost = estimate({"model": "char_gpt", "dataset": dataset, "model_config": fitted["model"]}, trace=False)[0]
    limits = Limits.from_env()
    assert not limits.max_params or cost.params <= limits.max_params
    assert not limits.max_checkpoint_mb or cost.checkpoint_bytes <= limits.max_checkpoint_mb * 2**20


def _saved_text(chars: int, name: str | None = None) -> str:
    from aigc_core.data.base import TextData
    from aigc_core.data.catalog import list_datasets, load_dataset, save_uploaded

    name = name or f"corpus_{chars}"
    if name not in {d.name for d in list_datasets()}:
        text = (load_dataset("pydoc").text * (1 + chars // 400_000))[:chars]
        save_uploaded(TextData(name, text, mode="stream"))
    return name


def test_a_run_records_how_its_preset_was_fitted_to_an_uploaded_corpus(fresh_home):
    dataset = _saved_text(5_000)
    config = api.make_config("char_gpt", dataset, preset="Standard")
    assert config["preset_fit"].startswith("for 5 kB of text: 2 layers x 96, dropout 0.2, weight decay 0.2")
    assert config["model_config"]["dropout"] == 0.2 and config["model_config"]["n_layer"] == 2
    assert config["train"]["steps"] == text_fit.MIN_STEPS
    # settings the user gives still win over the fitted ones
    mine = api.make_config("char_gpt", dataset, preset="Standard", model_set={"dropout": 0.0},
                           train_set={"steps": 50})
    assert mine["model_config"]["dropout"] == 0.0 and mine["train"]["steps"] == 50


def test_the_train_page_says_how_the_preset_fits_the_chosen_corpus(fresh_home):
    from tests.test_page_train import TRAIN, pick, texts

    dataset = _saved_text(5_000)
    at = pick(open_page(TRAIN), dataset, "char_gpt", "Standard")
    assert not at.exception
    assert "for 5 kB of text: 2 layers x 96, dropout 0.2" in texts(at)
    assert at.number_input(key="tr_char_gpt_Standard_m_n_layer").value == 2
