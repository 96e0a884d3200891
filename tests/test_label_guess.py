"""Guessing a table's label column: a column named like what is predicted,
else the last column with few values, else none; what the import does with it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aigc_core.data import table as tb
from aigc_core.errors import UserError


def csv_of(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def numbers(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n).round(3)


@pytest.mark.parametrize("name", ["Outcome", "target", "class_label", "y", "Class", "diagnosisLabel"])
def test_a_column_named_like_a_label_is_guessed_even_when_it_is_not_last(name):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": numbers(100), name: rng.integers(0, 3, 100), "b": numbers(100, 2),
                          "colour": rng.choice(["red", "blue"], 100)})
    report = tb.import_csv(csv_of(frame), "named", guess_label=True)
    assert report.data.label_column == name and report.label_guess.column == name
    assert "its name" in report.label_guess.reason and "3 classes" in report.label_guess.reason
    assert report.column_types[name] == "categorical"  # whole numbers 0, 1, 2 became classes


def test_without_a_label_name_the_last_column_with_few_values_is_guessed():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"kind": rng.choice(list("abcd"), 200), "x": numbers(200), "grade": rng.integers(1, 4, 200),
                          "z": numbers(200, 4)})
    guess = tb.import_csv(csv_of(frame), "last", guess_label=True).label_guess
    assert guess.column == "grade"
    assert "last column with few different values" in guess.reason and "3 classes in 200 rows" in guess.reason


def test_a_column_named_y_that_holds_measurements_is_passed_over():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"y": numbers(120), "group": rng.choice(["a", "b"], 120), "x": numbers(120, 6)})
    guess = tb.guess_label_column(frame, tb.infer_types(frame))
    assert guess.column == "group" and "'y' is named like a label but holds too many different numbers" in guess.reason


def test_a_table_with_no_class_like_column_gets_no_label_and_says_why():
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x": numbers(200), "city": [f"city{i}" for i in rng.integers(0, 30, 200)],
                          "z": numbers(200, 8)})
    report = tb.import_csv(csv_of(frame), "nolabel", guess_label=True)
    assert report.data.label_column is None and report.label_guess.column is None
    assert "no column is named like a label" in report.label_guess.reason


def test_a_column_with_as_many_values_as_rows_allow_is_not_a_class():
    # 40 rows, 10 values: 4 rows a class on average, fewer than ROWS_PER_CLASS
    frame = pd.DataFrame({"x": numbers(40), "code": [f"c{i % 10}" for i in range(40)]})
    assert tb.guess_label_column(frame, tb.infer_types(frame)).column is None


def test_the_guess_is_reported_but_not_used_unless_asked_and_an_explicit_label_wins():
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"x": numbers(100), "shape": rng.choice(["o", "x"], 100), "target": rng.integers(0, 2, 100)})
    plain = tb.import_csv(csv_of(frame), "plain")
    assert plain.data.label_column is None and plain.label_guess.column == "target"
    assert plain.to_dict()["label_guess"] == "target"
    chosen = tb.import_csv(csv_of(frame), "chosen", label_column="shape", guess_label=True)
    assert chosen.data.label_column == "shape"


def test_an_ignored_column_is_never_guessed():
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"x": numbers(100), "label": rng.integers(0, 2, 100), "kind": rng.choice(["a", "b"], 100)})
    report = tb.import_csv(csv_of(frame), "ign", column_types={"label": "ignore"}, guess_label=True)
    assert report.data.label_column == "kind"


def test_a_table_without_a_label_still_trains_conditioned_on_a_category():
    from aigc_core.config import from_dict
    from aigc_core.registry import get_model

    rng = np.random.default_rng(13)
    frame = pd.DataFrame({"x": numbers(200), "city": [f"city{i}" for i in rng.integers(0, 30, 200)],
                          "z": numbers(200, 14)})
    data = tb.import_csv(csv_of(frame), "cond", guess_label=True).data
    assert data.label_column is None
    spec = get_model("tab_vae")
    trainer = spec.trainer_cls(from_dict(spec.config_cls, {"hidden": 16, "latent_dim": 4, "batch_size": 20}), data,
                               "cpu", 0)
    assert trainer.cond_column == "city"
    with pytest.raises(UserError, match="numeric"):
        spec.trainer_cls(from_dict(spec.config_cls, {"condition_column": "x"}), data, "cpu", 0)


def test_iris_uploaded_without_choosing_a_label_imports_exactly_as_with_species_chosen():
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.data.assign(species=np.asarray(bunch.target_names)[bunch.target])
    guessed = tb.import_csv(csv_of(frame), "iris_guessed", guess_label=True)
    chosen = tb.import_csv(csv_of(frame), "iris_chosen", label_column="species")
    assert guessed.data.label_column == "species" and "3 classes in 150 rows" in guessed.label_guess.reason
    assert guessed.column_types == chosen.column_types and guessed.data.frame.equals(chosen.data.frame)
