"""The findings that open summary.md and report.html: a few sentences, every number from the metric rows.

Nothing here is hand-written about a run: each sentence is assembled from the long metric rows
(:data:`pvm_bench.report.rows.ROW_COLUMNS`) of :func:`pvm_bench.report.summary.build_summary`:

- ``headline``: per task (and MACRO with several tasks), the headline metric of every un-ablated
  variant with its 95% CI, and Δ vs base with its CI, p and paired n;
- ``dependence``: per task and un-ablated variant with ``--ablate-after``: the accuracy with the
  image removed from the smallest tested K on, and the dependence K (or "not resolved at this n");
- ``decay``: per task, visual mass early -> late on the fixed cohort with the per-sample ratio and CI
  (:mod:`pvm_bench.report.cohort_ratio`);
- ``caveat``: small n, survivor selection (the cohort is a subset of the samples), truncation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from pvm_bench.report.dependence import ALPHA, BEYOND, DEPENDENCE_K, NOT_RESOLVED, split_ablated
from pvm_bench.report.dependence import KIND as DEP_KIND
from pvm_bench.report.rows import MACRO, POOLED
from pvm_bench.report.stats import SMALL_N
from pvm_bench.report.views import finite, fmt, fmt_ci, fmt_p, small_n

TOPICS = ("headline", "dependence", "decay", "caveat")


@dataclass(frozen=True)
class Finding:
    """One generated sentence; ``topic`` is one of :data:`TOPICS` (the order they are shown in)."""

    topic: str
    text: str


def _p(p: float) -> str:
    text = fmt_p(p)
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def _sig(p: float) -> str:
    return "significant" if finite(p) and p < ALPHA else "not significant"


def _plain(variants: Iterable[str]) -> list[str]:
    return [v for v in variants if split_ablated(v) is None]


MAX_TASK_SENTENCES = 5
"""With more tasks than this, the per-task sentences become one count per variant (see :func:`task_tally`)."""


def task_tally(head: pd.DataFrame, tasks: list[str], variants: list[str]) -> list[Finding]:
    """Per non-base variant: in how many tasks its headline is significantly above / below base."""
    out = []
    for v in [v for v in _plain(variants) if v != "base"]:
        r = head[(head["variant"] == v) & head["task"].isin(tasks) & head["diff"].notna()]
        if r.empty:
            continue
        sig = r["p_value"] < ALPHA
        up, down = int((sig & (r["diff"] > 0)).sum()), int((sig & (r["diff"] < 0)).sum())
        out.append(Finding("headline", f"{v} vs base, task by task: significantly better in {up}, significantly "
                                       f"worse in {down}, no significant difference in {len(r) - up - down} of "
                                       f"{len(r)} tasks (paired test per task, p < {ALPHA}; see the metrics table)."))
    return out


def headline_findings(rows: pd.DataFrame, variants: list[str]) -> list[Finding]:
    """One sentence per task (MACRO last): each variant's headline value [CI], Δ vs base [CI], p, n;
    with more than :data:`MAX_TASK_SENTENCES` tasks, MACRO and a per-variant tally instead."""
    head = rows[rows["headline"].astype(bool) & rows["kind"].isin(["task", "macro"])]
    tasks = [t for t in dict.fromkeys(head["task"]) if t not in (POOLED, MACRO)]
    many = len(tasks) > MAX_TASK_SENTENCES
    scopes = ([] if many else sorted(tasks)) + ([MACRO] if len(tasks) > 1 and (head["task"] == MACRO).any() else [])
    out = []
    for task in scopes:
        parts, metric, n = [], "", 0
        for v in _plain(variants):
            hit = head[(head["task"] == task) & (head["variant"] == v)]
            if hit.empty:
                continue
            r = hit.iloc[0]
            metric, n = str(r["metric"]), max(n, int(r["n"]))
            text = f"{v} {fmt_ci(r['value'], r['ci_low'], r['ci_high'])}"
            if finite(r["diff"]):
                text += (f" (Δ vs base {fmt_ci(r['diff'], r['diff_ci_low'], r['diff_ci_high'], sign=True)}, "
                         f"{_p(r['p_value'])}, {_sig(r['p_value'])}, paired n = {int(r['n_pairs'])})")
            parts.append(text)
        if parts:
            label = "MACRO (mean of the tasks' headlines)" if task == MACRO else f"{task} ({metric}, n = {n})"
            out.append(Finding("headline", f"{label}: {'; '.join(parts)}."))
    return out + (task_tally(head, tasks, variants) if many else [])


def dependence_findings(rows: pd.DataFrame) -> list[Finding]:
    """Per (task, un-ablated variant) with ablated variants: the smallest-K contrast and the dependence K."""
    d = rows[rows["kind"] == DEP_KIND]
    out = []
    for (task, variant), g in d.groupby(["task", "variant"], sort=False):
        curve = g[g["metric"] != DEPENDENCE_K].sort_values("t")
        k = g[g["metric"] == DEPENDENCE_K]
        if curve.empty or k.empty:
            continue
        first, tested = curve.iloc[0], [int(t) for t in curve["t"]]
        flags = str(k["flags"].iloc[0] or "")
        if NOT_RESOLVED in flags:
            verdict = (f"dependence K is not resolved at this n (the K = {tested[0]} contrast itself is not "
                       f"significant; more samples would resolve it)")
        elif BEYOND in flags:
            verdict = f"it still needs the image at the largest K tried (dependence K > {max(tested)})"
        else:
            verdict = (f"dependence K = {int(k['value'].iloc[0])} "
                       "(from there on the ablation changes nothing significant)")
        out.append(Finding("dependence", (
            f"{task}, {variant}: with the image removed from generated token {tested[0]} on, {first['metric']} is "
            f"{fmt_ci(first['value'], first['ci_low'], first['ci_high'])} (Δ "
            f"{fmt_ci(first['diff'], first['diff_ci_low'], first['diff_ci_high'], sign=True)}, {_p(first['p_value'])}, "
            f"paired n = {int(first['n_pairs'])}); {verdict}.")))
    return out


def decay_findings(rows: pd.DataFrame, variants: list[str]) -> list[Finding]:
    """Per task: early -> late visual mass on the fixed cohort, with the per-sample ratio [CI]."""
    d = rows[(rows["kind"] == "decay") & rows["metric"].isin(["mass_early", "mass_late", "mass_ratio"])]
    out = []
    for task in [t for t in dict.fromkeys(d["task"]) if t != POOLED]:
        parts, band = [], ""
        for v in _plain(variants):
            g = d[(d["task"] == task) & (d["variant"] == v)].set_index("metric")
            if not {"mass_early", "mass_late", "mass_ratio"} <= set(g.index):
                continue
            e, late, r = g.loc["mass_early"], g.loc["mass_late"], g.loc["mass_ratio"]
            band, w, t_c = str(r["band"]), int(e["t"]), int(r["t"])
            parts.append(f"{v} {fmt(e['value'], 4)} at t 1–{w} → {fmt(late['value'], 4)} at t {t_c - w + 1}–{t_c}, "
                         f"ratio {fmt_ci(r['value'], r['ci_low'], r['ci_high'], digits=2)} (n = {int(r['n'])})")
        if parts:
            t_c = band.removeprefix("cohort@")
            out.append(Finding("decay", f"{task}: visual attention mass on the fixed cohort (the samples that reached "
                                        f"t = {t_c}, the same samples at every step): {'; '.join(parts)}."))
    return out


def caveat_findings(rows: pd.DataFrame, variants: list[str]) -> list[Finding]:
    """Small n, survivor selection and truncation, each only where it applies."""
    out = []
    plain = _plain(variants)
    head = rows[rows["headline"].astype(bool) & (rows["kind"] == "task") & rows["variant"].isin(plain)]
    few = sorted({(t, int(n)) for t, n in zip(head["task"], head["n"]) if small_n(n)})
    if few:
        out.append(Finding("caveat", "Small n: " + ", ".join(f"{t} rests on {n} samples" for t, n in few)
                           + f" (fewer than {SMALL_N}, marked †): wide CIs, and a real difference can miss "
                           f"p < {ALPHA}."))
    dec = rows[(rows["kind"] == "decay") & rows["variant"].isin(plain) & (rows["task"] != POOLED)]
    sel = []
    for (task, v), g in dec.groupby(["task", "variant"], sort=False):
        ratio = g[g["metric"] == "mass_ratio"]
        fit_all = g[(g["band"] == "all") & (g["metric"] == "decay_a")]
        if len(ratio) and len(fit_all) and int(ratio["n"].iloc[0]) < int(fit_all["n"].iloc[0]):
            sel.append(f"{task}/{v} {int(ratio['n'].iloc[0])} of {int(fit_all['n'].iloc[0])}")
    if sel:
        out.append(Finding("caveat", "Survivor selection: late positions are reached only by long outputs (cohort "
                                     f"samples: {', '.join(sel)}), so the all-samples curve and half-life mix "
                                     "different samples at different t; the fixed-cohort rows compare like with like."))
    trunc = rows[(rows["kind"] == "run") & (rows["metric"] == "truncation_rate") & rows["variant"].isin(plain)
                 & ~rows["task"].isin([POOLED, MACRO])]
    cut = [f"{t}/{v} {float(x):.0%}" for t, v, x in zip(trunc["task"], trunc["variant"], trunc["value"])
           if finite(x) and x > 0]
    if cut:
        out.append(Finding("caveat", f"Truncation: outputs that hit max_new_tokens ({', '.join(cut)}) may have lost "
                                     "their answer; raise --max-new-tokens if that share matters."))
    return out


def findings(rows: pd.DataFrame, variants: list[str]) -> list[Finding]:
    """Every finding of a run, in :data:`TOPICS` order (empty for a run without rows)."""
    if rows.empty:
        return []
    return [*headline_findings(rows, variants), *dependence_findings(rows), *decay_findings(rows, variants),
            *caveat_findings(rows, variants)]


__all__ = ["TOPICS", "Finding", "caveat_findings", "decay_findings", "dependence_findings", "findings",
           "headline_findings"]
