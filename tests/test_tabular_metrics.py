"""Tabular reports: fidelity, usefulness (TSTR, augmentation), privacy, HTML."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aigc_core.data.catalog import load_dataset
from aigc_core.metrics import tabular as mt


@pytest.fixture(scope="module")
def iris():
    data = load_dataset("iris")
    frame = data.frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return frame.iloc[:100].reset_index(drop=True), frame.iloc[100:].reset_index(drop=True), data.column_types


# ---- fidelity ------------------------------------------------------------------------------

def test_column_shape_is_one_minus_ks_for_numbers_and_one_minus_tv_for_categories():
    a = pd.Series(np.arange(100.0))
    assert mt.column_shape_score(a, a.copy(), "numeric") == 1.0
    assert mt.column_shape_score(a, a + 1000, "numeric") == 0.0
    assert mt.column_shape_score(a, a + 50, "numeric") == pytest.approx(0.5)
    real, synth = pd.Series(["x"] * 6 + ["y"] * 4), pd.Series(["x"] * 3 + ["y"] * 5 + ["z"] * 2)
    # TV = (|0.6-0.3| + |0.4-0.5| + |0-0.2|) / 2 = 0.3
    assert mt.column_shape_score(real, synth, "categorical") == pytest.approx(0.7)


def test_pair_trends_compare_correlations_and_joint_shares():
    x = np.arange(50.0)
    real = pd.DataFrame({"a": x, "b": 2 * x, "c": ["p", "q"] * 25})
    flipped = pd.DataFrame({"a": x, "b": -2 * x, "c": ["p", "q"] * 25})
    types = {"a": "numeric", "b": "numeric", "c": "categorical"}
    assert mt.pair_trend_score(real, real, "a", "b", types) == (1.0, "correlation")
    assert mt.pair_trend_score(real, flipped, "a", "b", types) == (pytest.approx(0.0), "correlation")
    score, metric = mt.pair_trend_score(real, real.iloc[::-1].reset_index(drop=True), "a", "c", types)
    assert metric == "contingency" and score == pytest.approx(1.0)


def test_a_report_of_real_rows_against_fresh_real_rows_scores_near_the_top(iris):
    train, test, types = iris
    report = mt.tabular_report(train, test, test, types, "species")  # "synthetic" = real rows it never saw
    assert report["fidelity"] > 0.85 and report["column_shapes"] > 0.8 and report["pair_trends"] > 0.9
    same = mt.tabular_report(train, test, train.copy(), types, "species")
    assert same["fidelity"] == pytest.approx(1.0) and same["column_shapes"] == pytest.approx(1.0)
    assert same["exact_copy_rate"] == 1.0 and same["dcr_median"] == 0.0


def test_shuffling_each_column_on_its_own_keeps_shapes_but_breaks_pairs(iris):
    train, _, types = iris
    rng = np.random.default_rng(0)
    shuffled = train.apply(lambda col: col.iloc[rng.permutation(len(col))].to_numpy())
    fid = mt.fidelity(train, shuffled, types)
    assert fid["column_shapes"] == pytest.approx(1.0)
    assert fid["pair_trends"] < 0.8
    assert len(fid["pairs"]) == 10 and set(fid["columns"]) == set(types)


# ---- usefulness ----------------------------------------------------------------------------

def test_tstr_on_a_copy_of_the_real_rows_equals_train_on_real(iris):
    train, test, types = iris
    use = mt.usefulness(train, test, train.copy(), "species", types)
    assert set(use["classifiers"]) == {"logistic_regression", "random_forest"}
    for scores in use["classifiers"].values():
        assert scores["tstr_accuracy"] == scores["trtr_accuracy"] and scores["accuracy_ratio"] == 1.0
        assert scores["tstr_f1"] == scores["trtr_f1"]
    assert use["tstr_accuracy_ratio"] == 1.0 and use["trtr_accuracy"] > 0.9


def test_synthetic_rows_with_random_labels_teach_little(iris):
    train, test, types = iris
    noise = train.copy()
    noise["species"] = np.random.default_rng(1).permutation(noise["species"].to_numpy())
    use = mt.usefulness(train, test, noise, "species", types)
    assert use["tstr_accuracy_ratio"] < 0.7


def test_a_generator_that_makes_one_class_only_gets_the_majority_accuracy(iris):
    train, test, types = iris
    one_class = train[train["species"] == "setosa"]
    use = mt.usefulness(train, test, one_class, "species", types)
    share = (test["species"] == "setosa").mean()
    assert use["classifiers"]["random_forest"]["tstr_accuracy"] == pytest.approx(share)


def test_augmentation_compares_a_small_real_set_with_and_without_synthetic_rows(iris):
    train, test, types = iris
    use = mt.usefulness(train, test, train.copy(), "species", types, small_share=0.1, small_min=12)
    assert use["small_rows"] == 12
    assert use["aug_uplift"] == pytest.approx(use["aug_accuracy"] - use["aug_small_accuracy"])
    assert use["aug_accuracy"] >= use["aug_small_accuracy"]  # the rest of the real rows can only help here


# ---- privacy -------------------------------------------------------------------------------

def test_privacy_measures_distance_to_the_closest_real_row_and_exact_copies(iris):
    train, test, types = iris
    far = train.copy()
    far["petal_length"] = far["petal_length"] + 10 * train["petal_length"].std()
    priv = mt.privacy(train, far, types, holdout=test)
    assert priv["exact_copy_rate"] == 0.0 and priv["dcr_median"] > 5
    assert 0 < priv["holdout_dcr_median"] < 1
    half = pd.concat([train.iloc[:50], far.iloc[50:]], ignore_index=True)
    assert mt.privacy(train, half, types)["exact_copy_rate"] == pytest.approx(0.5)


# ---- the combined report and its HTML --------------------------------------------------------

def test_report_scores_are_the_flat_numbers_only(iris):
    train, test, types = iris
    report = mt.tabular_report(train, test, test, types, "species")
    scores = mt.report_scores(report)
    assert "details" not in scores and all(isinstance(v, float) for v in scores.values())
    for key in ("fidelity", "tstr_accuracy_ratio", "tstr_accuracy_ratio_lr", "tstr_accuracy_ratio_rf", "aug_uplift",
                "dcr_median", "holdout_dcr_median", "exact_copy_rate"):
        assert key in scores
    no_label = mt.report_scores(mt.tabular_report(train, test, test, types, None))
    assert "fidelity" in no_label and "tstr_accuracy_ratio" not in no_label


def test_the_html_report_is_one_self_contained_page(iris):
    train, test, types = iris
    page = mt.report_html(mt.tabular_report(train, test, test, types, "species"), title="Iris <check>")
    assert page.startswith("<!doctype html>") and "Iris &lt;check&gt;" in page
    assert page.count("src='data:image/png;base64,") == len(types)
    assert "http://" not in page and "https://" not in page
    for section in ("Fidelity: columns", "Usefulness: predicting species", "Privacy", "Correlations"):
        assert section in page


def test_the_histogram_strip_shows_one_panel_per_column(iris):
    train, test, types = iris
    image = mt.histogram_strip(train, test, types, ["petal_length", "species"], width=200, height=120)
    assert image.size == (400, 138)
