"""Text family: corpora, uploads, the three character models and sampling."""

from __future__ import annotations

import math

import pytest
import torch

from aigc_core.config import from_dict
from aigc_core.data import text as text_data
from aigc_core.data.base import TextData
from aigc_core.data.catalog import list_datasets, load_dataset, save_uploaded
from aigc_core.errors import UserError
from aigc_core.models import text as tm
from aigc_core.registry import get_model, models_for
from aigc_core.runs.checkpoint import load_state, save_checkpoint

CPU = torch.device("cpu")
STREAM = ("the cat sat on the mat. the dog ate the hat. " * 12).strip()
NAMES = ["anna", "bert", "carla", "dora", "emil", "frida", "gus", "hanna", "ida", "jonas", "karl", "lena",
         "mia", "nils", "otto", "paula", "quin", "rosa", "sven", "tara", "ulla", "vera"]
TINY = {
    "bigram": dict(batch_size=16, block_size=16, lr=0.1, lr_decay_steps=0),
    "char_lstm": dict(n_embd=16, hidden=64, n_layer=1, batch_size=16, block_size=24, lr=1e-2, warmup_steps=0,
                      lr_decay_steps=0),
    "char_gpt": dict(n_layer=2, n_head=2, n_embd=32, block_size=24, batch_size=16, lr=1e-2, warmup_steps=0,
                     lr_decay_steps=0),
}


def make_trainer(model: str, data: TextData, seed: int = 0, **overrides):
    spec = get_model(model)
    cfg = from_dict(spec.config_cls, {**TINY[model], **overrides})
    return spec.trainer_cls(cfg, data, CPU, seed)


def stream_data() -> TextData:
    return TextData("tiny", STREAM, mode="stream")


def names_data() -> TextData:
    return TextData("names", "\n".join(NAMES), mode="lines")


def train(trainer, steps: int) -> float:
    for _ in range(steps):
        out = trainer.step()
    return float(out["loss"])


@pytest.fixture(scope="module")
def trained_gpt():
    trainer = make_trainer("char_gpt", stream_data())
    train(trainer, 120)
    return trainer


# ---- data ----------------------------------------------------------------------

def test_builtin_pydoc_is_python_docs_as_one_stream():
    data = load_dataset("pydoc")
    assert data.mode == "stream"
    assert 400_000 < len(data.text) < 600_000
    assert 'The "assert" statement' in data.text
    assert load_dataset("pydoc").text == data.text  # deterministic


def test_builtin_unicode_names_are_readable_items_one_per_line():
    data = load_dataset("unicode_names")
    items = data.text.split("\n")
    assert data.mode == "lines" and len(items) > 20_000
    assert "PANDA FACE" in items
    assert all(item and len(item) <= text_data.MAX_NAME_CHARS and not any(c.isdigit() for c in item) for item in items)
    assert {d.name for d in list_datasets("text")} >= {"pydoc", "unicode_names"}


def test_split_holds_out_the_last_tenth_of_text_or_lines():
    train_text, val_text = text_data.split(TextData("t", "x" * 900 + "y" * 100))
    assert train_text == "x" * 900 and val_text == "y" * 100
    train_lines, val_lines = text_data.split(names_data())
    assert val_lines.split("\n") == NAMES[-2:] and train_lines.split("\n") == NAMES[:-2]


def test_stats_count_characters_vocabulary_and_frequencies():
    stats = text_data.text_stats(TextData("t", "aab\nb b"))
    assert stats["chars"] == 7 and stats["vocab_size"] == 4 and stats["lines"] == 2
    freq = {row["char"]: row["count"] for row in stats["char_freq"]}
    assert freq == {"a": 2, "b": 3, "\n": 1, " ": 1}
    assert stats["char_freq"][0]["char"] == "b"
    assert next(r["label"] for r in stats["char_freq"] if r["char"] == " ").startswith("␠")
    lines = text_data.text_stats(names_data())
    assert lines["items"] == len(NAMES) and lines["max_item_chars"] == 5


def test_upload_of_utf8_text_is_saved_with_its_mode(fresh_home):
    raw = ("\ufeff" + "\r\n".join(NAMES) + "\r\n\r\n").encode("utf-8")
    data = text_data.import_text(raw, "my_names", "lines", filename="names.txt")
    assert data.text == "\n".join(NAMES)  # BOM, CR and empty lines gone
    save_uploaded(data)
    again = load_dataset("my_names")
    assert again.mode == "lines" and again.text == data.text


