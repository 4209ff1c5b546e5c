"""Accuracy by a task's declared distance: the one binning shared by the plot and the metric rows.

A task may declare ``Task.distance_key`` (a sample-metadata field, e.g. ``n_filler`` = N for the
length diagnostics) and ``Task.distance_label``. :func:`distance_groups` bins the records of a task
(shared by its variants): each distinct value when there are at most :data:`MAX_DISTANCE_BINS`,
else equal-count bins. ``accuracy_vs_distance.png`` (:mod:`pvm_bench.report.plots`) and the
``kind="distance"`` rows (:func:`distance_rows`) both call it, so the table and the plot show the
same bins and the same numbers.

Rows: ``metric="accuracy"``, ``band="dist:<lo>_<hi>"`` (or ``dist:<v>`` for a single value), value
and 95% CI from :func:`~pvm_bench.report.stats.accuracy_ci` (Wilson for 0/1 scores) over the bin's
records, ``n`` records, flag ``small_n`` below 30, and the paired difference vs ``base`` over the
bin's (sample_id, repeat) pairs (:func:`~pvm_bench.report.stats.paired_difference`: Newcombe CI and
McNemar p for 0/1 pairs). Like the length rows they are descriptive (``higher_is_better`` empty):
``check`` never gates them, since equal-count bin edges can move between runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pvm_bench.report.rows import TaskInfo, row, task_infos
from pvm_bench.report.rundata import REFERENCE_VARIANT, RunData
from pvm_bench.report.stats import accuracy_ci, paired_difference

MAX_DISTANCE_BINS = 8
"""More distinct distance values than this are grouped into this many equal-count bins."""
BAND_PREFIX = "dist:"


def distance_keys(data: RunData, infos: dict[str, TaskInfo] | None = None) -> dict[str, tuple[str, str]]:
    """``{task: (metadata key, label)}`` for the run's tasks that declare a distance
    (``Task.distance_key``, label ``Task.distance_label`` or the key), read from the run's tasks.json
    (:func:`~pvm_bench.report.rows.task_infos`). Tasks that declare none are left out."""
    infos = task_infos(data) if infos is None else infos
    return {t: (i.distance_key, i.distance_label or i.distance_key) for t, i in infos.items() if i.distance_key}


def distance_values(s: pd.DataFrame, key: str) -> pd.Series:
    """The ``key`` field of each record's sample metadata (else of its score details), as float."""
    def one(r: pd.Series) -> float:
        for col in ("metadata", "score_details"):
            d = r.get(col)
            if isinstance(d, dict) and d.get(key) is not None:
                try:
                    return float(d[key])
                except (TypeError, ValueError):
                    return math.nan
        return math.nan

    return s.apply(one, axis=1) if len(s) else pd.Series(dtype=float)


def distance_groups(values: pd.Series) -> tuple[pd.Series, dict[int, str]]:
    """Group index per record and its label: each distinct value when there are at most
    MAX_DISTANCE_BINS of them, else equal-count bins labelled "lo–hi" (inclusive, the values
    seen in the bin). NaN values get a NaN group."""
    finite = values.dropna()
    uniq = np.sort(finite.unique())
    if uniq.size <= MAX_DISTANCE_BINS:
        index = {u: k for k, u in enumerate(uniq)}
        return values.map(index), {k: f"{u:g}" for u, k in index.items()}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, MAX_DISTANCE_BINS + 1), method="nearest"))
    group = pd.Series(np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2), index=values.index)
    group[values.isna()] = np.nan
    labels = {}
    for k in sorted(group.dropna().unique()):
        in_bin = finite[group[finite.index] == k]
        labels[int(k)] = f"{in_bin.min():g}–{in_bin.max():g}"
    return group, labels


def band_of(label: str) -> str:
    """Row band of a bin label: ``"17–32"`` -> ``"dist:17_32"``, ``"4"`` -> ``"dist:4"``."""
    return BAND_PREFIX + label.replace("–", "_")


def band_low(band: str) -> float:
    """The bin's lower value from its band (sorts the bins of a table)."""
    try:
        return float(band.removeprefix(BAND_PREFIX).split("_")[0])
    except ValueError:
        return math.inf


def distance_table(s: pd.DataFrame, key: str) -> pd.DataFrame:
    """The records of one task (all variants) that carry the distance, with columns ``group``
    (int), ``label`` and ``band``; bins shared by the variants."""
    values = distance_values(s, key)
    if values.notna().sum() == 0:
        return s.iloc[0:0].assign(group=pd.Series(dtype=int), label="", band="")
    group, labels = distance_groups(values)
    t = s.assign(group=group).dropna(subset=["group"])
    t = t.assign(group=t["group"].astype(int))
    return t.assign(label=t["group"].map(labels), band=t["group"].map(lambda g: band_of(labels[g])))


def _by_pair(t: pd.DataFrame) -> pd.Series:
    return t.groupby(["sample_id", "repeat"])["score"].mean()


def distance_rows(data: RunData, infos: dict[str, TaskInfo] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """``kind="distance"`` accuracy rows per (task, variant, bin) of the tasks that declare a
    distance (see the module docstring); [] when none does or no record carries it."""
    s = data.samples
    out: list[dict[str, Any]] = []
    if s.empty:
        return out
    for task, (key, _label) in distance_keys(data, infos).items():
        t = distance_table(s[s["task"] == task], key)
        if t.empty:
            continue
        variants = [v for v in data.variants if v in set(t["variant"])]
        for (_, band), b in t.groupby(["group", "band"], sort=True):
            base = b[b["variant"] == REFERENCE_VARIANT]
            for variant in variants:
                bv = b[b["variant"] == variant]
                if bv.empty:
                    continue
                ci = accuracy_ci(bv["score"].to_numpy(dtype=float), seed=seed)
                r = row(task, variant, "accuracy", ci.mean, band=band, n=len(bv), kind="distance",
                        ci_low=ci.low, ci_high=ci.high, flags="small_n" if ci.small_n else "")
                if variant != REFERENCE_VARIANT and len(base):
                    ref, oth = _by_pair(base).align(_by_pair(bv), join="inner")
                    if len(ref):
                        d = paired_difference(ref.to_numpy(), oth.to_numpy(), seed=seed)
                        r.update(diff=d.diff, diff_ci_low=d.low, diff_ci_high=d.high, p_value=d.p_value,
                                 p_method=d.method, n_pairs=d.n)
                out.append(r)
    return out
