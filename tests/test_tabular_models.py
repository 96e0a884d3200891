"""Tabular generators: encodings, sampled tables, conditions, checkpoints, runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from aigc_core.config import from_dict
from aigc_core.data.base import TableData
from aigc_core.errors import UserError
from aigc_core.models import tabular as tm
from aigc_core.registry import get_model
from aigc_core.runs.checkpoint import load_state, save_checkpoint

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These networks are tiny: one thread is as fast as two on a quiet machine
    and many times faster on a busy one (threads waiting on each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
TINY = {
    "tab_gan": dict(hidden=32, layers=1, noise_dim=8, batch_size=20, pac=5, lr_g=2e-3, lr_d=2e-3),
    "tab_vae": dict(hidden=32, layers=1, latent_dim=4, batch_size=20, lr=2e-3),
}
TYPES = {"views": "numeric", "minutes": "numeric", "device": "categorical", "bought": "boolean"}


def shop(rows: int = 200, seed: int = 0) -> TableData:
    """Whole-number views, one-decimal minutes, a rare device, and a purchase
    that follows the views."""
    rng = np.random.default_rng(seed)
    views = rng.poisson(4, rows) + 1
    frame = pd.DataFrame({
        "views": views.astype("int64"),
        "minutes": np.round(views * rng.uniform(0.5, 1.5, rows), 1),
        "device": rng.choice(["mobile", "desktop", "tablet"], rows, p=[0.6, 0.34, 0.06]),
        "bought": rng.random(rows) < views / 12,
    })
    return TableData("shop", frame, dict(TYPES), label_column="bought")


def make(model: str, data: TableData | None = None, seed: int = 0, **overrides):
    spec = get_model(model)
    return spec.trainer_cls(from_dict(spec.config_cls, {**TINY[model], **overrides}), data or shop(), CPU, seed)


def train(trainer, steps: int):
    trainer.train_mode(True)
    for _ in range(steps):
        out = trainer.step()
    trainer.train_mode(False)
    return {k: float(v) for k, v in out.items()}


# ---- encoding ---------------------------------------------------------------------------

def test_the_output_activation_does_each_span_as_written_in_one_pass():
    """tanh for mixture values, identity for quantile values, a Gumbel draw per
    category block in order: the same numbers span by span as in one pass."""
    from aigc_core.data.table_encoder import Span
    from aigc_core.models.tabular.networks import activate, gumbel_softmax, sample_one_hot

    spans = [Span("a", "value", 0, 1, "tanh"), Span("a", "mode", 1, 3, "softmax"), Span("b", "value", 4, 1, "linear"),
             Span("c", "category", 5, 4, "softmax"), Span("d", "value", 9, 1, "linear"), Span("e", "value", 10, 1, "tanh")]
    raw = torch.randn(7, 11, generator=torch.Generator().manual_seed(0))
    for hard in (False, True):
        gen = torch.Generator().manual_seed(1)
        want = []
        for s in spans:
            block = raw[:, s.start:s.stop]
            if s.activation == "softmax":
                want.append(sample_one_hot(block, gen) if hard else gumbel_softmax(block, 0.2, gen))
            else:
                want.append(torch.tanh(block) if s.activation == "tanh" else block)
        got = activate(raw, spans, 0.2, torch.Generator().manual_seed(1), hard)
        torch.testing.assert_close(got, torch.cat(want, 1), rtol=0, atol=0)
    numbers = [Span(c, "value", i, 1, "linear") for i, c in enumerate("xyz")]
    assert torch.equal(activate(raw[:, :3], numbers, 0.2, torch.Generator()), raw[:, :3])  # numbers only


def test_the_quantile_encoding_decodes_back_to_the_same_table():
    frame = shop().frame
    encoder = tm.TableEncoder.fit(frame, TYPES, "quantile")
    encoded = encoder.encode(frame)
    assert encoded.shape == (200, 2 + 3 + 2) and np.abs(encoded[:, :2]).max() < 4
    pd.testing.assert_frame_equal(encoder.decode(encoded), frame, check_dtype=True)


def test_the_mixture_encoding_gives_each_number_a_mode_and_a_position_in_it():
    frame = shop().frame
    encoder = tm.TableEncoder.fit(frame, TYPES, "gmm", max_modes=5)
    spans = {(s.column, s.kind): s for s in encoder.spans}
    encoded = encoder.encode(frame)
    modes = encoded[:, spans[("minutes", "mode")].start:spans[("minutes", "mode")].stop]
    assert np.all(modes.sum(1) == 1) and np.abs(encoded[:, spans[("minutes", "value")].start]).max() < 1
    back = encoder.decode(encoded)
    assert (back["views"] == frame["views"]).mean() > 0.95
    assert np.abs(back["minutes"] - frame["minutes"]).max() < 0.5
    assert (back["device"] == frame["device"]).all() and (back["bought"] == frame["bought"]).all()


def test_the_encoder_survives_a_json_and_tensor_round_trip():
    frame = shop().frame
    encoder = tm.TableEncoder.fit(frame, TYPES, "gmm", max_modes=4)
    state = encoder.state()
    assert all(isinstance(v, (torch.Tensor, str, bool, int, float, list)) for col in state for v in col.values())
    again = tm.TableEncoder.from_state(state)
    np.testing.assert_array_equal(again.encode(frame), encoder.encode(frame))


# ---- sampled tables ------------------------------------------------------------------------

@pytest.mark.parametrize("model, encoding", [("tab_gan", "quantile"), ("tab_gan", "gmm"), ("tab_vae", "quantile"),
                                             ("tab_vae", "gmm")])
def test_sampled_rows_keep_the_column_names_types_and_ranges(model, encoding):
    data = shop()
    trainer = make(model, data, numeric_encoding=encoding, max_modes=4)
    train(trainer, 30)
    rows = trainer.sample(500, seed=1)
    real = data.frame
    assert list(rows.columns) == list(real.columns) and len(rows) == 500
    assert rows["views"].dtype == np.int64 and rows["bought"].dtype == bool
    assert rows["minutes"].dtype == np.float64 and np.allclose(rows["minutes"], rows["minutes"].round(1))
    for col in ("views", "minutes"):
        assert real[col].min() <= rows[col].min() and rows[col].max() <= real[col].max()
    assert set(rows["device"]) <= set(real["device"])


def test_the_same_seed_gives_the_same_rows():
    trainer = make("tab_gan")
    train(trainer, 10)
    pd.testing.assert_frame_equal(trainer.sample(50, seed=3), trainer.sample(50, seed=3))
    assert not trainer.sample(50, seed=3).equals(trainer.sample(50, seed=4))


def test_sampling_asks_for_values_in_the_real_proportions():
    trainer = make("tab_gan")
    rows = trainer.sample(1000, seed=0)
    share = rows["bought"].mean()
    assert abs(share - trainer.real_train["bought"].mean()) < 0.01  # the condition column follows the real shares


# ---- conditions ---------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["tab_gan", "tab_vae"])
def test_conditional_sampling_returns_only_the_asked_value(model):
    trainer = make(model)
    train(trainer, 30)
    assert trainer.cond_column == "bought"  # the label column by default
    assert trainer.sample(300, seed=0, condition={"bought": True})["bought"].all()
    assert not trainer.sample(300, seed=0, condition={"bought": "no"})["bought"].any()
    # another category column: rows are made until enough have the value
    tablets = trainer.sample(40, seed=0, condition={"device": "tablet"})
    assert len(tablets) == 40 and (tablets["device"] == "tablet").all()


def test_conditioning_on_a_chosen_column_learns_its_rare_value():
    trainer = make("tab_gan", condition_column="device")
    assert trainer.cond_column == "device"
    counts = np.bincount(trainer.encoder.category_index(trainer.cond_info, trainer.real_train["device"]))
    weights = trainer.cond_train_p.numpy()
    # training by sampling: log(1 + count) weights draw the rare tablet far above its real share
    assert weights[trainer.cond_info["categories"].index("tablet")] > 3 * counts.min() / counts.sum()
    rows = trainer.sample(100, seed=0, condition={"device": "tablet"})
    assert (rows["device"] == "tablet").all()


@pytest.mark.parametrize("condition, message", [
    ({"colour": "red"}, "cannot fix column 'colour'"),
    ({"views": 3}, "only categorical or yes/no columns can be fixed"),
    ({"device": "phone"}, "'device' has no value 'phone'; its values are desktop, mobile, tablet"),
    ({"bought": "maybe"}, "'bought' is a yes/no column"),
])
def test_impossible_conditions_are_refused_plainly(condition, message):
    with pytest.raises(UserError, match=message):
        make("tab_gan").sample(10, seed=0, condition=condition)


def test_numeric_or_unknown_condition_columns_are_refused():
    with pytest.raises(UserError, match="'views' is numeric"):
        make("tab_gan", condition_column="views")
    with pytest.raises(UserError, match="not in the table"):
        make("tab_gan", condition_column="price")
    assert make("tab_gan", condition_column="none").cond_column is None


def test_tables_a_model_cannot_learn_from_are_refused():
    one_col = TableData("one", pd.DataFrame({"x": np.arange(50.0)}), {"x": "numeric"})
    with pytest.raises(UserError, match="at least two columns"):
        make("tab_gan", one_col)
    with pytest.raises(UserError, match="at least 20 are needed"):
        make("tab_gan", shop(rows=10))
    with pytest.raises(UserError, match="multiple of the packing"):
        make("tab_gan", batch_size=22)


# ---- training --------------------------------------------------------------------------------

def test_a_gan_step_reports_finite_critic_generator_and_penalty_terms():
    out = train(make("tab_gan"), 5)
    assert {"loss_d", "loss_g", "wasserstein", "gradient_penalty", "condition_ce"} <= set(out)
    assert all(np.isfinite(v) for v in out.values()) and out["gradient_penalty"] >= 0


def test_the_moment_gap_is_near_zero_for_real_rows_and_grows_when_a_value_s_columns_shift():
    trainer = make("tab_gan", moment_weight=1.0)
    # every training row, with its own condition value: the real means and spreads exactly
    values = trainer.encoder.category_index(trainer.cond_info, trainer.real_train[trainer.cond_column])
    idx = torch.tensor(values, dtype=torch.long)
    # as the real batches show them (ties drawn anew within their share of F): 400 draws of every row
    draws = 400
    rows = torch.arange(len(idx)).repeat(draws)
    trainer.gen.manual_seed(0)
    drawn = trainer.encoded[rows].clone()
    jitter = torch.rand(len(rows), len(trainer.q_cols), generator=trainer.gen)
    drawn[:, trainer.q_cols] = torch.special.ndtri((trainer.q_low[rows] + jitter * trainer.q_width[rows]).clamp(1e-4, 1 - 1e-4))
    assert float(trainer.moment_gap(idx.repeat(draws), drawn)) == pytest.approx(0.0, abs=2e-3)
    idx = idx.repeat(draws)
    shifted = drawn.clone()
    shifted[idx == 0, 0] += 2.0                            # one value's first column moved by 2
    groups = int((torch.bincount(idx) > 1).sum())
    trainer._reset_moment_averages()                       # a first batch sets the running averages
    assert float(trainer.moment_gap(idx, shifted)) == pytest.approx(4.0 / groups, rel=1e-2)
    trainer._reset_moment_averages()
    # same means and spreads per value, but "minutes" no longer follows "views": the covariance term sees it
    shuffled = drawn.clone()
    for value in idx.unique():
        rows = torch.nonzero(idx == value).squeeze(1)
        shuffled[rows, 1] = shuffled[rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))], 1]
    assert float(trainer.moment_gap(idx, shuffled)) > 0.01


def test_the_moment_gap_averages_small_batches_instead_of_rewarding_narrow_ones():
    """Real rows in batches of 4 a value: one batch's spread and covariance
    are far from the real ones (the old batch gap rewarded a narrower
    generator), but their running averages come close, and the gradient
    pushes a too-narrow batch wider."""
    trainer = make("tab_gan", moment_weight=1.0)

    def batch():
        idx = torch.arange(trainer.cond_dim).repeat_interleave(4)
        return idx, trainer.real_batch(idx, len(idx))

    first = float(trainer.moment_gap(*batch()))
    for _ in range(1500):
        last = float(trainer.moment_gap(*batch()))
    assert first > 1.0 and last < 0.25 * first
    cols = torch.tensor(trainer.q_cols)                 # the numbers

    def narrow():                                        # each value's numbers drawn at half their spread
        idx, rows = batch()
        centre = torch.stack([rows[idx == v][:, cols].mean(0) for v in range(trainer.cond_dim)])[idx]
        rows[:, cols] = centre + 0.5 * (rows[:, cols] - centre)
        return idx, rows, rows[:, cols] - centre

    trainer._reset_moment_averages()
    for _ in range(300):                                 # a generator that stays too narrow
        trainer.moment_gap(*narrow()[:2])
    idx, rows, centred = narrow()
    rows.requires_grad_(True)
    trainer.moment_gap(idx, rows).backward()
    assert float((rows.grad[:, cols] * centred).sum()) < 0   # descending the gap widens the rows


def test_the_real_moments_are_those_of_the_tie_draws_the_batches_make():
    trainer = make("tab_gan", moment_weight=1.0)
    mean, square = trainer._row_moments()
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([trainer.encoded.clone() for _ in range(2000)])   # (2000, N, D)
    u = trainer.q_low + torch.rand(draws.shape[:2] + (len(trainer.q_cols),), generator=gen) * trainer.q_width
    draws[:, :, trainer.q_cols] = torch.special.ndtri(u.clamp(1e-4, 1 - 1e-4))
    assert float((draws.mean(0) - mean).abs().mean()) < 0.01
    assert float((draws.pow(2).mean(0) - square).abs().mean()) < 0.02
    once = trainer.q_width.squeeze() if trainer.q_width.dim() == 1 else trainer.q_width
    single = (once < 1e-6)                                                 # a value seen once: a point
    np.testing.assert_allclose(mean[:, trainer.q_cols][single], trainer.encoded[:, trainer.q_cols][single], atol=1e-4)


def test_moment_matching_is_logged_and_off_by_default():
    assert train(make("tab_gan"), 2)["moment_gap"] == 0.0
    out = train(make("tab_gan", moment_weight=1.0), 3)
    assert out["moment_gap"] > 0 and np.isfinite(out["loss_g"])


def test_the_gradient_penalty_is_zero_for_a_critic_with_unit_slope_per_pack():
    trainer = make("tab_gan", pac=1, dropout=0.0)
    width = trainer.data_dim + trainer.cond_dim
    critic = torch.nn.Linear(width, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.ones(1, width) / width**0.5)  # ||grad|| = 1 everywhere
    trainer.D = critic
    real, fake = torch.randn(20, width), torch.randn(20, width)
    assert float(trainer.gradient_penalty(real, fake).detach()) == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        critic.weight.mul_(3.0)                                 # ||grad|| = 3: penalty (3 - 1)^2
    assert float(trainer.gradient_penalty(real, fake).detach()) == pytest.approx(4.0, rel=1e-5)


def test_the_learning_rates_follow_a_cosine_to_a_tenth_and_resume_where_they_were(tmp_path):
    trainer = make("tab_gan", lr_decay_steps=10, lr_g=1e-3, lr_d=2e-3)
    train(trainer, 5)
    assert trainer.lr_scale() == pytest.approx(0.55)                 # half-way: 0.1 + 0.9 * (1 + cos(pi / 2)) / 2
    # the schedule (a torch LRScheduler) has set the sixth step's rate: progress 5/10
    assert trainer.optims["D"].param_groups[0]["lr"] == pytest.approx(2e-3 * 0.55)
    assert trainer.schedules[1].last_epoch == 5
    path = save_checkpoint(tmp_path, 5, trainer.state())
    again = make("tab_gan", lr_decay_steps=10, lr_g=1e-3, lr_d=2e-3)
    again.load_state(load_state(path)[0])
    assert again.steps_done == 5
    assert again.optims["D"].param_groups[0]["lr"] == pytest.approx(2e-3 * 0.55)
    train(again, 10)
    assert again.lr_scale() == pytest.approx(0.1)
    assert again.optims["G"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert make("tab_gan").lr_scale() == 1.0                         # 0 = constant


def test_a_training_step_runs_on_one_thread_and_gives_the_others_back():
    trainer = make("tab_gan")
    seen, inner = [], trainer.train_step
    trainer.train_step = lambda: (seen.append(torch.get_num_threads()), inner())[1]
    torch.set_num_threads(2)
    try:
        trainer.step()
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_the_vae_loss_falls_as_it_learns():
    trainer = make("tab_vae")
    first = train(trainer, 1)["loss"]
    assert train(trainer, 80)["loss"] < first


# ---- checkpoints ------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["tab_gan", "tab_vae"])
def test_a_checkpoint_brings_back_the_same_generator_and_encoding(model, tmp_path):
    trainer = make(model, numeric_encoding="gmm", max_modes=3)
    train(trainer, 15)
    path = save_checkpoint(tmp_path, 15, trainer.state())
    assert path.suffix == ".safetensors"
    torch.manual_seed(123)
    fresh = make(model, numeric_encoding="gmm", max_modes=3)  # untrained, other starting weights
    fresh.train_mode(False)
    assert not fresh.sample(100, seed=5).equals(trainer.sample(100, seed=5))
    fresh.load_state(load_state(path)[0], weights_only=True)
    np.testing.assert_array_equal(fresh.train_rows, trainer.train_rows)
    pd.testing.assert_frame_equal(fresh.sample(100, seed=5), trainer.sample(100, seed=5))


def test_a_checkpoint_for_another_table_is_refused(tmp_path):
    trainer = make("tab_gan")
    path = save_checkpoint(tmp_path, 1, trainer.state())
    other = shop()
    other.frame["device"] = other.frame["device"].replace("tablet", "tv")
    other.frame.loc[0, "device"] = "console"  # one category more: a wider encoding
    with pytest.raises(UserError, match="different columns or categories"):
        make("tab_gan", other).load_state(load_state(path)[0], weights_only=True)


# ---- clumps and the z-score encoding ---------------------------------------------------------

def measurements(rows: int = 400, seed: int = 0, clumps: bool = True) -> TableData:
    """Two classes of continuous measurements: with ``clumps`` each class is
    two well-apart clusters (the blobs of the bench), else one."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 2, rows)
    side = rng.integers(0, 2, rows) if clumps else np.zeros(rows, dtype=int)
    centre = np.stack([cls * 1.0, side * 6.0 - 3.0 * clumps, np.zeros(rows)], 1)
    x = centre + rng.normal(size=(rows, 3))
    frame = pd.DataFrame(x.round(4), columns=["a", "b", "c"])
    frame["c"] = frame["a"] + frame["b"]           # a column that is the sum of two others
    frame["kind"] = np.where(cls == 1, "yes", "no")
    return TableData("measurements", frame, {"a": "numeric", "b": "numeric", "c": "numeric", "kind": "categorical"},
                     label_column="kind")


