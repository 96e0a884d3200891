"""What every shared number is called, which way is better, and how it is
computed: the end-of-run quality numbers (one table for every model) and the
numbers the training loop itself logs for every run.

A model's own logged numbers (losses, D(x), KL, ...) are explained by the
model, on its spec (:attr:`aigc_core.registry.ModelSpec.metrics`);
:func:`aigc_core.registry.metric_info` merges the three.
"""

from __future__ import annotations


def _info(label: str, better: str | None, how: str) -> dict:
    return {"label": label, "better": better, "how": how}


#: logged by the training loop for every run
LOOP_METRICS: dict[str, dict] = {
    "samples_per_s": _info("Training speed (examples/s)", "higher",
                           "Training examples (images, characters, rows) processed per second on this machine."),
    "step_time_ms": _info("Time per step (ms)", "lower", "Wall time of one optimisation step."),
}

_SAME_DATA = " Compare it only between runs on the same data set."


def _info(label: str, better: str | None, how: str) -> dict:
    return {"label": label, "better": better, "how": how}


METRIC_INFO: dict[str, dict] = {
    # ---- images: distribution scores in the data set's feature space
    "fid": _info("FID", "lower",
                 "Fréchet distance between Gaussians fitted to the features of real and generated images (means and "
                 "covariances, in float64); 0 when the two sets look alike to the feature net." + _SAME_DATA),
    "kid": _info("KID", "lower",
                 "Kernel distance (squared MMD with a cubic polynomial kernel) between real and generated features, "
                 "averaged over 100 random subsets; unbiased, so it can dip slightly below 0 for equal sets."
                 + _SAME_DATA),
    "kid_std": _info("KID spread", None, "Standard deviation of KID over its 100 subsets: how much to trust KID's "
                                         "last digits."),
    "precision": _info("Precision", "higher",
                       "Share of generated images whose features fall inside the real data's region (the union of "
                       "balls around each real image reaching its 3rd-nearest real neighbour): are samples realistic?"),
    "recall": _info("Recall", "higher",
                    "Share of real images that fall inside the generated images' region (balls to the 3rd-nearest "
                    "generated neighbour): does the model cover the variety of the data?"),
    "density": _info("Density", "higher",
                     "How many real images' balls contain each generated image, divided by 3 and averaged; about 1 "
                     "when samples are spread like real data, below 1 when they sit off the real data."),
    "coverage": _info("Coverage", "higher",
                      "Share of real images whose ball (to its 3rd-nearest real neighbour) holds at least one "
                      "generated image; like recall but not fooled by a few outlying samples."),
    "recognised": _info("Recognised", "higher",
                        "Share of generated images the data set's classifier puts in one class with at least "
                        "80% confidence (it also learnt a 'none of these' class from noise and blends)."),
    "classes_covered": _info("Classes covered", "higher",
                             "How many different classes the recognised samples belong to (out of the data set's "
                             "classes); a collapsed model makes only a few."),
    "copy_rate": _info("Copy rate", "lower",
                       "Share of samples (up to 1,000) that are closer, pixel by pixel on 16 x 16 thumbnails, to a "
                       "training image than half the median distance from a new real image to its closest "
                       "training image: samples that copy the data instead of making something new."),
    "copy_distance": _info("Distance to closest training image", None,
                           "Median root-mean-square pixel difference (0 to 1, on 16 x 16 thumbnails) between a "
                           "sample and its closest training image; 0 means copies."),
    # ---- VAEs and autoencoders, on the held-out tenth of the images
    "elbo": _info("ELBO (held out, nats)", "higher",
                  "Evidence lower bound on log p(x) per held-out image: the Bernoulli log-likelihood of its pixels "
                  "given one draw of the code, minus the KL divergence of the code from the prior (beta = 1)."),
    "recon_error": _info("Reconstruction error", "lower",
                         "Mean squared pixel difference (0 to 1 scale) between held-out images and their "
                         "reconstructions from the code's mean."),
    "psnr": _info("PSNR (dB)", "higher",
                  "Peak signal-to-noise ratio of the held-out reconstructions: 10 log10(1 / mean squared error); "
                  "every 3 dB halves the error."),
    "ssim": _info("SSIM", "higher",
                  "Structural similarity of held-out images and their reconstructions (local means, contrasts and "
                  "correlations in a sliding window); 1 is identical."),
    "val_elbo": _info("ELBO (held out, as trained)", "higher",
                      "The VAE's own evidence lower bound on the held-out images with its training loss (BCE "
                      "reconstruction only), in nats per image."),
    "val_recon": _info("Held-out reconstruction loss", "lower",
                       "The model's reconstruction loss on the held-out tenth of the images, per image."),
    "val_kl": _info("Held-out KL", None,
                    "KL divergence of the codes of held-out images from the prior, in nats per image; small means "
                    "the code carries little information."),
    "val_loss": _info("Held-out loss", "lower",
                      "The model's own loss on data it never trained on; compare it only between models of the same "
                      "family."),
    # ---- the best checkpoint (aigc_core.train.early_stop)
    "best_step": _info("Best checkpoint (step)", None,
                       "The step whose weights had the lowest held-out loss: the run's final numbers, its samples and "
                       "its export come from them."),
    "last_val_loss": _info("Held-out loss of the last weights", "lower",
                           "The held-out loss of the weights at the end of training; above the best one's when the "
                           "model began to memorise its training data."),
    # ---- text
    "val_bpc": _info("Bits per character (held out)", "lower",
                     "Average bits the model needs to predict each next character of the held-out last 10% of the "
                     "text; 0 is perfect, log2 of the alphabet size is blind guessing."),
    "val_perplexity": _info("Perplexity (held out)", "lower",
                            "e to the held-out loss in nats (2 to the bits per character): how many characters "
                            "the model is, on average, choosing between."),
    "copy_share": _info("Copied lines", "lower",
                        "Share of 200 generated items that are lines of the training text verbatim: memorised, "
                        "not invented."),
    "distinct_ngrams": _info("Distinct 3-grams", None,
                             "Distinct character 3-grams divided by all 3-grams in the generated text; low means "
                             "the model repeats itself. Compare with the real text's figure."),
    "distinct_ngrams_real": _info("Distinct 3-grams (real text)", None,
                                  "The same share on as much real held-out text: the value to aim for."),
    # ---- tables (aigc_core.metrics.tabular)
    "fidelity": _info("Fidelity", "higher",
                      "Average of the column-shape and pair-trend scores of generated rows against real ones "
                      "(1 = indistinguishable on these views)."),
    "column_shapes": _info("Column shapes", "higher",
                           "Per column, 1 minus the Kolmogorov-Smirnov distance (numbers) or the total variation "
                           "distance (categories) between real and generated values, averaged."),
    "pair_trends": _info("Pair trends", "higher",
                         "Per pair of columns, how well generated rows keep the real correlation or joint "
                         "frequencies (1 = the same), averaged."),
    "trtr_accuracy": _info("Accuracy, trained on real", None,
                           "Accuracy on held-out real rows of classifiers trained on the real training rows: the "
                           "yardstick for the synthetic rows."),
    "tstr_accuracy": _info("Accuracy, trained on synthetic", "higher",
                           "Accuracy on held-out real rows of classifiers (logistic regression, random forest) "
                           "trained on synthetic rows only."),
    "tstr_accuracy_ratio": _info("Synthetic / real accuracy", "higher",
                                 "Train-on-synthetic accuracy divided by train-on-real accuracy; 1 means the "
                                 "synthetic rows teach as much as the real ones."),
    "tstr_accuracy_ratio_lr": _info("Synthetic / real accuracy (logistic regression)", "higher",
                                    "The accuracy ratio with logistic regression alone."),
    "tstr_accuracy_ratio_rf": _info("Synthetic / real accuracy (random forest)", "higher",
                                    "The accuracy ratio with a random forest alone."),
    "trtr_f1": _info("Macro F1, trained on real", None,
                     "Macro-averaged F1 on held-out real rows of classifiers trained on real rows."),
    "tstr_f1": _info("Macro F1, trained on synthetic", "higher",
                     "Macro-averaged F1 on held-out real rows of classifiers trained on synthetic rows; a "
                     "majority-class guess scores low."),
    "tstr_f1_ratio": _info("Synthetic / real F1", "higher", "Train-on-synthetic F1 divided by train-on-real F1."),
    "aug_small_accuracy": _info("Accuracy, small real set", None,
                                "Accuracy of classifiers trained on a tenth of the real training rows alone."),
    "aug_accuracy": _info("Accuracy, small real set + synthetic", "higher",
                          "Accuracy of the same classifiers when the synthetic rows are added to that tenth."),
    "aug_uplift": _info("Augmentation uplift", "higher",
                        "Accuracy with the synthetic rows added minus accuracy without them (small real set)."),
    "aug_f1_uplift": _info("Augmentation uplift (F1)", "higher", "The same uplift measured in macro F1."),
    "dcr_median": _info("Distance to closest real row", None,
                        "Median distance from a synthetic row to its nearest real training row (numbers in "
                        "standard deviations, a different category counts 1); compare with the held-out figure."),
    "dcr_p05": _info("Distance to closest real row (5th percentile)", None,
                     "The 5% closest synthetic rows are at most this far from a real training row."),
    "holdout_dcr_median": _info("Held-out distance to closest real row", None,
                                "The same median for real held-out rows: synthetic rows much closer than this "
                                "are near-copies."),
    "exact_copy_rate": _info("Exact copies of real rows", "lower",
                             "Share of synthetic rows identical to a real training row."),
    "holdout_copy_rate": _info("Held-out rows equal to training rows", None,
                               "Share of real held-out rows that also appear in the training rows: the copy rate "
                               "to expect by chance."),
    "rows_real": _info("Real rows", None, "Real training rows the report used."),
    "rows_synth": _info("Synthetic rows", None, "Synthetic rows the report used."),
}

from .augmentation import METRIC_INFO as _AUGMENTATION_INFO  # noqa: E402 - issue 12's scores
#: the people's numbers (aigc_core.human_eval), kept here so the labels import nothing
HUMAN_METRIC_INFO = {
    "human_like_share": {"label": "Thumbs up (people)", "better": "higher",
                         "how": "Share of the samples people rated that got a thumbs up (rule ratings left out); "
                                "human_ratings says how many."},
    "human_ratings": {"label": "Ratings by people", "better": None, "how": "How many samples people rated."},
    "fooling_rate": {"label": "Fooling rate (real or generated?)", "better": "higher",
                     "how": "Of the generated samples shown in 'Real or generated?' rounds, the share people took "
                            "for real, pooled over everybody who played; about 0.5 means people could not tell. "
                            "fooling_rate_low/high: its 95% Wilson interval."},
    "fooling_judged": {"label": "Generated samples judged", "better": None,
                       "how": "How many generated samples the fooling rate is based on."},
}
from .inception import METRIC_INFO as _INCEPTION_INFO  # noqa: E402

METRIC_INFO.update({**_INCEPTION_INFO, **_AUGMENTATION_INFO, **HUMAN_METRIC_INFO})
