"""Every run's quality numbers, computed the same way for every run.

This module draws the samples (from a trainer) that the metric functions of
:mod:`aigc_core.metrics` score against the data; the metrics themselves never
see a trainer.

- :func:`end_of_run_metrics`: called by the training loop when a run ends
  (after the trainer's own held-out numbers); quick for tiny runs.
- :func:`evaluate_run`: ``python -m aigc_core eval --run ID`` - the full set
  for a finished run, stored on the run too.
- what each number means: :data:`aigc_core.metrics.labels.METRIC_INFO`.

Images: FID, KID, precision, recall, density and coverage against real
images in the data set's own feature space (:mod:`.features`), the
recognised share and classes covered for labelled sets, copy detection; VAEs
and autoencoders add ELBO, reconstruction error, PSNR and SSIM on held-out
images. Text: held-out bits per character and perplexity (the trainer's own),
copy share and distinct n-grams (:mod:`.text`). Tables: the fidelity /
usefulness / privacy report (:mod:`.tabular`, run by the tabular trainer's
``evaluate``). 2-D points: precision, recall, density and coverage on the
points themselves.
"""

from __future__ import annotations

import inspect
import math

import torch

from ..errors import UserError
from ..metrics.features import MIN_IMAGES, feature_net, one_thread

__all__ = ["end_of_run_metrics", "evaluate_run"]

#: generated and real samples compared by default (or the whole set when smaller)
DEFAULT_N = 5000
#: at the end of a run, the feature-net scores are skipped for runs shorter than both of these
#: (a feature net is trained once per data set, which a few seconds of training do not warrant)
SHORT_RUN_STEPS = 100
SHORT_RUN_SECONDS = 5.0
SEED = 0
SAMPLE_CHUNK = 500

# ---- helpers ---------------------------------------------------------------------------

def _finite(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def _generate_images(trainer, n: int, seed: int = SEED) -> torch.Tensor:
    """``n`` samples in chunks (bounded memory); chunk i uses seed ``seed * 1000 + i``."""
    chunks, made, i = [], 0, 0
    while made < n:
        k = min(SAMPLE_CHUNK, n - made)
        chunks.append(trainer.sample(k, seed * 1000 + i).float().cpu())
        made, i = made + k, i + 1
    return torch.cat(chunks)


def _reconstruction_metrics(trainer, max_images: int = 5000) -> dict[str, float]:
    """On the trainer's held-out images: ``elbo`` (VAEs, the trainer's own
    :meth:`held_out_elbo`), then the reconstruction error, PSNR and SSIM."""
    from ..metrics.image import reconstruction_scores, unit_images

    held = getattr(trainer, "held_out", None)
    if held is None or held.shape[0] == 0:
        return {}
    held01 = unit_images(held[:max_images])
    out: dict[str, float] = {}
    elbo = trainer.held_out_elbo(held01) if hasattr(trainer, "held_out_elbo") else None
    if elbo is not None:
        out["elbo"] = elbo
    out.update(reconstruction_scores(held01, trainer.reconstruct(held01).float().clamp(0, 1)))
    return out


def _image_metrics(spec, trainer, n: int, feature_scores: bool, echo=None) -> dict[str, float]:
    from ..metrics.image import copy_scores, image_scores

    data = trainer.data
    out: dict[str, float] = {}
    if spec.can("reconstruct"):
        out.update(_reconstruction_metrics(trainer))
    n = max(2, min(n, len(data)))
    if feature_scores and len(data) >= MIN_IMAGES:
        net = feature_net(data, echo=echo)
        samples = _generate_images(trainer, n)
        out.update(image_scores(samples, data, net, n_real=n))
        from ..metrics.inception import inception_scores  # labelled sets: IS with the data set's own classifier
        out.update(inception_scores(samples, data, net))
    else:
        out.update(copy_scores(_generate_images(trainer, min(n, 256)), data))
    return out


def _point_metrics(spec, trainer, n: int, feature_scores: bool, echo=None) -> dict[str, float]:
    from ..metrics.manifold import manifold_scores

    data = trainer.data
    if not hasattr(data, "points"):
        return {}
    n = min(n, spec.eval_budget, len(data))
    if n <= 3:
        return {}
    real = data.points
    if n < len(real):
        real = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(SEED))[:n]]
    fake = torch.as_tensor(trainer.sample(n, SEED)).float().cpu()
    return manifold_scores(real.float(), fake)