def test_the_auto_encoding_z_scores_measurements_and_quantile_maps_counts_and_skewed_columns():
    from aigc_core.data.table_encoder import auto_encoding

    rng = np.random.default_rng(0)
    assert auto_encoding(rng.normal(size=500)) == "standard"
    assert auto_encoding(rng.poisson(3, 500).astype(float)) == "quantile"        # ties
    assert auto_encoding(rng.lognormal(0, 1, 500)) == "quantile"                  # skew about 6
    frame = measurements().frame
    encoder = tm.TableEncoder.fit(frame, measurements().column_types, "auto")
    assert [c["encoding"] for c in encoder.columns[:3]] == ["standard"] * 3
    encoded = encoder.encode(frame)
    # z-scores keep the sum a straight line: c's code is a fixed mix of a's and b's
    fit = np.linalg.lstsq(np.c_[encoded[:, :2], np.ones(len(frame))], encoded[:, 2], rcond=None)
    assert fit[1][0] / len(frame) < 1e-6
    pd.testing.assert_frame_equal(encoder.decode(encoded)[["a", "b", "c"]], frame[["a", "b", "c"]], atol=1e-4)
    again = tm.TableEncoder.from_state(encoder.state())
    np.testing.assert_allclose(again.encode(frame), encoded)


def test_g_means_finds_two_clumps_where_there_are_two_and_one_where_there_is_one():
    from aigc_core.models.tabular.trainer import split_clumps

    rng = np.random.default_rng(0)
    one = rng.normal(size=(300, 6))
    two = np.r_[rng.normal(size=(150, 6)), rng.normal(size=(150, 6)) + 5.0]
    assert len(split_clumps(one, 4, 0)) == 1
    centres = split_clumps(two, 4, 0)
    assert len(centres) == 2 and sorted(np.round(centres.mean(1))) == [0.0, 5.0]
    assert len(split_clumps(two[:50], 4, 0)) == 1                       # too few rows to split
    assert len(split_clumps(np.r_[two, rng.normal(size=(150, 6)) - 5.0], 2, 0)) == 2   # at most `most`


