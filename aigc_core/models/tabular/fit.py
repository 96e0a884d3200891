"""How a tabular model's preset follows the table it trains on (``fit_preset``).

The presets were written for tables of a few thousand rows. The rule, for
``tab_gan`` and ``tab_vae``::

    R = training rows (the table less its held-out share, 20% by default)

1. **The batch follows R.** A step draws ``batch_size`` training rows; a batch
   larger than the table only repeats rows, so it is cut to R (rounded down
   to a multiple of the GAN's packing, never below two packs): each step is
   cheaper and the written number of steps fits the time budget more easily.
2. **A wide table gets moment matching** (``tab_gan`` only): with at least
   :data:`WIDE_COLUMNS` columns C, ``moment_weight`` is set to
   ``min(5, max(1, C / 10))`` (:func:`moment_weight`; unless the preset sets
   it), so the generator is
   also pulled towards each condition value's real column means, spreads and
   covariances (the ``L_M`` of
   :class:`~aigc_core.models.tabular.trainer.TabGANTrainer`). Why: the critic
   judges packs of rows with their conditions, and the more columns there
   are, the smaller the condition's share of what it sees.
   Covariances are compared only while condition values x encoded width^2
   stays within :data:`~aigc_core.models.tabular.config.MAX_COVARIANCE_ENTRIES`
   (the table's summary counts both, ``condition_values`` and
   ``encoded_width``); past that the preset line says it matches means and
   spreads only.

   Tuned on scikit-learn's 8x8 digits (65 columns, 10 classes, 1,797 rows;
   ``tab_gan`` Quick, 30 CPU s at one thread, label guessed, under a load of
   3-5 on 2 cores). Without the rule: 0.89-0.91 TSTR; a classifier trained
   on real rows put only 87% of the generated rows in the digit they were
   asked for, and each digit's pixel means were off by 8-11 grey levels (in
   norm). Means and spreads (seeds 0, 1): 0.965; with the covariances, over
   seeds 0-2: 0.974 (min 0.970). What did not help there (seed 0): more
   steps (10,000: 0.91), a wider network (0.83), lower or higher learning
   rates (0.83, 0.86), smaller batches (0.84), larger ones (0.90), no packing
   (0.90), two critic steps (0.81), a smaller noise (0.88), means alone at
   weight 3 (the spreads shrink), an auxiliary classifier (CTAB-GAN's: 0.92
   over three seeds; rows matched their digit but were too alike).

   Two more wide tables made for the check, with means and spreads only
   at first: 7x7 glyphs (50 columns, 10 classes) 0.85 and
   ``make_classification`` blobs (25 columns, 5 classes of two clusters)
   0.86 (0.64 without the rule, seed 0); with the covariances at weight 1,
   glyphs 0.89 / 0.89 and blobs 0.92 / 0.91 (seeds 0-2, mean / min). The
   weight then grew with the columns, tuned on those two (so they count as
   tuned): on glyphs (seed 0) weight 1 0.88, 5 0.92, 10 0.92; over seeds
   0-2 at weight 5: 0.918 / 0.912, digits at 5: 0.978 / 0.974, blobs at 2.5:
   0.908 / 0.898 (load 2-3 on 2 cores). Glyphs and blobs stay below 0.95.
   What limits them (seed 0, a classifier trained on real rows): generated
   blobs rows get their asked class from a random forest 72% of the time
   against 84% for held-out real rows (each class is two clusters, and the
   generated rows fall between them); glyph rows 81% against 87%, and their
   pixels spread less than the real ones (2.2 against 2.7 grey levels).
   What did not help there (seed 0): on blobs, weight 5 (0.915), its unused
   budget spent on steps (5,617 of 6,000 in 30 s: 0.90), a wider network (0.91), packs of 2 or
   a third layer (the same 72%), the gmm encoding (0.82); on glyphs, batches
   of 500 (0.89), packs of 5 (0.89), less critic dropout (0.90), a slower
   generator average (0.91), the gmm encoding (0.77), unbiased (n - 1)
   spreads and covariances in L_M (0.91, 0.90 at weights 5, 1).

   Not tuned on, measured with the rule (seeds 0-2, mean / min): breast
   cancer (31 columns, 2 classes, weight 3.1) 0.994 / 0.991;
   ``make_classification`` mix40 (41 columns, 4 classes of one cluster,
   2,000 rows, weight 4.1; added after the weight was set) 0.998 / 0.997.
   **Clumps and measurements** (added later, same tables; ``tab_gan``
   only): a wide table also gets ``numeric_encoding`` ``auto`` (columns of
   nearly all-distinct, roughly symmetric numbers are z-scored instead of
   quantile-mapped, see :func:`~aigc_core.data.table_encoder.auto_encoding`)
   and ``clusters`` :data:`WIDE_CLUSTERS` (each value's rows split into the
   clumps they form, found by G-means on those z-scored columns; the
   generator and critic are told the clump, and the moments are matched per
   value and clump), as long as the covariances of that many clumps a value
   still fit in ``MAX_COVARIANCE_ENTRIES`` (rule 2 says so when it adds them).
   Why: on blobs (each class two clusters) a random forest trained on the
   generated rows scored 0.75 on the real test rows against 0.87 for real
   rows (seed 1): the rows fell between and around the two clusters. Neither
   part alone is enough (blobs, seeds 0-2, mean): quantile 0.908; ``auto``
   0.932 (seed 0); quantile with 4 k-means clusters a value, moments per
   value 0.940 (seed 0); ``auto`` with them 0.936; ``auto`` with the moments
   per clump 0.960, then with G-means choosing the clumps (two a class, as
   made) **0.955 / 0.933** (mean / min). Plain k-means clumps cost mix40
   (one cluster a class) 0.02 and glyphs 0.015, which G-means leaves whole
   (its test finds one clump in each mix40 class; glyphs and digits have no
   continuous columns, whose ties make any projection lumpy). With the rule
   (``bench --only presets``, seeds 0-2, mean / min): blobs 0.956 / 0.933,
   glyphs 0.914 / 0.900 (was 0.915), digits 0.969 / 0.968 (was 0.980),
   breast cancer 0.986 / 0.973 (was 0.994), mix40 0.987 / 0.981 (was
   0.998); narrow tables unchanged (iris 1.00, e-commerce 0.984, wine 0.995).

   **The real moments as the batches show them.** A tied quantile value
   (a pixel's 0, a count) is drawn anew within its share of F in every real
   batch, but L_M's real moments were taken at the middle of that share: on
   glyphs the encoded columns' real spread was 0.62 against 0.88 in the
   batches the critic saw, so L_M pulled the generated spreads a third below
   what the critic asked for (the "0.75-0.8 of the real spread" above). The
   moments are now those of the draw (exact, see ``_row_moments``): digits
   0.984 / 0.983, glyphs 0.919 / 0.915, blobs unchanged (no ties); the
   bench with both changes (seeds 0-2, mean / min): digits 0.979 / 0.976,
   glyphs 0.914 / 0.909, blobs 0.956 / 0.933, breast cancer 0.982 / 0.968,
   mix40 0.987 / 0.981, so on glyphs no gain beyond noise. Glyphs
   stays short; what it lacks (seed 0): a Gaussian per digit fitted to the
   encoded rows gives 0.918, like the GAN, and a mixture of three per digit
   0.951, so each digit's rows are several bumps (fonts) that the GAN
   draws as one. Clumps there did not help: G-means on a tie draw (two in
   two digits) 0.902, k-means into three 0.905, over seeds 0-2; nor pac 2
   (0.899), moment weight 2 (0.903), noise 16 (0.903) or width 256 (0.892).

   **Averaged generated moments (what closed the glyphs gap).** With three
   clumps a digit forced by a mixture fit, a Gaussian per clump with the
   real moments gives 0.946, but the GAN 0.917: its per-clump covariances
   were 41% off (relative Frobenius error). A batch holds ~5 rows of a
   value and clump, so L_M compared rank-4 covariances with the real ones.
   L_M now compares running averages of the generated moments
   (``MOMENT_AVERAGE`` 0.99 of the last average kept a batch; 0.95 gave
   glyphs 0.934, 0.98 0.953, 0.99 0.955 over seeds 0-2), with covariance
   entries weighted as means and spreads (was 1 / encoded width), and a
   table whose numbers are all tied (pixels, counts: no z-scored column
   for G-means' test) is split into its clumps by k-means alone. Each
   value's output activations also run in one pass (a glyphs step 8.7 ->
   6.2 ms, so the 4,000 steps fit in the 30 s). Bench (seeds 0-2, mean /
   min; was): glyphs 0.952 / 0.948 (0.914), digits 0.991 / 0.984 (0.979),
   blobs 0.995 / 0.971 (0.956), breast cancer 0.997 / 0.991 (0.982), mix40
   1.000 / 0.998 (0.987); narrow tables unchanged (no L_M). Glyphs is at
   the edge: seeds 3-7 give 0.965, 0.944, 0.946, 0.942, 0.944 (eight seeds:
   0.950). Weight 10 there gave 0.954 over seven seeds, but 25 columns / 5
   cost blobs 0.026 and breast cancer 0.020, so the weight rule stays.
3. **Everything else stays as written.** Narrow tables (below
   :data:`WIDE_COLUMNS` columns) are left alone: iris 1.00 / 0.98 (with the
   fitted batch of 120), e-commerce 0.98 / 0.97, wine 1.00 / 0.99 (seeds
   0-2, label guessed). The device does not change the rule: on a GPU the
   same steps take less time.

The bench that measures all of these: ``python -m aigc_core bench --only
presets`` (:mod:`aigc_core.benchmarks.presets`).
"""

