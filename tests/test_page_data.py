"""Data page (AppTest): looking at built-in sets of every kind, uploading images,
text and tables through the uploader, refusals, and deleting an upload."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from aigc_core.data.catalog import list_datasets, load_dataset
from tests.tiny_runs import APP, tiny_images, tiny_lines


def open_data_page(dataset: str | None = None, tab: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if dataset:
        at.session_state["dataset"] = dataset
    if tab:
        at.session_state["data_tab"] = tab
    at.run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, filename: str, content: bytes) -> AppTest:
    at.session_state["data_tab"] = "Upload your own"
    at.run()
    at.file_uploader[0].upload(filename, content)
    at.run()
    assert not at.exception, at.exception
    return at


def names() -> set[str]:
    return {d.name for d in list_datasets()}


def errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def pets_zip() -> bytes:
    """18 cats and 18 dogs in class folders, and one PNG cut short."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(18):
            zf.writestr(f"cats/cat{i:02d}.png", png(i))
            zf.writestr(f"dogs/dog{i:02d}.png", png(100 + i))
        zf.writestr("dogs/broken.png", png(7)[:80])
    return buf.getvalue()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# ---- looking at a set -------------------------------------------------------------------

def test_an_image_set_shows_a_grid_its_numbers_and_class_balance():
    at = open_data_page("digits")
    assert at.selectbox(key="data_pick").value == "digits"
    shown = metrics(at)
    assert shown["Images"] == "1,797" and shown["Size"] == "8 x 8 px" and shown["Channels"] == "1 (grey)"
    assert shown["Classes"] == "10"
    assert len(at.get("image")) == 1  # the preview grid
    assert len(at.get("plotly_chart")) == 1 and "Class balance" in at.get("plotly_chart")[0].proto.spec
    assert any("cannot be deleted" in c.value for c in at.caption)
    at.button(key="grid_more:digits").click().run()  # another random pick
    assert not at.exception and at.session_state["grid_seed:digits"] == 1


def test_a_set_that_needs_a_download_asks_first_and_says_when_there_is_no_network():
    at = open_data_page("mnist")  # the tests run with downloads switched off
    assert not at.get("image") and not at.metric
    at.button(key="load:mnist").click().run()
    assert not at.exception
    assert "could not download MNIST" in errors(at) and "internet" in errors(at)
    at.run()
    assert at.button(key="load:mnist")  # ready for another try


def test_picking_a_set_makes_it_the_current_data_set():
    at = open_data_page("digits")
    at.selectbox(key="data_pick").set_value("iris").run()
    assert not at.exception
    assert at.session_state["dataset"] == "iris"
    assert metrics(at)["Rows"] == "150"


def test_a_first_visit_picks_a_set_so_the_sidebar_names_it():
    at = open_data_page()
    assert at.session_state["dataset"] == at.selectbox(key="data_pick").value == list_datasets()[0].name


def test_a_text_set_shows_an_excerpt_and_characters_vocabulary_lines():
    at = open_data_page(tiny_lines())
    shown = metrics(at)
    assert shown["Characters"] and shown["Items (lines)"] == "36"
    assert int(shown["Vocabulary"]) == len(set(load_dataset("tiny_names").text))
    assert "anna" in at.code[0].value
    assert len(at.get("plotly_chart")) == 1  # character frequencies


def test_the_iris_table_shows_its_head_column_charts_and_a_heat_map():
    at = open_data_page("iris")
    shown = metrics(at)
    assert shown["Rows"] == "150" and shown["Numeric columns"] == "4" and shown["Label column"] == "species"
    assert list(at.dataframe[0].value.columns) == ["sepal_length", "sepal_width", "petal_length", "petal_width",
                                                   "species"]
    assert len(at.get("plotly_chart")) == 3  # column charts, class balance, heat map
    at.radio(key="tbl_heat:iris").set_value("Association (all columns)").run()
    assert not at.exception and len(at.get("plotly_chart")) == 3


def test_a_point_set_shows_a_scatter_and_its_modes():
    at = open_data_page("ring8")
    assert metrics(at)["Modes (clusters)"] == "8"
    assert len(at.get("plotly_chart")) == 2  # scatter and points per mode


# ---- uploads ---------------------------------------------------------------------------------