def test_clusters_split_each_value_into_its_clumps_and_the_gan_is_told_the_clump():
    data = measurements()
    trainer = make("tab_gan", data, clusters=4, numeric_encoding="auto", moment_weight=1.0)
    assert (trainer.cluster_p > 0).sum(1).tolist() == [2, 2]          # two clumps in each class, found
    assert trainer.G.body[0].fc.in_features == 8 + 2 + 4                # noise, class, clump slot
    for group in range(8):                                              # a clump's real rows are its own
        start, count = int(trainer.group_start[group]), int(trainer.group_count[group])
        rows = trainer.rows_by_group[start:start + count]
        assert (torch.tensor(trainer.row_cluster)[rows] == group % 4).all()
    out = train(trainer, 5)
    assert np.isfinite(out["loss_g"]) and out["moment_gap"] > 0
    assert trainer.real_mean.shape[0] == 2 * 4                          # moments per class and clump
    rows = trainer.sample(300, seed=1)
    assert list(rows.columns) == ["a", "b", "c", "kind"] and len(rows) == 300
    whole = make("tab_gan", measurements(clumps=False), clusters=4, numeric_encoding="auto")
    assert (whole.cluster_p > 0).sum(1).tolist() == [1, 1]
    # the shop's counts: no measurements for the test to judge, so each value is split untested
    # (bisecting k-means) wherever both halves keep MIN_CLUSTER_ROWS rows
    from aigc_core.models.tabular.config import MIN_CLUSTER_ROWS
    counts = make("tab_gan", clusters=4)
    sizes = np.bincount(counts.moment_values, minlength=2 * 4).reshape(2, 4)
    assert ((sizes == 0) | (sizes >= MIN_CLUSTER_ROWS)).all()
    assert (sizes > 0).sum() > 2                                        # some value split
    assert ((sizes > 0).sum(1) <= 1)[sizes.sum(1) < 2 * MIN_CLUSTER_ROWS].all()  # too few rows: whole


