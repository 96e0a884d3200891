"""The presets bench's tables (``python -m aigc_core bench --only presets``)
arrive as uploads would: no label named, the importer's guess used and shown,
and a wrong guess reported instead of scored."""

from __future__ import annotations

import pandas as pd

from aigc_core.benchmarks import corpora, presets


def test_a_bench_table_is_imported_without_its_label_and_the_guess_is_kept():
    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5, 4.5] * 10, "b": [0.1, 0.7, 0.2, 0.9] * 10, "kind": ["x", "y"] * 20})
    data, guess = corpora._as_upload(frame, "t", "a test table")
    assert guess.column == "kind" and data.label_column == "kind" and data.description == "a test table"
    assert data.column_types == {"a": "numeric", "b": "numeric", "kind": "categorical"}


def test_every_bench_table_s_label_is_guessed_as_its_class_column():
    names = ["iris", "ecommerce", "digits", "wine", "breast_cancer", "blobs", "mix40"]  # glyphs_7x7: see below
    found = corpora.tables(names)
    assert sorted(found) == sorted(names)
    for name, table in found.items():
        assert table.guessed_right, (name, table.guessed, table.classes, table.reason)
        assert table.data.label_column == table.classes


def test_the_glyph_table_is_a_wide_table_of_0_to_16_pixels_and_a_digit():
    frame = corpora.glyph_pixels(rows=50)
    assert frame.shape == (50, corpora.GLYPH_SIDE ** 2 + 1) and list(frame.columns)[-1] == "digit"
    pixels = frame.drop(columns="digit")
    assert pixels.min().min() >= 0 and pixels.max().max() <= 16 and pixels.to_numpy().sum() > 0


def test_the_tables_the_wide_rule_was_tuned_on_are_in_the_tuned_group_and_mix40_is_unseen():
    assert {"digits", "glyphs_7x7", "blobs"} <= set(corpora.TUNED_TABLES)
    assert "mix40" in corpora.UNSEEN_TABLES and not set(corpora.TUNED_TABLES) & set(corpora.UNSEEN_TABLES)
    frame = corpora.mix_table(rows=200)
    assert frame.shape == (200, 41) and frame["kind"].nunique() == 4


def test_a_wrong_label_guess_is_reported_and_not_scored():
    table = corpora.tables(["wine"])["wine"]
    table.classes = "proline"  # as if the classes were elsewhere
    row = presets.table_row("wine", table, quick=True)
    assert row["tabular.wine.label_guessed"] == "cultivar"
    assert row["tabular.wine.label_wrong"] == "the importer guessed 'cultivar'; the classes are in 'proline'"
    assert not any(".tab_gan." in key for key in row)


def test_the_presets_bench_trains_only_the_sets_named(monkeypatch):
    from aigc_core.benchmarks import presets

    trained = []
    monkeypatch.setattr(presets, "text_row", lambda name, group, data, quick: trained.append(name) or {})
    monkeypatch.setattr(presets, "table_row", lambda name, table, quick: trained.append(name) or {})
    presets.run(quick=True, tables=["blobs"])
    assert trained == ["blobs"]                       # naming a table trains no text
    trained.clear()
    presets.run(quick=True, texts=["pydoc"], tables=["iris", "wine"])
    assert trained == ["pydoc", "iris", "wine"]       # tuned before unseen
