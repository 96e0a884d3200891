"""The Inception Score, with the data set's own classifier instead of Inception v3.

    IS = exp( E_x [ KL( p(y | x) || p(y) ) ] ),   p(y) = E_x [ p(y | x) ]

A model scores high when each sample is clearly one class (p(y | x) is
peaked) and the samples together cover the classes (p(y) is flat). It lies
between 1 (every sample looks the same to the classifier, or nothing is
recognisable) and the number of classes.

The original uses Inception v3's ImageNet classes; those weights cannot be
downloaded here and 28 x 28 digits are not ImageNet, so the classifier is the
labelled data set's own feature net (:mod:`.features`). Its "none of these"
output counts as one more class: a blob the classifier rejects is no class at
all, so a model that makes noise scores about 1 rather than something random.
The score therefore compares runs on the same data set only, and the real
images' own score (``inception_score_real``) is the figure to aim for. As
usual it is averaged over ``splits`` disjoint parts of the samples, with the
spread between parts as ``inception_score_std``.
"""

from __future__ import annotations

import torch

from .features import FeatureNet, one_thread

DEFAULT_SPLITS = 10
#: the fewest samples per split (fewer makes p(y) of a split too noisy)
MIN_PER_SPLIT = 50
EPS = 1e-12


@torch.no_grad()
def class_probabilities(net: FeatureNet, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """p(y | x) over the classes and "none of these", (N, classes + 1)."""
    net.eval()
    with one_thread():
        return torch.cat([net.class_probs(part) for part in images.split(batch)]).double()


def score_from_probs(probs: torch.Tensor, splits: int = DEFAULT_SPLITS) -> tuple[float, float]:
    """(mean, standard deviation) of exp(mean KL(p(y|x) || p(y))) over
    ``splits`` parts of the rows of ``probs`` (fewer parts when there are
    not :data:`MIN_PER_SPLIT` rows for each)."""
    n = len(probs)
    if n == 0:
        raise ValueError("the Inception Score needs at least one sample")
    splits = max(1, min(int(splits), n // MIN_PER_SPLIT))
    scores = []
    for part in probs.chunk(splits):
        p_y = part.mean(0, keepdim=True)
        kl = (part * (torch.log(part + EPS) - torch.log(p_y + EPS))).sum(1)
        scores.append(torch.exp(kl.mean()))
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(unbiased=False)) if len(scores) > 1 else 0.0


def inception_score(images: torch.Tensor, net: FeatureNet, splits: int = DEFAULT_SPLITS) -> tuple[float, float]:
    """(IS, its spread over splits) of images (N, C, H, W) in [0, 1] with a labelled feature net."""
    if not net.labelled:
        raise ValueError("the Inception Score needs a classifier: the data set has no labels")
    return score_from_probs(class_probabilities(net, images), splits)


def inception_scores(samples: torch.Tensor, data, net: FeatureNet, seed: int = 0) -> dict[str, float]:
    """``inception_score``, ``inception_score_std`` and, from as many real
    images, ``inception_score_real``; empty for a data set without labels."""
    if not net.labelled:
        return {}
    mean, std = inception_score(samples, net)
    n = min(len(samples), len(data))
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    real, _ = inception_score(data.images[pick], net)
    return {"inception_score": mean, "inception_score_std": std, "inception_score_real": real}


METRIC_INFO = {
    "inception_score": {"label": "Inception Score (own classifier)", "better": "higher",
                        "how": "exp(E_x KL(p(y|x) || p(y))) with the data set's own classifier (not Inception v3; "
                               "its 'none of these' output counts as a class), averaged over 10 splits: high when "
                               "each sample is clearly one class and all classes appear. Between 1 and the number "
                               "of classes; compare it with the real images' score, on the same data set only."},
    "inception_score_std": {"label": "Inception Score spread", "better": None,
                            "how": "Standard deviation of the Inception Score over its 10 splits."},
    "inception_score_real": {"label": "Inception Score of real images", "better": None,
                             "how": "The same score for as many real images: the value to aim for."},
}
