"""Early vs late visual mass on the fixed cohort: the number the report's findings lead with.

On the fixed cohort of a scope (the samples that reached T tokens, steps 1..T only;
:func:`pvm_bench.report.curves.fixed_cohort`) every step averages the same samples, so "mass falls
from early to late" cannot come from which samples survive. Per sample: the mean all-layer mass
over the first window (steps 1..W) and the last window (steps T-W+1..T), W = max(1, T // 8), and
their ratio late / early. Rows (``kind="decay"``, band ``cohort@T``, descriptive):

- ``mass_early`` (t = W) and ``mass_late`` (t = T): mean over samples, 95% bootstrap CI;
- ``mass_ratio`` (t = T): mean over samples of each sample's late / early ratio, 95% bootstrap CI;
  ``n`` = samples in the cohort with a positive early mass.

A small module beside the decay data path (it reads the same per-sample band curves the cohort
fit reads and does not change how any other row is computed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pvm_bench.report.attention_agg import AttentionAggregates
from pvm_bench.report.curves import fixed_cohort, sample_keys
from pvm_bench.report.decay import cohort_band
from pvm_bench.report.rows import row
from pvm_bench.report.stats import SMALL_N, bootstrap_cis

METRICS = ("mass_early", "mass_late", "mass_ratio")


def window(t_cohort: int) -> int:
    """Width W of the early and late windows of a cohort of length ``t_cohort``."""
    return max(1, int(t_cohort) // 8)


def cohort_ratio_rows(agg: AttentionAggregates, mask: np.ndarray, t_cohort: int | None, task: str, variant: str,
                      seed: int = 0) -> list[dict[str, Any]]:
    """The three rows of the module docstring for the generations in ``mask`` (empty without a
    cohort length, an all-layer band or a sample that reached ``t_cohort``)."""
    if not t_cohort or "m_all" not in agg.steps or not agg.has_visual_in(mask):
        return []
    cohort = fixed_cohort(agg.band_samples("all", mask), int(t_cohort))
    if cohort.empty:
        return []
    w = window(int(t_cohort))
    keys = sample_keys(cohort)  # the generation alone for the aggregates' frames: same groups, one integer key
    early = cohort[cohort["step"] <= w].groupby(keys)["mass"].mean()
    late = cohort[cohort["step"] > int(t_cohort) - w].groupby(keys)["mass"].mean()
    both = early.to_frame("early").join(late.to_frame("late"), how="inner")
    both = both[both["early"] > 0]
    if both.empty:
        return []
    n = len(both)
    flags = "small_n" if n < SMALL_N else ""
    band = cohort_band(int(t_cohort))
    out = []
    metrics = (("mass_early", both["early"], w), ("mass_late", both["late"], t_cohort),
               ("mass_ratio", both["late"] / both["early"], t_cohort))
    cis = bootstrap_cis([values.to_numpy(dtype=float) for _, values, _ in metrics], seed=seed)
    for (metric, _, t), ci in zip(metrics, cis):
        out.append(row(task, variant, metric, ci.mean, band=band, t=float(t), ci_low=ci.low, ci_high=ci.high, n=n,
                       kind="decay", higher_is_better=None, flags=flags))
    return out


__all__ = ["METRICS", "cohort_ratio_rows", "window"]
