"""The visual-forgetting leaderboard: runs x variants ranked by a few headline numbers.

One line per (run, variant) -- ablated ``V+blind:after=K`` variants are not ranked, they give V
its dependence K -- with, all read from the metric rows (:mod:`pvm_bench.report.rows`):

- ``accuracy``: the task's headline metric for a one-task run, else the pooled ``ALL`` accuracy;
- ``macro``: the ``MACRO`` average of the tasks' headline metrics (several tasks only);
- ``mass@64``, ``mass@256``, ``mass@1024``: all-layer visual mass at those generated positions
  (band ``all``; the pooled scope for several tasks), with their bootstrap CIs over samples;
- ``half-life``: the fitted half-life of the fixed cohort's decay (``cohort@T``: the samples that
  reached T, steps 1..T; the all-samples fit mixes different samples at different t and is not
  ranked) with its bootstrap CI (flagged "extrapolated" beyond T; ``inf`` = "never": the fitted law
  never halves), and ``half_life_cohort_t`` = T;
- ``dependence K``: the smallest tested K from which blinding no longer changes accuracy
  (:mod:`pvm_bench.report.dependence`; one value per task when there are several).

Rank: by ``rank_by`` (default: macro when present, else accuracy), descending; missing values
last. CSV columns keep every number (value and CI apart); the markdown shows "value [low, high]".
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pvm_bench.report.dependence import DEPENDENCE_K, NOT_RESOLVED, split_ablated
from pvm_bench.report.dependence import KIND as DEP_KIND
from pvm_bench.report.rows import MACRO, POOLED
from pvm_bench.report.summary import Summary
from pvm_bench.report.views import finite, fmt, fmt_ci

MASS_T = (64, 256, 1024)
RANK_KEYS = ("macro", "accuracy", "mass@64", "mass@256", "mass@1024", "half_life", "dependence_k")
"""Accepted ``rank_by`` values (dependence_k and half_life rank higher = better: longer use of the image)."""


def _one(rows: pd.DataFrame, **sel: Any) -> dict[str, Any]:
    hit = rows
    for key, value in sel.items():
        hit = hit[hit["t"] == value] if key == "t" else hit[hit[key] == value]
    return hit.iloc[0].to_dict() if len(hit) else {}


def leaderboard_rows(summary: Summary, run: str, model: str) -> list[dict[str, Any]]:
    """The leaderboard lines of one run (not yet ranked)."""
    rows = summary.rows
    if rows.empty:
        return []
    tasks = sorted({t for t in rows["task"] if t not in (POOLED, MACRO)})
    scope = tasks[0] if len(tasks) == 1 else POOLED
    variants = [v for v in dict.fromkeys(rows["variant"]) if split_ablated(v) is None]
    out = []
    for variant in variants:
        line: dict[str, Any] = {
            "run": run,
            "model": model,
            "task": scope if len(tasks) == 1 else f"{POOLED} ({len(tasks)} tasks)",
            "variant": variant,
        }
        if len(tasks) == 1:
            acc = _one(rows, task=scope, variant=variant, kind="task", headline=True)
        else:
            acc = _one(rows, task=POOLED, variant=variant, kind="pooled")
        macro = _one(rows, task=MACRO, variant=variant, kind="macro") if len(tasks) > 1 else {}
        for name, r in (("accuracy", acc), ("macro", macro)):
            line[name] = r.get("value", math.nan)
            line[f"{name}_ci_low"], line[f"{name}_ci_high"] = r.get("ci_low", math.nan), r.get("ci_high", math.nan)
        for t in MASS_T:
            r = _one(rows, task=scope, variant=variant, kind="decay", band="all", metric="visual_mass", t=float(t))
            line[f"mass@{t}"] = r.get("value", math.nan)
            line[f"mass@{t}_ci_low"], line[f"mass@{t}_ci_high"] = r.get("ci_low", math.nan), r.get("ci_high", math.nan)
        cohort = rows[(rows["task"] == scope) & (rows["variant"] == variant) & (rows["kind"] == "decay")
                      & rows["band"].astype(str).str.startswith("cohort@") & (rows["metric"] == "half_life_fit")]
        hl = cohort.iloc[0].to_dict() if len(cohort) else {}
        line["half_life_cohort_t"] = float(str(hl["band"]).removeprefix("cohort@")) if hl else math.nan
        line["half_life"] = hl.get("value", math.nan)
        if not finite(line["half_life"]) and hl.get("ci_high") == math.inf:
            line["half_life"] = math.inf  # the fit never halves (a high floor): ranks as the longest
        line["half_life_ci_low"], line["half_life_ci_high"] = hl.get("ci_low", math.nan), hl.get("ci_high", math.nan)
        line["half_life_extrapolated"] = "extrapolated" in str(hl.get("flags", ""))
        dep = rows[(rows["kind"] == DEP_KIND) & (rows["variant"] == variant) & (rows["metric"] == DEPENDENCE_K)]
        line["dependence_k"] = float(dep["value"].iloc[0]) if len(dep) == 1 else (
            float(dep["value"].max()) if len(dep) else math.nan)
        line["dependence_k_not_resolved"] = bool(dep["flags"].astype(str).str.contains(NOT_RESOLVED).any()) \
            if len(dep) else False
        line["dependence_k_beyond_tested"] = (
            bool(dep["flags"].astype(str).str.contains("beyond").any()) if len(dep) else False
        )
        tested = rows[(rows["kind"] == DEP_KIND) & (rows["variant"] == variant) & (rows["metric"] != DEPENDENCE_K)]["t"]
        line["dependence_k_max_tested"] = float(tested.max()) if len(tested) else math.nan
        line["dependence_k_by_task"] = (
            "; ".join(f"{t}:{int(v)}" for t, v in zip(dep["task"], dep["value"]) if finite(v)) if len(dep) > 1 else ""
        )
        out.append(line)
    return out


def check_rank_by(rank_by: str | None) -> None:
    """:class:`~pvm_bench.report.rundata.ReportInputError` naming the columns when ``rank_by`` is
    not one (None: the default column)."""
    if rank_by is not None and rank_by not in RANK_KEYS:
        from pvm_bench.report.rundata import ReportInputError

        raise ReportInputError(f"--rank-by {rank_by!r} is not a leaderboard column; use one of {', '.join(RANK_KEYS)}")


def rank(lines: list[dict[str, Any]], rank_by: str | None = None) -> pd.DataFrame:
    """The leaderboard frame, ranked (``rank`` 1 = best); see the module docstring."""
    frame = pd.DataFrame(lines)
    if frame.empty:
        return frame
    if rank_by is None:
        rank_by = "macro" if frame["macro"].notna().any() else "accuracy"
    check_rank_by(rank_by)
    warning = (
        ""
        if frame[rank_by].notna().any()
        else (
            f"--rank-by {rank_by}: no run has a value in this column ("
            + (
                f"no sample of any run reached t = {rank_by.removeprefix('mass@')}"
                if rank_by.startswith("mass@")
                else "no run measured it"
            )
            + "), so the leaderboard keeps the runs' order; rank by another column"
        )
    )
    frame = frame.sort_values(rank_by, ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame.attrs["rank_by"] = rank_by
    frame.attrs["empty_rank_warning"] = warning
    return frame


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """The markdown view: one "value [CI]" cell per headline number; a mass@t column that no run
    reached is left out unless it is the ranked one."""
    if frame.empty:
        return frame
    out = []
    for r in frame.to_dict("records"):
        line = {
            "rank": r["rank"],
            "run": r["run"],
            "model": r["model"],
            "task": r["task"],
            "variant": r["variant"],
            "accuracy": fmt_ci(r["accuracy"], r["accuracy_ci_low"], r["accuracy_ci_high"]),
        }
        if frame["macro"].notna().any():
            line["macro"] = fmt_ci(r["macro"], r["macro_ci_low"], r["macro_ci_high"])
        for t in MASS_T:
            line[f"mass@{t}"] = fmt_ci(r[f"mass@{t}"], r[f"mass@{t}_ci_low"], r[f"mass@{t}_ci_high"], digits=4)
        hl = (
            fmt_ci(r["half_life"], r["half_life_ci_low"], r["half_life_ci_high"], digits=0)
            if finite(r["half_life"])
            else "never"
            if r["half_life"] == math.inf
            else "–"
        )
        line["half-life"] = hl + (" (extrapolated)" if r["half_life_extrapolated"] and hl != "–" else "")
        if finite(r.get("half_life_cohort_t")) and hl != "–":
            line["half-life"] += f" (cohort T={int(r['half_life_cohort_t'])})"
        k = r["dependence_k"]
        line["dependence K"] = (
            ("not resolved at this n" if r.get("dependence_k_not_resolved") else "–")
            if not finite(k)
            else (
                f"> {fmt(r['dependence_k_max_tested'], 0)} (beyond tested)"
                if r["dependence_k_beyond_tested"]
                else r["dependence_k_by_task"] or fmt(k, 0)
            )
        )
        out.append(line)
    view = pd.DataFrame(out)
    rank_by = frame.attrs.get("rank_by", "")
    empty = [f"mass@{t}" for t in MASS_T if f"mass@{t}" != rank_by and (view[f"mass@{t}"] == "–").all()]
    return view.drop(columns=empty)  # a column no run reached says nothing (the ranked one is always kept)


NOTE = (
    "Ranked by {rank_by} (higher first). accuracy = the task's headline metric (pooled over tasks when "
    "there are several), macro = mean of the tasks' headlines; mass@t = all-layer visual mass at generated "
    "position t; half-life = fitted on the fixed cohort (the samples that reached T, steps 1..T), "
        "from the start level; dependence K = first tested K from which removing "
    "the image no longer changes accuracy significantly (runs with --ablate-after). 95% CIs in brackets."
)