def _text_metrics(spec, trainer, n: int, feature_scores: bool, echo=None) -> dict[str, float]:
    """Copied lines (line corpora) and distinct 3-grams of ``eval_budget``
    items, or of a few long stretches of text, against as much real text."""
    from ..metrics.text import STREAM_LENGTH, STREAM_SAMPLES, text_scores

    if not hasattr(trainer, "mode"):
        return {}
    if trainer.mode == "lines":
        items = [line for line in trainer.train_text.split("\n") if line]
        longest = max((len(x) for x in items), default=20)
        samples = trainer.sample(spec.eval_budget, SEED, length=min(200, 2 * longest + 2))
        # held-out lines first, then training lines when there are too few
        real = [line for line in (trainer.val_text + "\n" + trainer.train_text).split("\n") if line]
        return text_scores(samples, real, trainer.train_text)
    samples = trainer.sample(STREAM_SAMPLES, SEED, length=STREAM_LENGTH)
    return text_scores(samples, [trainer.val_text + trainer.train_text])


#: the quality numbers of each kind of data; tables: the tabular trainer's
#: evaluate() already runs the report
KIND_METRICS = {"image": _image_metrics, "points": _point_metrics, "text": _text_metrics}


@one_thread()  # measured: small models and batches run several times faster on one thread of a busy CPU
def _family_metrics(run, trainer, n: int | None, feature_scores: bool, echo=None) -> dict[str, float]:
    from ..registry import get_model

    spec = get_model(run.model)
    if spec.data_kind == "table" and hasattr(trainer, "real_test"):  # the source's augmentation study
        from ..metrics.augmentation import augmentation_scores
        return augmentation_scores(trainer)
    measure = KIND_METRICS.get(spec.data_kind)
    if measure is None or not spec.eval_budget:
        return {}
    return measure(spec, trainer, n or spec.eval_budget, feature_scores, echo)


# ---- the two entry points ----------------------------------------------------------------

def end_of_run_metrics(run, trainer) -> dict[str, float]:
    """The quality numbers the worker stores when a run ends.

    Feature-net scores (FID, KID, precision, ...) need at least
    :data:`MIN_IMAGES` images and are left out (absent from the dict) for runs
    shorter than both :data:`SHORT_RUN_STEPS` steps and
    :data:`SHORT_RUN_SECONDS` seconds; copy detection and the VAE numbers are
    quick and always there."""
    from ..runs.store import RunStore

    try:
        now = RunStore().get(run.id)  # the run object the loop holds is from its start
        steps, seconds = now.step, now.train_seconds
    except Exception:  # noqa: BLE001 - no store row (a trainer evaluated outside a run)
        steps, seconds = run.step, run.train_seconds
    feature_scores = steps >= SHORT_RUN_STEPS or seconds >= SHORT_RUN_SECONDS
    with torch.no_grad():
        return _finite(_family_metrics(run, trainer, None, feature_scores))


def evaluate_run(run_id: str, n: int | None = None, echo=None) -> dict[str, float]:
    """Every quality number for a run's best checkpoint (its last for a model
    without a held-out loss; :func:`aigc_core.sample.load_for_sampling`), from ``n``
    generated against ``n`` real samples (or the whole set when smaller),
    including the trainer's own held-out numbers. Stored on the run (merged
    into its final numbers and logged at its step) and returned."""
    from ..runs.store import RunStore
    from ..sample import load_for_sampling

    asked = None if n is None else int(n)
    n = DEFAULT_N if asked is None else asked
    if not 2 <= n <= 50_000:
        raise UserError(f"evaluate with between 2 and 50000 samples; got {n}")
    store = RunStore()
    trainer, run, step = load_for_sampling(run_id, store=store)
    out: dict[str, float] = {}
    with torch.no_grad():
        # a trainer whose own report draws samples (a table's rows) says so by taking n
        takes_n = "n" in inspect.signature(trainer.evaluate).parameters
        out.update(trainer.evaluate(n=asked) if takes_n else trainer.evaluate())
        out.update(_family_metrics(run, trainer, n, feature_scores=True, echo=echo))
    out = _finite(out)
    if out:
        store.log_metrics(run_id, step, out)
        store.update(run_id, final_metrics={**store.get(run_id).final_metrics, **out})
    return out
