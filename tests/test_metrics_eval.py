"""Every run ends with its quality numbers, ``eval --json`` prints them, and
each number a run can carry is explained."""

from __future__ import annotations

import json
import time

import pytest

from aigc_core import bakeoff, cli
from aigc_core.metrics import features
from aigc_core.metrics.labels import METRIC_INFO
from aigc_core.train import evaluate
from aigc_core.train.evaluate import end_of_run_metrics, evaluate_run
from aigc_core.runs.store import RunStore
from aigc_core.sample import load_for_sampling
from tests.tiny_runs import finished, tiny_images, tiny_lines, vae_run

TRAINING_KEYS = {"loss", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm", "grad_norm_d", "grad_norm_g", "recon",
                 "kl", "lr", "step_time_ms", "samples_per_s", "weight_error"}
IMAGE_KEYS = {"fid", "kid", "precision", "recall", "density", "coverage", "copy_rate", "recognised", "classes_covered"}


def explained(keys) -> None:
    for key in keys:
        info = METRIC_INFO[key]
        assert info["label"] and info["better"] in ("lower", "higher", None), key
        assert info["how"].rstrip().endswith((".", "?")), key


@pytest.fixture(scope="module")
def gan_on_digits():
    """An MLP GAN trained briefly on the 8 x 8 digits (enough images for a feature net)."""
    return finished("mlp_gan", "digits", 30, width=32, batch_size=32)


