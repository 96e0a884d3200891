"""Tables: CSV import (types, bad files, dropped rows), saving and loading, built-ins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aigc_core.data import table as tb
from aigc_core.data.base import TableData
from aigc_core.data.catalog import load_dataset, save_uploaded
from aigc_core.errors import UserError


def csv_bytes(header: str, rows: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode(encoding)


def shop_rows(n: int = 30) -> list[str]:
    devices = ["mobile", "desktop", "tablet"]
    return [f"{i % 7},{1.5 + i / 10:.1f},{devices[i % 3]},{'yes' if i % 2 else 'no'}" for i in range(n)]


SHOP_HEADER = "views,minutes,device,bought"


# ---- type inference ------------------------------------------------------------------

def test_types_are_inferred_per_column_and_whole_numbers_stay_integers():
    report = tb.import_csv(csv_bytes(SHOP_HEADER, shop_rows()), "shop", label_column="bought")
    assert report.column_types == {"views": "numeric", "minutes": "numeric", "device": "categorical", "bought": "boolean"}
    frame = report.data.frame
    assert frame["views"].dtype == np.int64 and report.integer_columns == ["views"]
    assert frame["minutes"].dtype == np.float64
    assert frame["bought"].dtype == bool and frame["bought"].sum() == 15
    assert set(frame["device"]) == {"mobile", "desktop", "tablet"}
    assert report.data.label_column == "bought" and report.dropped_rows == 0


@pytest.mark.parametrize("pair", [("yes", "no"), ("true", "false"), ("1", "0"), ("Y", "N")])
def test_two_valued_columns_are_booleans(pair):
    frame = pd.DataFrame({"flag": [pair[i % 2] for i in range(10)], "x": [str(i) for i in range(10)]}, dtype=object)
    assert tb.infer_types(frame) == {"flag": "boolean", "x": "numeric"}


def test_a_mostly_numeric_column_is_numeric_and_its_stray_cells_are_reported():
    rows = [f"{i},{'n/a' if i == 4 else i * 2},{'oops' if i == 7 else i}" for i in range(30)]
    report = tb.import_csv(csv_bytes("a,b,c", rows), "stray", missing="fill")
    assert report.column_types == {"a": "numeric", "b": "numeric", "c": "numeric"}
    assert report.coerced_cells == 1 and report.coerced_examples[0][1:] == ("c", "oops")
    assert report.coerced_examples[0][0] == 9  # file line: header is line 1, row i=7 is line 9
    assert report.filled_cells == 2 and len(report.data.frame) == 30


def test_user_corrections_to_types_are_applied():
    rows = [f"{i % 4},{i}" for i in range(30)]
    report = tb.import_csv(csv_bytes("grade,score", rows), "grades", column_types={"grade": "categorical"})
    assert report.column_types["grade"] == "categorical"
    assert set(report.data.frame["grade"]) == {"0", "1", "2", "3"}
    ignored = tb.import_csv(csv_bytes("id,grade,score", [f"{i},{i % 4},{i}" for i in range(30)]), "g2",
                            column_types={"id": "ignore"})
    assert list(ignored.data.frame.columns) == ["grade", "score"] and ignored.ignored_columns == ["id"]


def test_semicolons_with_decimal_commas_and_a_missing_header_are_detected():
    rows = [f"{i};{i},5;{'a' if i % 2 else 'b'}" for i in range(25)]
    report = tb.import_csv(("\n".join(rows) + "\n").encode(), "semi")
    assert report.delimiter == ";" and not report.has_header
    assert list(report.data.frame.columns) == ["column_1", "column_2", "column_3"]
    assert report.data.frame["column_2"].iloc[3] == pytest.approx(3.5)


def test_a_numeric_label_with_few_whole_values_becomes_classes():
    rows = [f"{i / 3:.2f},{i % 3}" for i in range(30)]
    report = tb.import_csv(csv_bytes("x,cls", rows), "cls", label_column="cls")
    assert report.column_types["cls"] == "categorical"
    with pytest.raises(UserError, match="label column 'x' holds numbers with 30 different values"):
        tb.import_csv(csv_bytes("x,cls", rows), "cls2", label_column="x")


# ---- bad files --------------------------------------------------------------------------

def test_a_binary_file_is_refused_saying_what_it_is():
    with pytest.raises(UserError, match="'book.xlsx' is a zip archive or an Excel .xlsx workbook, not a CSV"):
        tb.import_csv(b"PK\x03\x04" + bytes(200), "book", filename="book.xlsx")
    zeros = b"a,b\n1,2\n3,4\n5,\x00\x00\x01\n"
    with pytest.raises(UserError, match=r"zero byte at byte 15, line 4"):
        tb.import_csv(zeros, "zeros")
    with pytest.raises(UserError, match="never opened"):
        tb.import_csv(b"\x80\x04K.", "pickle", filename="model.pkl")


def test_ragged_rows_beyond_repair_are_refused_naming_the_lines():
    rows = [f"{i},{i},{i}" + (f",{i},{i}" if i % 3 == 0 else "") for i in range(30)]
    with pytest.raises(UserError) as err:
        tb.import_csv(csv_bytes("a,b,c", rows), "ragged")
    msg = str(err.value)
    assert "do not line up with the header" in msg
    assert "line 2 has 5 fields where the header has 3" in msg and "10 of 30 rows" in msg
    assert "lines 2, 5, 8, 11, 14, ..." in msg


def test_a_single_column_is_refused():
    with pytest.raises(UserError, match="only one column"):
        tb.import_csv(csv_bytes("height", [str(i) for i in range(30)]), "one")


def test_too_few_rows_are_refused_with_the_count():
    with pytest.raises(UserError, match="has 5 data row\\(s\\); at least 20 are needed"):
        tb.import_csv(csv_bytes("a,b", [f"{i},{i}" for i in range(5)]), "few")
    rows = [f"{i},{'' if i % 2 else i}" for i in range(30)]
    with pytest.raises(UserError, match="only 15 of 30 rows are left after dropping"):
        tb.import_csv(csv_bytes("a,b", rows), "holes")


def test_undecodable_bytes_are_refused_saying_where():
    broken_utf16 = b"\xff\xfe" + "a,b\n1,2\n".encode("utf-16-le") + b"\x00\xd8"  # a lone surrogate at the end
    with pytest.raises(UserError, match=r"does not decode as UTF-16 \(bytes 19 to 20 are not valid"):
        tb.import_csv(broken_utf16, "u16")
    controls = csv_bytes("a,b", [f"{i},{i}" for i in range(25)]) + b"\x01\x02\x03\x04\x05" * 20
    with pytest.raises(UserError, match="control characters, the first on line 27"):
        tb.import_csv(controls, "ctl")


def test_a_latin1_file_is_read_with_a_note_naming_the_first_odd_line():
    rows = [f"{i},{'café' if i % 2 else 'thé'}" for i in range(25)]
    report = tb.import_csv(csv_bytes("n,drink", rows, encoding="latin-1"), "latin")
    assert report.encoding == "cp1252" and "first non-UTF-8 byte on line 2" in report.encoding_note
    assert set(report.data.frame["drink"]) == {"café", "thé"}


def test_dropped_rows_are_counted_and_named_by_line():
    rows = shop_rows(30)
    rows[3] = "3,1.8,mobile"             # short row: repaired, its missing cell drops it
    rows[10] = "10,2.5,desktop,yes,9,9"  # extra fields: dropped
    rows[20] = "x,?,tablet,no"           # 'x' is not a number, '?' is missing
    report = tb.import_csv(csv_bytes(SHOP_HEADER, rows), "dropped")
    assert report.dropped_rows == 3 and report.rows_kept == 27 and report.rows_read == 30
    lines = [line for line, _ in report.dropped_examples]
    assert lines == [5, 12, 22]
    assert "6 fields where the header has 4" in dict(report.dropped_examples)[12]
    assert any("3 row(s) were dropped" in m and "27 rows remain" in m for m in report.messages())
    filled = tb.import_csv(csv_bytes(SHOP_HEADER, rows), "filled", missing="fill")
    assert filled.dropped_rows == 1 and filled.rows_kept == 29 and filled.filled_cells == 3


# ---- saving and loading ------------------------------------------------------------------

def test_a_saved_table_loads_back_with_the_same_types_values_and_label():
    report = tb.import_csv(csv_bytes(SHOP_HEADER, shop_rows()), "roundtrip", label_column="bought")
    save_uploaded(report.data, overwrite=True)
    back = load_dataset("roundtrip")
    assert isinstance(back, TableData)
    assert back.column_types == report.column_types and back.label_column == "bought"
    assert list(back.frame.dtypes) == list(report.data.frame.dtypes)
    assert back.frame["views"].dtype == np.int64 and back.frame["bought"].dtype == bool
    assert set(back.frame["device"]) == {"mobile", "desktop", "tablet"}
    pd.testing.assert_frame_equal(back.frame, report.data.frame)


def test_category_codes_that_look_like_numbers_stay_text_after_a_round_trip():
    frame = pd.DataFrame({"zip": ["01234", "02345", "10001"] * 10, "x": np.arange(30.0) / 4})
    save_uploaded(TableData("zips", frame, {"zip": "categorical", "x": "numeric"}), overwrite=True)
    back = load_dataset("zips")
    assert set(back.frame["zip"]) == {"01234", "02345", "10001"}
    assert back.frame["x"].tolist() == frame["x"].tolist()


# ---- built-ins and statistics -----------------------------------------------------------

def test_iris_is_150_flowers_of_three_species():
    data = load_dataset("iris")
    assert len(data) == 150 and data.label_column == "species"
    assert data.frame["species"].value_counts().tolist() == [50, 50, 50]
    assert data.column_types["petal_length"] == "numeric"


def test_ecommerce_follows_its_documented_dependencies():
    data = load_dataset("ecommerce")
    f = data.frame
    assert len(f) == 5000 and data.label_column == "purchase"
    assert not (f["purchase"] & (f["cart_adds"] == 0)).any()          # no cart, no purchase
    assert (f["views"] >= 1).all() and (f["cart_adds"] <= f["views"]).all()
    assert 0.08 < f["purchase"].mean() < 0.3
    assert f.groupby("returning")["views"].mean()[True] > f.groupby("returning")["views"].mean()[False]
    assert np.corrcoef(f["views"], f["time_on_site"])[0, 1] > 0.5
    pd.testing.assert_frame_equal(tb.ecommerce().frame, f)              # the same table on every install


def test_table_stats_summarise_each_column_and_pair():
    stats = tb.table_stats(load_dataset("iris"))
    petal = stats["columns"]["petal_length"]
    assert petal["min"] == 1.0 and petal["max"] == 6.9 and sum(petal["counts"]) == 150
    assert stats["columns"]["species"]["counts"] == [50, 50, 50]
    cols = stats["association"]["columns"]
    r = stats["association"]["matrix"][cols.index("petal_length")][cols.index("species")]
    assert r > 0.9  # petal length nearly tells the species