def test_a_clustered_checkpoint_keeps_its_clumps_and_a_mismatched_setting_is_refused(tmp_path):
    data = measurements()
    trainer = make("tab_gan", data, clusters=4, numeric_encoding="auto")
    train(trainer, 5)
    path = save_checkpoint(tmp_path, 5, trainer.state())
    fresh = make("tab_gan", data, seed=3, clusters=4, numeric_encoding="auto")
    fresh.load_state(load_state(path)[0], weights_only=True)
    np.testing.assert_array_equal(fresh.cluster_centres, trainer.cluster_centres)
    pd.testing.assert_frame_equal(fresh.sample(100, seed=5), trainer.sample(100, seed=5))
    with pytest.raises(UserError, match="Clusters per value' to 4"):
        make("tab_gan", data, clusters=2, numeric_encoding="auto").load_state(load_state(path)[0], weights_only=True)
    with pytest.raises(UserError, match="without clusters"):
        plain = save_checkpoint(tmp_path / "plain", 1, make("tab_gan", data, numeric_encoding="auto").state())
        make("tab_gan", data, clusters=4, numeric_encoding="auto").load_state(load_state(plain)[0], weights_only=True)


# ---- runs: command line and evaluation ------------------------------------------------------------

@pytest.fixture(scope="module")
def table_run():
    from tests.tiny_runs import finished, tiny_table

    return finished("tab_gan", tiny_table(), steps=20, hidden=32, layers=1, noise_dim=8, batch_size=20, pac=5)


