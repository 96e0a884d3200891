"""The tabular augmentation study: real-only against real + synthetic, on test rows no generator saw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aigc_core.data.base import TableData
from aigc_core.errors import UserError
from aigc_core.metrics.augmentation import augmentation_scores, run_study, score_model
from aigc_core.models.tabular import split_rows
from aigc_core.runs import api
from aigc_core.sample import load_for_sampling
from aigc_core.train.loop import build_trainer

from tiny_runs import QUIET, tiny_table

TYPES = {"a": "numeric", "b": "numeric", "shop": "categorical", "buy": "boolean"}


def _table(rows: int = 400, seed: int = 0) -> TableData:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows)   # continuous: every row is unique
    frame = pd.DataFrame({"a": a, "b": b, "shop": rng.choice(["x", "y"], rows), "buy": (a + 0.5 * b) > 0.3})
    return TableData("study", frame, dict(TYPES), "buy")


class MemorisingGenerator:
    """A 'generator' that learns by heart the rows it trains on, split the way
    the table trainers split (before training, seeded). ``leaky`` also
    learns the test rows: the mistake the study must never make."""

    def __init__(self, data: TableData, leaky: bool = False, seed: int = 0):
        self.data, self.types, self.label = data, dict(data.column_types), data.label_column
        self.frame = data.frame.reset_index(drop=True)
        self.train_rows, self.test_rows = split_rows(len(self.frame), self.frame[self.label].astype(str).to_numpy(),
                                                     0.25, seed)
        self.real_train = self.frame.iloc[self.train_rows].reset_index(drop=True)
        self.real_test = self.frame.iloc[self.test_rows].reset_index(drop=True)
        self.seen = self.frame if leaky else self.real_train

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        pick = np.random.default_rng(seed).integers(0, len(self.seen), n)
        return self.seen.iloc[pick].reset_index(drop=True)


def test_the_study_tests_on_rows_the_generator_never_saw():
    generator = MemorisingGenerator(_table())
    study = run_study(generator)
    # a memoriser reproduces everything it saw; none of the test rows come back, so it never saw one
    assert study["aug_test_copy_rate"] == 0.0 and study["aug_test_copy_rate_chance"] == 0.0
    assert study["aug_test_rows"] == len(generator.test_rows) == 100
    assert study["aug_train_rows"] == len(generator.train_rows) == 300


def test_a_generator_that_saw_the_test_rows_is_caught():
    study = run_study(MemorisingGenerator(_table(), leaky=True))
    assert study["aug_test_copy_rate"] > 0.3  # 300 draws from all 400 rows find about half the 100 test rows


def test_a_run_whose_train_and_test_rows_overlap_is_refused():
    generator = MemorisingGenerator(_table())
    generator.test_rows = np.concatenate([generator.test_rows, generator.train_rows[:1]])
    with pytest.raises(UserError, match="overlap"):
        run_study(generator)


def test_a_table_run_splits_before_it_trains_and_learns_from_training_rows_only():
    config = api.make_config("tab_vae", tiny_table(), train_set={"steps": 6, "log_every": 3, "checkpoint_every": 3})
    _, _, untrained = build_trainer(config)
    run = api.run_in_foreground(config, **QUIET)
    trained, _, _ = load_for_sampling(run.id)
    # the split that the study uses is the one fixed before step 0, carried in the checkpoint
    assert list(trained.test_rows) == list(untrained.test_rows)
    assert not set(trained.train_rows) & set(trained.test_rows)
    assert len(trained.train_rows) + len(trained.test_rows) == len(trained.frame)
    # what the generator draws its batches from is the training rows, encoded
    assert trained.encoded.shape[0] == len(trained.train_rows)
    pd.testing.assert_frame_equal(trained.real_train, trained.frame.iloc[trained.train_rows].reset_index(drop=True))


def test_eval_reports_real_only_and_mixed_scores_for_each_amount_and_the_small_data_setting():
    scores = augmentation_scores(MemorisingGenerator(_table()))
    for metric in ("accuracy", "precision", "recall", "f1"):
        for key in (f"aug_real_{metric}", f"aug_mixed_{metric}", f"aug_mixed_0_5x_{metric}",
                    f"aug_mixed_1x_{metric}", f"aug_mixed_2x_{metric}", f"aug_small_real_{metric}",
                    f"aug_small_mixed_{metric}"):
            assert 0.0 <= scores[key] <= 1.0, key
    assert scores["aug_mixed_f1"] == scores["aug_mixed_1x_f1"]
    assert scores["aug_small_rows"] == 30


def test_precision_and_recall_are_about_the_buyers_on_a_yes_no_label():
    frame = pd.DataFrame({"a": [0.0, 1.0] * 50, "buy": [False, True] * 50})
    types = {"a": "numeric", "buy": "boolean"}
    train, test = frame.iloc[:80], frame.iloc[80:]
    always_no = train.assign(buy=False)
    always_no.iloc[0, 1] = True
    perfect = score_model(train, test, "buy", types, "True")
    assert perfect == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    lazy = score_model(always_no, test, "buy", types, "True")
    assert lazy["accuracy"] == pytest.approx(0.5) and lazy["recall"] == 0.0


def test_the_built_in_shop_is_framed_as_the_recommender_s_purchase_model():
    from aigc_core.data.table import ecommerce

    data = ecommerce(rows=600)
    generator = MemorisingGenerator(data)
    generator.data = data
    study = run_study(generator, amounts=(1.0,))
    assert "recommend" in study["details"]["task"] and study["details"]["positive_class"] == "True"


def test_the_gallery_headline_reads_the_stored_numbers_as_one_row_per_setting():
    from aigc_core.metrics.augmentation import headline

    scores = augmentation_scores(MemorisingGenerator(_table()))
    table = headline(scores, "ecommerce")
    assert [r["setting"] for r in table["rows"]] == [
        "real training rows only", "real + 0.5x synthetic", "real + 1x synthetic", "real + 2x synthetic",
        "small real set only", "small real set + synthetic"]
    assert table["rows"][0]["f1"] == scores["aug_real_f1"] and table["rows"][3]["synthetic_rows"] == 600
    assert "purchase" in table["task"].lower() and "100 real test rows" in table["note"]
    assert headline({"fid": 3.0}) is None
