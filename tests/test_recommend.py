"""The recommended model for a data set: read from the measurements file, the best
headline number among the models that fit, with one line saying why."""

from __future__ import annotations

import json
import math

import pytest
import torch

from aigc_core import recommend as rc
from aigc_core.data.base import ImageData
from aigc_core.data.catalog import save_uploaded
from aigc_core.errors import UserError
from tests.test_cli import cli, last_json


def colour_set(name: str = "colour_photos", size: int = 28, channels: int = 3) -> str:
    gen = torch.Generator().manual_seed(0)
    save_uploaded(ImageData(name, torch.randint(0, 256, (32, channels, size, size), dtype=torch.uint8, generator=gen)))
    return name


def measurements(tmp_path, shapes: dict, device: str = "cpu"):
    path = tmp_path / "recommend.json"
    path.write_text(json.dumps({"devices": {device: shapes}}))
    return path


def entry(results: dict, metric: str = "fid", better: str = "lower") -> dict:
    return {"dataset": "photo_patches", "dataset_words": "600 colour photo patches (28 px)", "metric": metric,
            "metric_label": metric.upper(), "better": better, "results": {m: {metric: v} for m, v in results.items()}}


def test_the_recommendation_is_the_best_measured_model_with_the_quick_preset_and_a_one_line_why(fresh_home, tmp_path):
    path = measurements(tmp_path, {"image-colour-small": entry({"mlp_gan": 44.3, "dcgan": 9.1, "conv_vae": 12.0})})
    rec = rc.recommend(colour_set(), "cpu", measurements=path)
    assert (rec.model, rec.preset) == ("dcgan", "Quick")
    assert "dcgan made the best samples" in rec.why and "FID 9.1" in rec.why and "conv_vae 12" in rec.why
    assert "\n" not in rec.why and rec.shape == "image-colour-small"


def test_higher_is_better_metrics_rank_the_other_way(fresh_home, tmp_path):
    path = measurements(tmp_path, {"image-colour-small": entry({"dcgan": 0.2, "conv_vae": 0.7}, "precision",
                                                               "higher")})
    assert rc.recommend(colour_set(), "cpu", measurements=path).model == "conv_vae"


def test_a_measured_model_that_cannot_train_on_the_set_is_never_recommended(fresh_home, tmp_path):
    from aigc_core.data.catalog import dataset_info
    from aigc_core.registry import models_for

    tiny = colour_set("tiny_colour", size=8)  # the convolutional models need 28, 32 or 64 px
    fitting = [s.name for s in models_for("image", dataset_info(tiny).summary)]
    assert "dcgan" not in fitting
    path = measurements(tmp_path, {"image-colour-small": entry({"dcgan": 1.0, "vae": 30.0, "mlp_gan": 40.0})})
    rec = rc.recommend(tiny, "cpu", measurements=path)
    assert rec.model == "vae" and "the best samples of the 2 models measured" in rec.why
    assert "counting only those that can train on this set" in rec.why


def test_grey_and_colour_sets_read_their_own_measurements(fresh_home, tmp_path):
    path = measurements(tmp_path, {"image-colour-small": entry({"dcgan": 30.0, "conv_vae": 10.0}),
                                   "image-grey-small": entry({"dcgan": 5.0, "conv_vae": 10.0})})
    assert rc.recommend(colour_set("c"), "cpu", measurements=path).model == "conv_vae"
    assert rc.recommend(colour_set("g", channels=1), "cpu", measurements=path).model == "dcgan"


def test_without_a_measurement_for_the_size_the_closest_is_used_and_named(fresh_home, tmp_path):
    path = measurements(tmp_path, {"image-colour-small": entry({"dcgan": 30.0, "conv_vae": 10.0})})
    rec = rc.recommend(colour_set("big", size=64), "cpu", measurements=path)
    assert rec.model == "conv_vae" and "measured on colour images up to 32 px, the closest kept" in rec.why


def test_with_no_measurements_of_the_kind_the_first_fitting_model_with_a_quick_preset_is_named_as_such(fresh_home, tmp_path):
    from aigc_core.data.catalog import dataset_info
    from aigc_core.registry import models_for

    name = colour_set()
    rec = rc.recommend(name, "cpu", measurements=measurements(tmp_path, {}))
    first = next(s.name for s in models_for("image", dataset_info(name).summary) if "Quick" in s.presets)
    assert rec.model == first and "no Quick-budget measurements" in rec.why and rec.measured == {}