def test_a_zip_of_images_imports_with_a_report_of_what_was_left_out(fresh_home):
    at = upload(open_data_page("digits"), "pets.zip", pets_zip())
    assert at.text_input(key="up0:name").value == "pets"
    at.radio(key="up0:size").set_value(32)
    at.radio(key="up0:colour").set_value("colour")
    at.button(key="up0:go").click().run()
    assert not at.exception and not at.error
    assert "pets" in at.success[0].value
    assert metrics(at)["Images accepted"] == "36" and metrics(at)["Files left out"] == "1"
    rejected = at.dataframe[0].value
    assert list(rejected["file"]) == ["dogs/broken.png"] and "corrupt" in rejected.iloc[0, 1]
    assert at.session_state["dataset"] == "pets"
    data = load_dataset("pets")
    assert (len(data), data.size, data.channels, data.class_names) == (36, 32, 3, ["cats", "dogs"])
    at.session_state["data_tab"] = "Data sets"
    at.run()
    assert any(option.startswith("pets ") for option in at.selectbox(key="data_pick").options)
    assert at.selectbox(key="data_pick").value == "pets"
    assert metrics(at)["Images"] == "36" and metrics(at)["Classes"] == "2"


def test_colour_photos_imported_without_changing_anything_stay_in_colour(fresh_home):
    at = upload(open_data_page("digits"), "pets.zip", pets_zip())
    assert at.radio(key="up0:colour").value == "as uploaded"
    at.button(key="up0:go").click().run()
    assert not at.exception and not at.error
    assert "colour" in at.success[0].value
    assert load_dataset("pets").channels == 3
    assert any("Kept in colour" in c.value for c in at.caption)


def test_a_taken_name_is_refused_before_import_and_the_old_set_stays(fresh_home):
    tiny_images("pets")
    before = load_dataset("pets").images.clone()
    at = upload(open_data_page("digits"), "pets.zip", pets_zip())
    at.text_input(key="up0:name").set_value("pets").run()
    assert any("already a data set called **pets**" in w.value for w in at.warning)
    assert at.button(key="up0:go").disabled
    at.text_input(key="up0:name").set_value("../evil").run()
    assert any("not allowed" in w.value for w in at.warning) and at.button(key="up0:go").disabled
    assert load_dataset("pets").images.equal(before)


def test_an_archive_with_too_few_images_says_why_and_saves_nothing(fresh_home):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"img{i}.png", png(i))
    at = upload(open_data_page("digits"), "few.zip", buf.getvalue())
    at.button(key="up0:go").click().run()
    assert not at.exception
    assert "at least 16" in errors(at)
    assert "few" not in names()


def test_a_text_file_imports_in_line_mode(fresh_home):
    text = "\n".join(f"name{i:02d}" for i in range(30)).encode()
    at = upload(open_data_page("digits"), "names.txt", text)
    at.radio(key="up0:mode").set_value("lines").run()
    assert metrics(at)["Items"] == "30"
    at.button(key="up0:go").click().run()
    assert not at.exception and "names" in at.success[0].value
    saved = load_dataset("names")
    assert saved.mode == "lines" and saved.text.split("\n")[0] == "name00"


def test_a_text_file_that_is_not_utf8_gets_a_message_and_nothing_is_saved(fresh_home):
    before = names()
    at = upload(open_data_page("digits"), "café.txt", ("Un café crème, s'il vous plaît. " * 30).encode("cp1252"))
    assert not at.exception
    assert "not UTF-8" in errors(at) and "Save it as UTF-8" in errors(at)
    assert not [b for b in at.button if b.key == "up0:go"]  # no way to save a half-read file
    assert names() == before


def test_a_csv_with_a_corrected_column_type_saves_with_that_type(fresh_home):
    rows = ["size,colour,code,price"] + [f"{i % 5},{['red', 'blue'][i % 2]},{100 + i % 3},{'' if i == 7 else i * 1.5}"
                                         for i in range(40)]
    at = upload(open_data_page("digits"), "shop.csv", ("\n".join(rows) + "\n").encode())
    editor = at.data_editor[0]
    assert editor.value.set_index("column")["type"].to_dict() == {
        "size": "numeric", "colour": "categorical", "code": "numeric", "price": "numeric"}
    assert any("1 row(s) were dropped" in w.value for w in at.warning)  # the default: drop a row with a missing cell
    # a user corrects 'code' (numbers that name a product group) to categorical
    at.session_state[editor.key] = {"edited_rows": {2: {"type": "categorical"}}, "added_rows": [], "deleted_rows": []}
    at.run()
    at.selectbox(key="up0:label").set_value("colour")
    at.radio(key="up0:missing").set_value("fill")
    at.run()
    assert any("1 missing cell(s) were filled" in w.value for w in at.warning)
    at.button(key="up0:go").click().run()
    assert not at.exception and "shop" in at.success[0].value
    saved = load_dataset("shop")
    assert saved.column_types == {"size": "numeric", "colour": "categorical", "code": "categorical", "price": "numeric"}
    assert saved.label_column == "colour" and len(saved.frame) == 40
    assert set(saved.frame["code"]) == {"100", "101", "102"}