@pytest.mark.parametrize("raw, mode, words", [
    ("Grüße aus Köln, schöne Straße. ".encode("latin-1") * 30, "stream", ["not UTF-8", "byte 0xfc", "line 1", "UTF-8 in your editor"]),
    (b"", "stream", ["empty"]),
    (b"  \n\t\r\n   \n", "stream", ["empty", "spaces"]),
    (b"GIF89a\x00\x01\x02binary" * 50, "stream", ["binary", "NUL"]),
    ("hello world\n".encode("utf-16") * 50, "stream", ["UTF-16", "UTF-8"]),
    (b"one\ntwo\nthree\n", "lines", ["3 non-empty", "at least 20"]),
    (b"too short", "stream", ["at least"]),
])
def test_bad_uploads_are_refused_with_a_reason_and_nothing_is_saved(fresh_home, raw, mode, words):
    before = [d.name for d in list_datasets()]
    with pytest.raises(UserError) as err:
        text_data.import_text(raw, "bad", mode, filename="bad.txt")
    for word in words:
        assert word in str(err.value)
    assert [d.name for d in list_datasets()] == before


def test_latin1_message_names_the_position_of_the_first_bad_byte():
    raw = ("line one is fine\nthen café\n" * 40).encode("latin-1")
    with pytest.raises(UserError, match=r"line 2, column 9 \(byte 26 of the file\)"):
        text_data.import_text(raw, "bad", "stream")