def test_eval_json_prints_the_image_scores_and_stores_them_on_the_run(gan_on_digits, capsys):
    assert cli.main(["eval", "--run", gan_on_digits.id, "-n", "300", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert IMAGE_KEYS <= set(result)
    assert all(isinstance(v, float) for v in result.values())
    assert 0 <= result["precision"] <= 1 and 0 <= result["copy_rate"] <= 1 and result["fid"] >= 0
    run = RunStore().get(gan_on_digits.id)
    assert {k: run.final_metrics[k] for k in result} == result
    assert "loss_d" in run.final_metrics  # merged, not replaced
    explained(result)


def test_the_same_run_and_seed_give_the_same_numbers(gan_on_digits):
    first, second = evaluate_run(gan_on_digits.id, n=250), evaluate_run(gan_on_digits.id, n=250)
    assert first == second


def test_a_short_run_ends_without_feature_scores_but_with_copy_detection(gan_on_digits):
    # 30 steps in well under 5 s: training a feature net at the end would cost more than the run
    final = RunStore().get(gan_on_digits.id).final_metrics
    assert "copy_rate" in final
    assert features.cached_feature_net(load_for_sampling(gan_on_digits.id)[0].data) is not None  # from eval above
    assert evaluate.SHORT_RUN_STEPS > 30


def test_a_tiny_image_run_gets_copy_detection_only_and_stays_quick():
    run = finished("dcgan", tiny_images(), 10, ngf=8, ndf=8, nz=16, batch_size=8)
    assert run.status == "completed"
    assert "copy_rate" in run.final_metrics and "fid" not in run.final_metrics
    trainer, run, _ = load_for_sampling(run.id)
    t0 = time.perf_counter()
    scores = end_of_run_metrics(run, trainer)
    assert time.perf_counter() - t0 < 2.0 and set(scores) == {"copy_rate", "copy_distance"}


def test_a_vae_run_ends_with_elbo_reconstruction_error_psnr_and_ssim():
    run = vae_run()
    final = run.final_metrics
    assert {"elbo", "recon_error", "psnr", "ssim", "val_elbo", "copy_rate"} <= set(final)
    assert final["elbo"] < 0 and 0 < final["recon_error"] < 1 and final["psnr"] > 0 and -1 <= final["ssim"] <= 1
    # one fixed draw of the code, beta = 1 and the BCE likelihood: the same bound the trainer reports
    assert final["elbo"] == pytest.approx(final["val_elbo"], rel=1e-4)
    explained({"elbo", "recon_error", "psnr", "ssim", "val_elbo"})


def test_an_autoencoder_has_reconstruction_scores_but_no_elbo():
    run = finished("ae", tiny_images(), 10, hidden=32, latent_dim=4, batch_size=8)
    assert {"recon_error", "psnr", "ssim"} <= set(run.final_metrics) and "elbo" not in run.final_metrics


def test_a_text_run_ends_with_bits_per_character_copies_and_distinct_ngrams():
    run = finished("bigram", tiny_lines(), 20)
    final = run.final_metrics
    assert {"val_bpc", "val_perplexity", "copy_share", "distinct_ngrams", "distinct_ngrams_real"} <= set(final)
    assert 0 <= final["copy_share"] <= 1 and 0 < final["distinct_ngrams"] <= 1
    explained({"val_bpc", "val_perplexity", "copy_share", "distinct_ngrams", "distinct_ngrams_real"})


def test_a_text_generator_that_returns_training_lines_has_a_copy_share_of_one():
    from aigc_core.metrics.text import text_scores

    train_text = "\n".join(f"name{i:03d}" for i in range(300))
    held = [f"held{i:03d}" for i in range(30)]
    parroted = train_text.split("\n")[:200]
    assert text_scores(parroted, held, train_text)["copy_share"] == 1.0


def test_distinct_ngrams_are_low_for_text_that_repeats_itself():
    from aigc_core.metrics.text import distinct_ngrams

    assert distinct_ngrams(["ab" * 200]) < 0.01
    assert distinct_ngrams(["the quick brown fox jumps over the lazy dog"]) > 0.9
    assert distinct_ngrams(["ab", ""]) != distinct_ngrams(["ab", ""])  # no 3-grams at all: nan, left out of runs


def test_a_points_run_ends_with_precision_recall_density_and_coverage():
    run = finished("tiny_line", "tiny_points", 20)
    assert {"precision", "recall", "density", "coverage"} <= set(run.final_metrics)


def test_every_number_a_run_ends_with_is_explained():
    """Quality numbers here; the numbers models log while training in the
    bake-off's table (the pages read both through bakeoff.metric_info)."""
    info = bakeoff.metric_info()
    for run in RunStore().list():
        explained(k for k in run.final_metrics if k not in TRAINING_KEYS)
        if run.model != "tiny_line":  # the test plugin's own numbers are not the studio's
            assert set(run.final_metrics) <= set(info), (run.model, set(run.final_metrics) - set(info))


def test_the_tabular_report_scores_are_explained():
    from aigc_core.metrics.tabular import report_scores, tabular_report
    import pandas as pd

    frame = pd.DataFrame({"x": range(60), "y": [i % 3 for i in range(60)], "c": ["a", "b"] * 30})
    types = {"x": "numeric", "y": "numeric", "c": "categorical"}
    scores = report_scores(tabular_report(frame[:40], frame[40:], frame[:40], types, label="c"))
    explained(scores)


def test_the_bakeoff_and_the_pages_take_their_explanations_and_feature_note_from_here():
    info = bakeoff.metric_info()
    assert all(info[k] == v for k, v in METRIC_INFO.items())
    assert bakeoff.FEATURE_NOTE is features.FEATURE_NOTE
    assert "same data" in features.FEATURE_NOTE


def test_eval_with_a_bad_sample_count_is_a_one_line_error(capsys):
    run = vae_run(5)
    assert cli.main(["eval", "--run", run.id, "-n", "1"]) == 2
    assert "between 2 and 50000" in capsys.readouterr().err


@pytest.mark.slow
def test_a_model_trained_600_steps_scores_better_than_after_10_steps():  # about a minute of training
    early = finished("mlp_gan", "digits", 10, width=64, batch_size=64)
    late = finished("mlp_gan", "digits", 600, width=64, batch_size=64)
    a, b = evaluate_run(early.id, n=1000), evaluate_run(late.id, n=1000)
    assert b["fid"] < 0.5 * a["fid"] and b["precision"] > a["precision"] + 0.1, (a, b)


def test_bench_quick_times_the_feature_net_and_an_evaluation():
    from aigc_core.benchmarks import metrics as bench

    figures = bench.run(quick=True)
    assert figures["metrics.dataset"] == "digits" and figures["metrics.feature_net_accuracy"] > 0.9
    assert 0 < figures["metrics.eval1000_s"] < 60 and 0 < figures["metrics.feature_net_train_s"] < 60
    assert figures["metrics.real_vs_real_precision"] > 0.8
