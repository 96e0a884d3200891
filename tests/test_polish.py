"""Issue 16: places where a page said something untrue, or said it too late."""

from __future__ import annotations

import pytest

from aigc_core.runs.store import RunStore
from tests.tiny_runs import open_page, tiny_lines, tiny_table

TRAIN = "pages/train.py"


def _pick(data: str, kind: str, model: str, preset: str):
    at = open_page(TRAIN)
    at.selectbox(key="tr_data").set_value(data).run()
    at.selectbox(key=f"tr_model_{kind}").set_value(model).run()
    at.radio(key=f"tr_preset_{model}").set_value(preset).run()
    return at


# ---- 3. settings that cannot work together ------------------------------------------------

def test_an_embedding_size_that_the_heads_do_not_divide_is_named_beside_the_form_and_start_is_off(fresh_home):
    at = _pick(tiny_lines(), "text", "char_gpt", "Custom")
    assert not at.button(key="tr_start").disabled
    at.number_input(key="tr_char_gpt_Custom_m_n_embd").set_value(98).run()
    assert not at.exception
    clash = [e.value for e in at.error if "must be a multiple of" in e.value]
    assert clash and "n_embd = 98" in clash[0] and "n_head = 4" in clash[0] and "try 96 or 100" in clash[0]
    assert at.button(key="tr_start").disabled
    at.number_input(key="tr_char_gpt_Custom_m_n_embd").set_value(104).run()
    assert not any("must be a multiple of" in e.value for e in at.error)
    assert not at.button(key="tr_start").disabled


def test_a_batch_that_is_not_a_multiple_of_the_packing_is_refused_before_a_run_exists(fresh_home):
    at = _pick(tiny_table(), "table", "tab_gan", "Custom")
    at.slider(key="tr_tab_gan_Custom_m_pac").set_value(3).run()
    assert any("batch_size = 200" in e.value and "pac = 3" in e.value for e in at.error)
    assert at.button(key="tr_start").disabled
    assert RunStore().list() == []


@pytest.mark.parametrize("model,data,clash", [("char_gpt", "lines", "n_embd=98"),
                                              ("tab_gan", "table", "pac=3")])
def test_train_refuses_settings_that_cannot_work_together_with_exit_status_2(fresh_home, capsys, model, data, clash):
    from aigc_core.cli import main

    dataset = tiny_lines() if data == "lines" else tiny_table()
    assert main(["train", "--model", model, "--dataset", dataset, "--set", clash, "--set", "steps=5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "must be a multiple of" in err
    assert RunStore().list() == []
