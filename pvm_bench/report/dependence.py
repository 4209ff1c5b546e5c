"""Causal visual dependence: accuracy when the image is taken away from generated token K on.

A run with ``--ablate-after 0,16,64`` holds, next to each variant V, the variants
``V+blind:after=K`` (:mod:`pvm_bench.fixes.blind`). This module turns them into metric rows
(``kind="dependence"``, read by summary.md, report.html and compare like every other row):

- per (task, V, K): ``metric`` = the task's headline metric, ``variant`` = V, ``t`` = K, ``value``
  and CI = the ablated variant's estimate, ``diff``/CI/``p_value`` = the paired difference
  *ablated - V* over the units both have (same estimator as the paired test vs base);
- per (task, V): ``metric="dependence_k"``: the smallest tested K from which on (that K and every
  larger tested one) the ablation no longer changes the metric significantly (p >= ``ALPHA``).
  When every tested K still changes it, the value is the longest output of V (an ablation from
  there on is a no-op) and the row carries the flag ``beyond_tested``: the model needs the image
  beyond the longest K tried. When K = 0 is tested and the un-ablated vs K = 0 contrast is itself
  not significant, the value is NaN with the flag ``not_resolved``: at this n the run cannot tell
  "answerable from the text alone" (MMStar's concern) from "too few samples to see the drop"
  (0.30 -> 0.00 at n = 10 has p = 0.25), so it names no K.

K counts generated tokens: ``blind:after=K`` leaves tokens ``0 .. K-1`` untouched.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pvm_bench.report.ablation import split_ablated
from pvm_bench.report.estimate import Groups
from pvm_bench.report.rows import GroupKey, TaskInfo, collect_groups, row
from pvm_bench.report.rundata import RunData
from pvm_bench.report.views import SMALL_N_MARK, fmt_ci, fmt_p, small_n

ALPHA = 0.05
"""Significance level of "the ablation still changes accuracy"."""
KIND = "dependence"
DEPENDENCE_K = "dependence_k"
BEYOND = "beyond_tested"
NOT_RESOLVED = "not_resolved"
NOTE = (
    "Accuracy with the image taken away from generated token K on (image keys masked in every "
    "layer and the PVM branch off; K = 0: the text-only prior), per un-ablated variant; Δ = paired "
    f"difference vs that variant with 95% CI and p. dependence K = the smallest tested K from which "
    f"the ablation no longer changes accuracy significantly (p ≥ {ALPHA}); '> K (beyond tested)' = "
    "still significant at the largest K tried; 'not resolved at this n' = even removing the image from "
    "token 0 on makes no significant difference, so this n cannot tell a text-answerable task from too few "
    "samples. Ablated variants' Δ in the metrics table is vs their un-ablated variant. † = fewer than 30 samples."
)

def ablation_map(variants: list[str]) -> dict[str, dict[int, str]]:
    """Un-ablated variant -> {K: ablated variant name}, for the un-ablated variants present."""
    out: dict[str, dict[int, str]] = {}
    for v in variants:
        parsed = split_ablated(v)
        if parsed and parsed[0] in variants:
            out.setdefault(parsed[0], {})[parsed[1]] = v
    return {v: dict(sorted(ks.items())) for v, ks in out.items()}


def dependence_k(ks: list[int], p_values: list[float], longest: int) -> tuple[float, str]:
    """(value, flags) of ``dependence_k`` from the tested K (ascending) and their p-values."""
    if ks and ks[0] == 0 and not (p_values[0] < ALPHA):
        return math.nan, NOT_RESOLVED
    found = math.nan
    for k, p in zip(reversed(ks), reversed(p_values)):
        if not (p >= ALPHA):  # significant (or no test): the tail of non-significant K ends here
            break
        found = k
    if math.isnan(found):
        return float(max(longest, max(ks) + 1)), BEYOND
    return float(found), ""


def dependence_rows(
    data: RunData, infos: dict[str, TaskInfo], seed: int = 0, groups: dict[GroupKey, Groups] | None = None,
) -> list[dict[str, Any]]:
    """The ``kind="dependence"`` rows of a run (empty without ablated variants). ``groups``:
    :func:`~pvm_bench.report.rows.collect_groups` of ``(data, infos)`` when the caller has it already."""
    amap = ablation_map(list(data.variants))
    if not amap or data.samples.empty:
        return []
    from pvm_bench.report.estimate import grouped_estimate, grouped_paired

    groups = collect_groups(data, infos) if groups is None else groups
    out: list[dict[str, Any]] = []
    samples = data.samples
    for task, info in infos.items():
        metric = info.headline
        for variant, ablated in amap.items():
            ref = groups.get((task, variant, metric))
            if ref is None:
                continue
            s = samples[(samples["task"] == task) & (samples["variant"] == variant)]
            longest = int(s["n_generated"].max()) if len(s) else 0
            ks, ps = [], []
            for k, name in ablated.items():
                g = groups.get((task, name, metric))
                if g is None:
                    continue
                est = grouped_estimate(g, seed=seed)
                pd_ = grouped_paired(ref, g, seed=seed)
                out.append(row(task, variant, metric, est.value, t=float(k), ci_low=est.low, ci_high=est.high,
                               n=est.n, kind=KIND, higher_is_better=None, diff=pd_.diff, diff_ci_low=pd_.low,
                               diff_ci_high=pd_.high, p_value=pd_.p_value, p_method=pd_.method, n_pairs=pd_.n,
                               band=name, flags="small_n" if 0 < est.n < 30 else ""))
                ks.append(k)
                ps.append(pd_.p_value)
            if ks:
                value, flags = dependence_k(ks, ps, longest)
                out.append(row(task, variant, DEPENDENCE_K, value, kind=KIND, higher_is_better=None,
                               n=len(ks), flags=flags, band="K"))
    return out


def _small(n: Any) -> str:
    """" †" after an accuracy resting on fewer than 30 units (see views.SMALL_N_MARK)."""
    return f" {SMALL_N_MARK}" if small_n(n) else ""


def _p(p: Any) -> str:
    text = fmt_p(p)
    return f" {text}" if text.startswith(("<", ">")) else f"={text}"


def k_cell(value: Any, flags: Any, tested: list[int]) -> str:
    """``"16"``, ``"> 64 (beyond tested)"`` or ``"not resolved at this n"``."""
    if NOT_RESOLVED in str(flags or ""):
        return "not resolved at this n"
    if not isinstance(value, int | float) or math.isnan(value):
        return "–"
    if BEYOND in str(flags or ""):
        return f"> {max(tested)} (beyond tested)" if tested else "beyond tested"
    return str(int(value))


def dependence_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """One line per (task, un-ablated variant): the un-ablated value, one column per K
    ("value [CI] Δ diff [CI] p"), and the dependence K."""
    d = rows[rows["kind"] == KIND]
    if d.empty:
        return pd.DataFrame()
    curve = d[d["metric"] != DEPENDENCE_K]
    ks = sorted({int(t) for t in curve["t"].dropna()})
    order = {v: i for i, v in enumerate(variants)}
    lines = []
    keys = sorted({(t, v) for t, v in zip(d["task"], d["variant"])}, key=lambda x: (x[0], order.get(x[1], 1e9)))
    for task, variant in keys:
        c = curve[(curve["task"] == task) & (curve["variant"] == variant)]
        if c.empty:
            continue
        metric = c["metric"].iloc[0]
        ref = rows[(rows["task"] == task) & (rows["variant"] == variant) & (rows["metric"] == metric)
                   & (rows["kind"] == "task")]
        line: dict[str, Any] = {"task": task, "variant": variant, "metric": metric}
        line["no ablation"] = (fmt_ci(*ref[["value", "ci_low", "ci_high"]].iloc[0]) + _small(ref["n"].iloc[0])
                               if len(ref) else "–")
        for k in ks:
            r = c[c["t"] == k]
            if r.empty:
                line[f"K={k}"] = "–"
                continue
            r0 = r.iloc[0]
            line[f"K={k}"] = (f"{fmt_ci(r0['value'], r0['ci_low'], r0['ci_high'])}{_small(r0['n'])} "
                              f"Δ {fmt_ci(r0['diff'], r0['diff_ci_low'], r0['diff_ci_high'], sign=True)} "
                              f"p{_p(r0['p_value'])}")
        kr = d[(d["task"] == task) & (d["variant"] == variant) & (d["metric"] == DEPENDENCE_K)]
        tested = sorted(int(t) for t in c["t"])
        line["dependence K"] = k_cell(kr["value"].iloc[0], kr["flags"].iloc[0], tested) if len(kr) else "–"
        lines.append(line)
    return pd.DataFrame(lines)


def curve_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Plot data: task, variant, K, value, ci_low, ci_high (K = NaN: the un-ablated value)."""
    d = rows[(rows["kind"] == KIND) & (rows["metric"] != DEPENDENCE_K)]
    if d.empty:
        return pd.DataFrame(columns=["task", "variant", "K", "value", "ci_low", "ci_high"])
    parts = [d.assign(K=d["t"])[["task", "variant", "K", "value", "ci_low", "ci_high"]]]
    for (task, variant, metric) in {(t, v, m) for t, v, m in zip(d["task"], d["variant"], d["metric"])}:
        ref = rows[(rows["task"] == task) & (rows["variant"] == variant) & (rows["metric"] == metric)
                   & (rows["kind"] == "task")]
        if len(ref):
            parts.append(ref.assign(K=math.nan)[["task", "variant", "K", "value", "ci_low", "ci_high"]])
    return pd.concat(parts, ignore_index=True)


__all__ = [
    "ALPHA",
    "BEYOND",
    "DEPENDENCE_K",
    "KIND",
    "NOTE",
    "NOT_RESOLVED",
    "ablation_map",
    "curve_points",
    "dependence_k",
    "dependence_rows",
    "dependence_view",
    "k_cell",
    "split_ablated",
]