def test_an_unknown_data_set_is_a_user_error(fresh_home):
    with pytest.raises(UserError, match="no data set called"):
        rc.recommend("no_such_set")


def test_the_shape_of_a_data_set():
    assert rc.data_shape("image", {"size": 28, "channels": 3}) == "image-colour-small"
    assert rc.data_shape("image", {"size": 64, "channels": 1}) == "image-grey-large"
    assert rc.data_shape("text", {"mode": "lines"}) == "text-lines"
    assert rc.data_shape("table", {}) == "table"


def test_the_repository_measurements_cover_colour_and_grey_images_on_the_cpu():
    kept = rc.load_measurements()["devices"]["cpu"]
    for shape in ("image-colour-small", "image-grey-small"):
        results = kept[shape]["results"]
        assert len(results) >= 4 and kept[shape]["clock"] == "cpu" and kept[shape]["preset"] == "Quick"
        assert all(isinstance(r["fid"], float) and math.isfinite(r["fid"]) for r in results.values())
        assert kept[shape]["measured"]["load_before"]  # the machine's load is part of the record


# ---- the command line ------------------------------------------------------------------------

def test_recommend_json_gives_model_preset_and_why_from_the_repository_file(tmp_path):
    zipped = tmp_path / "holiday.zip"
    from aigc_core.benchmarks.photos import photo_patches_zip

    zipped.write_bytes(photo_patches_zip(n=40))
    imported = last_json(cli("import-data", str(zipped), "--json", home=tmp_path))
    assert (imported["size"], imported["channels"]) == (28, 3)  # colour kept without asking
    rec = last_json(cli("recommend", "--dataset", "holiday", "--device", "cpu", "--json", home=tmp_path))
    assert {"model", "preset", "why"} <= set(rec)
    kept = rc.load_measurements()["devices"]["cpu"]["image-colour-small"]
    best = min(kept["results"], key=lambda m: kept["results"][m]["fid"])
    assert (rec["model"], rec["preset"]) == (best, "Quick") and best in rec["why"]


def test_import_data_json_reports_the_guessed_label_column_and_why(tmp_path):
    rows = ["petal,sepal,colour,kind"] + [f"{i % 7}.{i % 3},{i % 5}.5,{['red', 'blue', 'green'][i % 3]},{'ab'[i % 2]}"
                                          for i in range(60)]
    path = tmp_path / "flowers.csv"
    path.write_text("\n".join(rows) + "\n")
    guessed = last_json(cli("import-data", str(path), "--json", home=tmp_path))
    assert guessed["label_column"] == "kind" and "last column" in guessed["label_reason"]
    asked = last_json(cli("import-data", str(path), "--name", "f2", "--label", "colour", "--json", home=tmp_path))
    assert asked["label_column"] == "colour"
    none = last_json(cli("import-data", str(path), "--name", "f3", "--no-label", "--json", home=tmp_path))
    assert none["label_column"] is None


@pytest.mark.slow
def test_photos_uploaded_and_trained_with_every_default_give_samples_far_closer_to_them_than_the_first_model(
        fresh_home):
    """The newcomer's path: a zip of colour photos imported with the defaults, the recommended model and
    preset as the Train page preselects them, Start. About two Quick runs and one feature net (~2 min)."""
    from aigc_core.benchmarks.photos import photo_patches_zip
    from aigc_core.data.uploads import import_and_save
    from aigc_core.runs.api import make_config, run_in_foreground

    assert import_and_save(photo_patches_zip(), "photos").data.channels == 3
    rec = rc.recommend("photos", "cpu")
    assert rec.model != "mlp_gan"
    fids = {}
    for model, preset in ((rec.model, rec.preset), ("mlp_gan", "Quick")):
        config = make_config(model, "photos", preset=preset, train_set={"clock": "cpu", "seed": 0})
        fids[model] = run_in_foreground(config, echo=lambda m: None).final_metrics["fid"]
    assert fids[rec.model] < 0.5 * fids["mlp_gan"], fids


def test_a_kind_of_data_with_one_model_gets_that_model_and_says_so(fresh_home, monkeypatch):
    from aigc_core import registry

    # the test plug-in adds a points model; the studio itself has one
    monkeypatch.setattr(registry, "models_for", lambda kind, summary=None: [registry.get_model("toy_gan")])
    rec = rc.recommend("ring8", "cpu")
    assert rec.model == "toy_gan" and rec.preset == "Quick" and "the only model" in rec.why
