"""The image models' preset rule (aigc_core.image_presets): a preset follows the data set's size,
its colour and the device, within the room's cost limits, and a run says how it was fitted."""

import pytest

from aigc_core import image_presets
from aigc_core.registry import get_model
from aigc_core.room.limits import Limits
from aigc_core.room.model_cost import check_cost
from aigc_core.runs import api

SMALL_COLOUR = dict(kind="image", count=600, size=32, channels=3, classes=0)
LARGE_GREY = dict(kind="image", count=24_000, size=28, channels=1, classes=10)
RULED = ("dcgan", "mlp_gan", "conv_vae", "vae", "ae")


def test_a_gan_on_a_small_set_gets_diffaugment_and_on_a_large_one_none():
    small, why = get_model("dcgan").preset("Quick", SMALL_COLOUR, "cpu")
    assert small["model"]["augment"] == "translation" and "600 colour 32 px images on cpu" in why
    tiny, _ = get_model("dcgan").preset("Quick", dict(SMALL_COLOUR, count=300), "cpu")
    assert tiny["model"]["augment"] == "translation,cutout"
    large, _ = get_model("dcgan").preset("Quick", LARGE_GREY, "cpu")
    assert large["model"].get("augment", "none") == "none"


def test_an_autoencoder_on_a_small_set_trains_on_random_crops():
    small, why = get_model("conv_vae").preset("Quick", SMALL_COLOUR, "cpu")
    assert small["model"]["augment"] == "crop" and "augment crop (a small set)" in why
    assert get_model("vae").preset("Quick", LARGE_GREY, "cpu")[0]["model"].get("augment", "none") == "none"


def test_a_user_chosen_regulariser_in_a_preset_is_kept(monkeypatch):
    spec = get_model("dcgan")
    monkeypatch.setitem(spec.presets, "Quick", {"model": {"augment": "translation,cutout,color"},
                                                "train": {"steps": 10, "max_seconds": 30}})
    assert spec.preset("Quick", SMALL_COLOUR, "cpu")[0]["model"]["augment"] == "translation,cutout,color"


def test_quick_keeps_its_half_minute_and_standard_time_grows_with_the_set():
    for model in RULED:
        assert get_model(model).preset("Quick", LARGE_GREY, "cpu")[0]["train"]["max_seconds"] == 30
    seconds = [get_model("dcgan").preset("Standard", dict(LARGE_GREY, count=n), "cpu")[0]["train"]["max_seconds"]
               for n in (100, 2_500, 10_000, 24_000, 1_000_000)]
    assert seconds == [120, 150, 300, 460, 600]  # 300 s x sqrt(n / 10,000) within [120, 600]


def test_standard_steps_follow_its_seconds_so_the_clock_ends_the_run():
    written = get_model("dcgan").presets["Standard"]["train"]
    fitted, _ = get_model("dcgan").preset("Standard", dict(LARGE_GREY, count=40_000), "cpu")
    assert fitted["train"]["steps"] / fitted["train"]["max_seconds"] == pytest.approx(
        written["steps"] / written["max_seconds"], rel=0.01)


def test_dcgan_on_a_labelled_set_trains_one_class_at_a_time_unless_the_preset_says_otherwise(monkeypatch):
    spec = get_model("dcgan")
    fitted, why = spec.preset("Quick", LARGE_GREY, "cpu")
    assert fitted["model"]["conditional"] is True and "one class at a time (10 classes)" in why
    assert "conditional" not in spec.preset("Quick", SMALL_COLOUR, "cpu")[0]["model"]  # no labels
    assert "conditional" not in get_model("conv_vae").preset("Quick", LARGE_GREY, "cpu")[0]["model"]  # unmeasured
    monkeypatch.setitem(spec.presets, "Quick", {"model": {"conditional": False}, "train": {"max_seconds": 30}})
    assert spec.preset("Quick", LARGE_GREY, "cpu")[0]["model"]["conditional"] is False


@pytest.mark.parametrize("bf16_cpu", [False, True], ids=["fp32 cpu", "bf16 cpu"])
def test_dcgan_trains_in_bf16_only_on_a_cpu_that_multiplies_in_bf16_and_other_models_keep_the_default(
        bf16_cpu, monkeypatch):
    monkeypatch.setattr(image_presets, "cpu_multiplies_in_bf16", lambda: bf16_cpu)
    for name in ("Quick", "Standard"):
        fitted, why = get_model("dcgan").preset(name, LARGE_GREY, "cpu")
        assert (fitted["train"].get("precision") == "bf16") is bf16_cpu
        assert ("bf16 (this CPU multiplies in bf16)" in why) is bf16_cpu
    assert "precision" not in get_model("dcgan").preset("Quick", LARGE_GREY, "cuda")[0]["train"]
    for model in RULED[1:]:
        for device in ("cpu", "cuda"):
            for summary in (SMALL_COLOUR, LARGE_GREY):
                assert "precision" not in get_model(model).preset("Standard", summary, device)[0]["train"]


def test_on_a_gpu_standard_doubles_widths_and_batch_within_their_maxima():
    spec = get_model("dcgan")
    fitted, why = spec.preset("Standard", SMALL_COLOUR, "cuda")
    written = spec.presets["Standard"]["model"]
    assert fitted["model"]["ngf"] == 2 * written["ngf"] and fitted["model"]["batch_size"] == 2 * written["batch_size"]
    assert fitted["train"]["steps"] > spec.presets["Standard"]["train"]["steps"]  # the clock decides on a GPU
    assert "widths and batch x2 (a GPU)" in why
    quick, _ = spec.preset("Quick", SMALL_COLOUR, "cuda")
    assert quick["model"]["ngf"] == spec.presets["Quick"]["model"]["ngf"]  # Quick stays small


@pytest.mark.parametrize("model", RULED)
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_fitted_image_preset_is_within_the_rooms_cost_limits(model, device, fresh_home):
    # the largest summary a built-in colour set has, and the GPU's doubled widths: still under the default limits
    spec = get_model(model)
    summary = dict(kind="image", count=12_000, size=32, channels=3, classes=3)
    for name in spec.presets:
        fitted, _ = spec.preset(name, summary, device)
        config = {"model": model, "dataset": "shapes", "model_config": fitted.get("model", {}),
                  "train": fitted.get("train", {})}
        assert check_cost(config, Limits.from_env()) is not None  # raises UserError when over a limit


def test_a_run_config_records_how_its_image_preset_was_fitted(fresh_home):
    config = api.make_config("conv_vae", "shapes", preset="Standard")
    assert config["preset_fit"].startswith("for 12,000 colour 32 px images on ")
    assert "330 s" in config["preset_fit"] and config["train"]["max_seconds"] == 330


def test_dcgan_standard_samples_from_the_generators_moving_average_and_quick_from_the_live_one():
    # Quick's 30 s runs are judged on how soon samples look right; Standard's long
    # runs on where they end, which the average steadies
    for data in (LARGE_GREY, dict(LARGE_GREY, count=600)):
        standard, _ = get_model("dcgan").preset("Standard", dict(data), "cpu")
        quick, _ = get_model("dcgan").preset("Quick", dict(data), "cpu")
        assert standard["model"]["ema_decay"] == 0.999
        assert quick["model"].get("ema_decay", 0.0) == 0.0