def test_a_pickle_is_refused_with_the_reason(fresh_home):
    import pickle

    at = upload(open_data_page("digits"), "model.pkl", pickle.dumps({"weights": [1, 2, 3]}))
    assert "never unpickle" in errors(at)
    assert not [b for b in at.button if b.key == "up0:go"]
    assert "model" not in names()


def test_a_file_of_another_type_names_what_is_accepted(fresh_home):
    at = upload(open_data_page("digits"), "notes.docx", b"PK\x03\x04 not really")
    assert ".zip" in errors(at) and ".csv" in errors(at)


# ---- deleting -------------------------------------------------------------------------------

def test_deleting_needs_a_confirmation_and_removes_only_that_set(fresh_home):
    tiny_images("keep_me")
    tiny_images("drop_me")
    at = open_data_page("drop_me")
    assert at.button(key="del:drop_me").disabled  # not without the tick
    at.checkbox(key="del_sure:drop_me").check().run()
    at.button(key="del:drop_me").click().run()
    assert not at.exception
    assert "Deleted **drop_me**" in at.success[0].value
    assert "drop_me" not in names() and "keep_me" in names()
    assert not any(option.startswith("drop_me ") for option in at.selectbox(key="data_pick").options)
    assert at.session_state["dataset"] != "drop_me"


def test_an_upload_whose_files_were_damaged_says_so_and_can_still_be_deleted(fresh_home):
    from aigc_core.paths import datasets_dir

    tiny_images("damaged")
    (datasets_dir() / "damaged" / "data.safetensors").write_bytes(b"not a safetensors file")
    at = open_data_page("damaged")
    assert "damaged or incomplete" in errors(at) and "upload it again" in errors(at)
    at.checkbox(key="del_sure:damaged").check().run()
    at.button(key="del:damaged").click().run()
    assert not at.exception and "damaged" not in names()


def test_a_wide_table_says_which_columns_its_heat_map_shows(fresh_home):
    import pandas as pd

    from aigc_core.data.base import TableData
    from aigc_core.data.catalog import save_uploaded

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"m{j:02d}": rng.normal(size=40) for j in range(30)})
    save_uploaded(TableData("wide", frame, {c: "numeric" for c in frame.columns}, None))
    at = open_data_page("wide")
    captions = " ".join(c.value for c in at.caption)
    shown = ", ".join(f"m{j:02d}" for j in range(20))
    assert f"The heat map shows 20 of the 30 number and yes/no columns: {shown} (the first ones)" in captions


def test_a_text_with_more_characters_than_models_keep_says_what_they_keep(fresh_home):
    from aigc_core.data.base import TextData
    from aigc_core.data.catalog import save_uploaded

    text = "".join(chr(0x4E00 + i) for i in range(600)) + "\n" + "的一是不了" * 50  # 600 + 的, 是 and the line break
    save_uploaded(TextData("hanzi", text, mode="stream"))
    at = open_data_page("hanzi")
    notes = " ".join(i.value for i in at.info)
    assert "The text has 603 distinct characters; models keep the 512 most frequent, and the other 91 become one " \
           "'other' character" in notes


def flower_rows(n: int = 60) -> list[str]:
    return [f"{i % 7}.{i % 3},{i % 5}.5,{['red', 'blue', 'green'][i % 3]},{'ab'[i % 2]}" for i in range(n)]


def test_a_csv_upload_preselects_the_guessed_label_says_why_and_can_be_changed(fresh_home):
    at = upload(open_data_page("digits"), "flowers.csv", ("\n".join(["petal,sepal,colour,kind"] + flower_rows())
                                                          + "\n").encode())
    label = at.selectbox(key="up0:label")
    assert label.label == "Label column" and label.value == "kind"
    said = " ".join(c.value for c in at.caption)
    assert "Guessed **kind**" in said and "last column" in said and "2 classes in 60 rows" in said
    label.set_value("colour").run()
    at.button(key="up0:go").click().run()
    assert not at.exception and "label colour" in at.success[0].value
    assert load_dataset("flowers").label_column == "colour"


def test_a_csv_with_no_class_like_column_says_so_and_what_a_model_conditions_on(fresh_home):
    rows = ["x,city,z"] + [f"{i * 0.37:.2f},city{i % 30},{i * 1.1:.1f}" for i in range(90)]
    at = upload(open_data_page("digits"), "towns.csv", ("\n".join(rows) + "\n").encode())
    assert at.selectbox(key="up0:label").value == "(none)"
    said = " ".join(c.value for c in at.caption)
    assert "No label guessed" in said and "of **city** (the first category or yes/no column)" in said