from __future__ import annotations

import dataclasses

from .config import MAX_COVARIANCE_ENTRIES

MIN_PACKS = 2
#: a table with at least this many columns is wide (rule 2)
WIDE_COLUMNS = 20
#: rule 2's weight is columns / COLUMNS_PER_WEIGHT, between 1 and MAX_MOMENT_WEIGHT
COLUMNS_PER_WEIGHT = 10
MAX_MOMENT_WEIGHT = 5.0
#: rule 2: the most clumps each condition value of a wide table is split into
WIDE_CLUSTERS = 4


def moment_weight(columns: int) -> float:
    """Rule 2's weight for a table of ``columns`` columns (at least :data:`WIDE_COLUMNS`)."""
    return min(MAX_MOMENT_WEIGHT, max(1.0, columns / COLUMNS_PER_WEIGHT))


def training_rows(summary: dict, holdout: float) -> int | None:
    rows = summary.get("count")
    return None if rows is None else int(rows) - int(round(int(rows) * holdout))


def fit_table_preset(config_cls: type, name: str, preset: dict, summary: dict, device_type: str) -> tuple[dict, str]:
    """The rule in this module's docstring: ``(preset, why)``; ``config_cls``
    gives the defaults of what the preset leaves out."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    model = preset.setdefault("model", {})
    why = [_fit_batch(model, defaults, summary), _fit_moments(model, defaults, summary)]
    return preset, "; ".join(w for w in why if w)


def _fit_batch(model: dict, defaults: dict, summary: dict) -> str:
    """Rule 1; what it changed, in words ("" for nothing)."""
    setting = lambda key: model.get(key, defaults.get(key))  # noqa: E731
    rows = training_rows(summary, float(setting("holdout")))
    batch = int(setting("batch_size"))
    pack = int(setting("pac") or 1)  # the VAE has no packing
    if not rows or rows >= batch:
        return ""
    fitted = max(MIN_PACKS * pack, rows // pack * pack)
    if fitted >= batch:
        return ""
    model["batch_size"] = fitted
    return f"for {summary['count']:,} rows ({rows:,} to train on): batches of {fitted} rows instead of {batch}"


def _fit_moments(model: dict, defaults: dict, summary: dict) -> str:
    """Rule 2; what it changed, in words ("" for nothing)."""
    columns = int(summary.get("columns") or 0)
    if "moment_weight" not in defaults or "moment_weight" in model or columns < WIDE_COLUMNS:
        return ""
    weight = moment_weight(columns)
    model["moment_weight"] = weight
    width, values = summary.get("encoded_width"), summary.get("condition_values") or 1
    clumps = ""
    if "clusters" in defaults and "clusters" not in model and (
            not width or values * WIDE_CLUSTERS * width ** 2 <= MAX_COVARIANCE_ENTRIES):
        model["clusters"] = WIDE_CLUSTERS
        model.setdefault("numeric_encoding", "auto")
        clumps = (f"; measurement columns are z-scored and each value's rows split into up to {WIDE_CLUSTERS} "
                  "clumps they form, each clump matched on its own")
    if width and values * width ** 2 > MAX_COVARIANCE_ENTRIES:
        # the trainer leaves the covariances out (see MAX_COVARIANCE_ENTRIES): say so
        follows = (f"column means and spreads follow the real ones (not their covariances: {width:,} encoded columns "
                   f"are too many to compare in pairs)")
    else:
        follows = "column means, spreads and covariances follow the real ones"
    return (f"for {columns} columns (a wide table, {WIDE_COLUMNS} or more): moment matching at weight {weight:g} "
            f"(columns / {COLUMNS_PER_WEIGHT}, 1 to {MAX_MOMENT_WEIGHT:g}), so each condition value's {follows}, "
            f"the more strongly the more columns the critic weighs them against{clumps}")