def test_a_finished_table_run_stores_its_report_numbers(table_run):
    assert table_run.status == "completed"
    final = table_run.final_metrics
    for key in ("fidelity", "tstr_accuracy_ratio", "dcr_median", "exact_copy_rate"):
        assert key in final and np.isfinite(final[key])


def test_sampling_a_table_run_from_the_command_line_writes_a_csv(table_run, tmp_path, capsys):
    from aigc_core.cli import main

    out = tmp_path / "rows.csv"
    assert main(["sample", "--run", table_run.id, "-n", "25", "--out", str(out), "--set", "condition=buy=yes"]) == 0
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["views", "time", "buy"] and len(rows) == 25
    assert rows["buy"].all() and rows["views"].dtype == np.int64
    assert "wrote 25 samples" in capsys.readouterr().out


def test_eval_of_a_table_run_prints_its_report_numbers_as_json(table_run, capsys):
    import json

    from aigc_core.cli import main

    assert main(["eval", "--run", table_run.id, "-n", "200", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("fidelity", "tstr_accuracy_ratio", "dcr_median", "exact_copy_rate"):
        assert isinstance(result[key], float) and np.isfinite(result[key]), key


def test_evaluating_a_table_run_gives_the_documented_numbers(table_run):
    from aigc_core.metrics.tabular import report_scores
    from aigc_core.sample import load_for_sampling

    trainer, run, _ = load_for_sampling(table_run.id)
    scores = report_scores(trainer.report(200, 0))
    assert scores["rows_synth"] == 200.0 and scores["rows_real"] == len(trainer.real_train)
    for key in ("fidelity", "column_shapes", "pair_trends", "trtr_accuracy", "tstr_accuracy", "tstr_accuracy_ratio",
                "tstr_accuracy_ratio_lr", "tstr_accuracy_ratio_rf", "aug_uplift", "dcr_median", "exact_copy_rate"):
        assert isinstance(scores[key], float), key
    assert 0 <= scores["fidelity"] <= 1 and 0 <= scores["exact_copy_rate"] <= 1


def test_the_bench_trains_within_its_time_limit_and_scores_on_held_out_rows():
    from aigc_core.benchmarks import tabular as bench

    result = bench.one_model("tab_gan", shop(), seed=0, overrides=TINY["tab_gan"], seconds=0.5)
    assert result["fit_s"] < 1.5 and result["steps"] >= 1
    assert 0 <= result["tstr_ratio"] <= 2 and 0 < result["fidelity"] <= 1
    assert result["tstr_ratio"] == pytest.approx((result["tstr_ratio_lr"] + result["tstr_ratio_rf"]) / 2)


@pytest.mark.slow
@pytest.mark.parametrize("table", ["iris", "ecommerce"])
def test_the_quick_gan_teaches_classifiers_at_least_095_of_what_real_rows_do(table, request):
    """The issue's target, at most 30 s of training (about 15-25 s each on a 2-core CPU)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("up to 30 s of training; run with -m slow")
    from aigc_core.benchmarks import tabular as bench
    from aigc_core.data.catalog import load_dataset

    result = bench.one_model("tab_gan", load_dataset(table), seed=0)
    assert result["fit_s"] <= bench.MAX_SECONDS + 1
    assert result["tstr_ratio"] >= 0.95