def test_upload_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(text_data, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(UserError, match="limit"):
        text_data.import_text(b"a" * 1001, "big", "stream", filename="big.txt")
    assert text_data.import_text(b"a" * 1000, "big", "stream").text == "a" * 1000


# ---- vocabulary -------------------------------------------------------------------

def test_encoding_round_trip_for_stream_and_lines():
    vocab = tm.CharVocab.from_text(STREAM, "stream")
    assert vocab.decode(vocab.encode(STREAM)) == STREAM
    assert len(vocab) == len(set(STREAM))
    lines = tm.CharVocab.from_text("\n".join(NAMES), "lines")
    assert lines.tokens[:3] == [tm.PAD, tm.SOS, tm.EOS] and "\n" not in lines.tokens
    ids = [lines.id(tm.SOS)] + lines.encode("otto") + [lines.id(tm.EOS), lines.id(tm.PAD)]
    assert lines.decode(ids) == "otto"


def test_prompt_with_unknown_characters_names_them(trained_gpt):
    with pytest.raises(UserError) as err:
        trained_gpt.sample(1, 0, prompt="the Zoo€", length=5)
    message = str(err.value)
    assert "'Z'" in message and "'€'" in message and "never saw" in message
    with pytest.raises(UserError):
        trained_gpt.next_char_probs("Q")


# ---- models ---------------------------------------------------------------------

@pytest.mark.parametrize("model", ["char_gpt", "char_lstm"])
def test_changing_a_later_character_never_changes_earlier_logits(model):
    trainer = make_trainer(model, stream_data())
    net = trainer.model.eval()
    x = torch.randint(len(trainer.vocab), (2, 20), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 12:] = (y[:, 12:] + 1) % len(trainer.vocab)
    with torch.no_grad():
        a, b = net(x), net(y)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_gpt_attention_path_matches_the_fused_kernel():
    trainer = make_trainer("char_gpt", stream_data())
    net = trainer.model.eval()
    x = torch.randint(len(trainer.vocab), (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fused = net(x)
        spelled, maps = net(x, need_weights=True)
    assert torch.allclose(fused, spelled, atol=1e-5)
    assert len(maps) == 2 and maps[0].shape == (3, 2, 24, 24)


def test_attention_maps_are_causal_and_rows_sum_to_one(trained_gpt):
    maps = trained_gpt.attention_maps("the cat sat")
    T = len("the cat sat")
    assert maps.shape == (2, 2, T, T)
    assert torch.all(maps.triu(1) == 0)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, T), atol=1e-5)
    assert trained_gpt.context_labels("the cat sat") == list("the cat sat")


def test_only_the_gpt_has_attention_maps():
    with pytest.raises(UserError, match="only char_gpt"):
        make_trainer("char_lstm", stream_data()).attention_maps("the")


@pytest.mark.parametrize("model", ["bigram", "char_lstm", "char_gpt"])
def test_each_model_learns_a_tiny_corpus(model):
    trainer = make_trainer(model, stream_data())
    first = trainer.evaluate()["val_loss"]
    assert first == pytest.approx(math.log(len(trainer.vocab)), rel=0.1)  # knows nothing: ln V
    train(trainer, 150)
    after = trainer.evaluate()
    # the bigram is limited by its one character of context; the others nearly memorise
    assert after["val_loss"] < (0.5 if model == "bigram" else 0.2) * first
    assert after["val_bpc"] == pytest.approx(after["val_loss"] / math.log(2))
    assert after["val_perplexity"] == pytest.approx(math.exp(after["val_loss"]))


def test_step_returns_detached_tensors_and_the_lr_schedule_warms_up_then_decays():
    trainer = make_trainer("char_gpt", stream_data(), warmup_steps=10, lr_decay_steps=40, lr=1e-2)
    out = trainer.step()
    assert set(out) == {"loss", "lr"} and all(isinstance(v, torch.Tensor) and not v.requires_grad for v in out.values())
    lrs = [float(trainer.step()["lr"]) for _ in range(50)]
    assert lrs[0] < lrs[8] == pytest.approx(1e-2)      # warm-up
    assert lrs[25] < lrs[9]                             # cosine decay
    assert lrs[-1] == pytest.approx(1e-3)               # then a tenth of the peak
    trainer.budget_progress = lambda: 0.5
    assert trainer.lr_now() == pytest.approx(1e-3 + 0.5 * (1e-2 - 1e-3))


def test_a_gpt_with_lr_floor_zero_decays_to_zero_and_the_standard_preset_asks_for_it():
    trainer = make_trainer("char_gpt", stream_data(), warmup_steps=10, lr_decay_steps=40, lr=1e-2, lr_floor=0.0)
    assert trainer.lr_at(9) == pytest.approx(1e-2)
    assert trainer.lr_at(25) == pytest.approx(0.5 * 1e-2)  # half way down the cosine, not half way to a tenth
    assert trainer.lr_at(40) == 0.0
    assert get_model("char_gpt").presets["Standard"]["model"]["lr_floor"] == 0.0


def test_same_seed_same_training_and_same_samples():
    a, b = make_trainer("char_gpt", stream_data(), seed=3), make_trainer("char_gpt", stream_data(), seed=3)
    assert train(a, 5) == train(b, 5)
    assert a.sample(2, seed=7, prompt="the ", length=30) == b.sample(2, seed=7, prompt="the ", length=30)
    assert a.film_strip() == b.film_strip()
    c = make_trainer("char_gpt", stream_data(), seed=4)
    assert train(c, 5) != train(make_trainer("char_gpt", stream_data(), seed=3), 5)


# ---- sampling -------------------------------------------------------------------

def test_samples_start_with_the_prompt_and_have_the_asked_length(trained_gpt):
    out = trained_gpt.sample(3, seed=0, prompt="the ", length=40)
    assert len(out) == 3 and all(s.startswith("the ") and len(s) == 44 for s in out)
    assert trained_gpt.sample(1, seed=0, prompt="the ", length=40) == out[:1]  # a seed fixes the text
    assert trained_gpt.sample(1, seed=1, prompt="the ", length=40) != out[:1]
    assert len(trained_gpt.sample(1, seed=0, length=10)[0]) == 10  # no prompt: the text alone


def test_top_1_and_near_zero_temperature_equal_greedy(trained_gpt):
    greedy = trained_gpt.sample(2, seed=0, prompt="the d", length=60, greedy=True)
    assert greedy[0] == greedy[1]
    assert trained_gpt.sample(2, seed=5, prompt="the d", length=60, top_k=1) == greedy
    assert trained_gpt.sample(2, seed=5, prompt="the d", length=60, temperature=1e-4) == greedy
    assert trained_gpt.sample(2, seed=5, prompt="the d", length=60, temperature=0) == greedy
    assert trained_gpt.sample(2, seed=5, prompt="the d", length=60, top_p=1e-6) == greedy


def test_top_k_restricts_the_next_character_to_the_k_likeliest(trained_gpt):
    untrained = make_trainer("char_gpt", stream_data())  # flat probabilities: top-k matters
    top2 = {ch for ch, _ in untrained.next_char_probs("the c")[:2]}
    firsts = {s[len("the c")] for s in untrained.sample(200, seed=0, prompt="the c", length=1, top_k=2)}
    assert firsts <= top2 and len(firsts) == 2
    everything = {s[len("the c")] for s in untrained.sample(200, seed=0, prompt="the c", length=1)}
    assert len(everything) > 2


def test_temperature_sharpens_and_flattens_the_next_character_probabilities(trained_gpt):
    base = trained_gpt.next_char_probs("the ca", 1.0)
    cold = trained_gpt.next_char_probs("the ca", 0.5)
    hot = trained_gpt.next_char_probs("the ca", 2.0)
    assert len(base) == 10 and [p for _, p in base] == sorted((p for _, p in base), reverse=True)
    assert cold[0][0] == base[0][0] == hot[0][0]
    assert cold[0][1] > base[0][1] > hot[0][1]
    assert trained_gpt.next_char_probs("the ca", 0.0)[0][1] == 1.0


def test_stream_yields_the_same_characters_as_sample(trained_gpt):
    streamed = "".join(trained_gpt.stream("the ", length=50, seed=2, temperature=0.9, top_k=5))
    assert "the " + streamed == trained_gpt.sample(1, seed=2, prompt="the ", length=50, temperature=0.9, top_k=5)[0]


def test_bad_sampling_settings_are_user_errors(trained_gpt):
    for knobs in (dict(temperature=-1), dict(top_p=0), dict(top_k=-2), dict(length=0), dict(colour="red")):
        with pytest.raises(UserError):
            trained_gpt.sample(1, 0, prompt="the ", **knobs)


def test_line_mode_returns_whole_items_and_marks_copies():
    trainer = make_trainer("char_gpt", names_data(), batch_size=22)
    train(trainer, 150)
    items = trainer.sample(20, seed=0, temperature=0.5)
    assert all(item and "\n" not in item and len(item) <= 8 for item in items)
    copies = trainer.mark_copies(items)
    assert sum(copies) >= 10  # a memorised list mostly reproduces names it saw
    assert tm.mark_copies(["anna", "annx", "ulla"], trainer.train_text) == [True, False, False]  # ulla is validation
    assert all(item.startswith("ca") for item in trainer.sample(3, seed=0, prompt="ca"))
    streamed = "".join(trainer.stream("", seed=1, temperature=0.5))
    assert streamed == trainer.sample(1, seed=1, temperature=0.5)[0]
    probs = dict(trainer.next_char_probs("carla"))
    assert max(probs, key=probs.get) == tm.EOS


# ---- checkpoints and registry --------------------------------------------------

def test_checkpoint_round_trip_restores_the_model_and_its_vocabulary(tmp_path, trained_gpt):
    path = save_checkpoint(tmp_path, 120, trained_gpt.state())
    state, _ = load_state(path)
    assert state["extra"]["vocab"] == trained_gpt.vocab.tokens and state["extra"]["step_count"] == 120
    fresh = make_trainer("char_gpt", stream_data(), seed=9)
    fresh.load_state(state, weights_only=True)
    assert fresh.sample(1, 3, prompt="the ", length=40) == trained_gpt.sample(1, 3, prompt="the ", length=40)


def test_text_models_are_registered_with_valid_presets():
    names = {spec.name for spec in models_for("text", TextData("t", STREAM).summary())}
    assert names == {"bigram", "char_lstm", "char_gpt"}
    for name in names:
        spec = get_model(name)
        assert spec.family == "text" and {"Quick", "Standard"} <= set(spec.presets)
        for preset in spec.presets.values():
            cfg = from_dict(spec.config_cls, preset["model"])
            assert cfg.lr_decay_steps == preset["train"]["steps"]
    assert get_model("char_gpt").fits({"kind": "text", "count": 20}) is not None
    for info in list_datasets("text"):
        if info.builtin:
            assert {spec.name for spec in models_for("text", info.summary)} == names, info.name
