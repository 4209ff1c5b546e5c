"""Build a run's summary: long metric rows plus the wide summary.csv view.

Contract of :func:`build_summary` (see reports/README.md for every column):

- ``Summary.rows``: the long metric rows (:data:`pvm_bench.report.rows.ROW_COLUMNS`) that
  summary.md, report.html, compare and check read: task metrics as the task declares them
  (:meth:`pvm_bench.tasks.base.Task.metrics`, bootstrap over the metric's units, paired difference vs
  ``base``), the pooled ``ALL`` row keyed by (task, sample_id, repeat), the ``MACRO`` average of the
  tasks' headline metrics, run rows (truncation, errors, unparsed share, length, speed), accuracy by
  output length, score flags, and decay/probe/convergence rows (:mod:`pvm_bench.report.decay`);
- ``Summary.table``: one row per task and variant (``ALL`` and ``MACRO`` last) for summary.csv and
  the plots: ``metric`` (the headline's name), ``accuracy``/``acc_ci_low``/``acc_ci_high`` (the
  headline value and CI), the paired difference, run values, ``acc_len_*``, ``flag_*``, every
  other task metric as ``{metric}``/``{metric}_ci_low``/``{metric}_ci_high``, and the decay columns.
  A readable view only: nothing parses its column names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pvm_bench.report.attention_agg import AttentionAggregates
from pvm_bench.report.attention_engine import release_freed_memory
from pvm_bench.report.cohort_ratio import cohort_ratio_rows
from pvm_bench.report.curves import cohort_t_of
from pvm_bench.report.decay import (
    BANDS,
    DECAY_NOTE,
    FitStatsByBand,
    decay_block,
    decay_rows,
    layer_bands,
    layer_span,
)
from pvm_bench.report.dependence import dependence_rows
from pvm_bench.report.distance import distance_rows
from pvm_bench.report.estimate import Groups
from pvm_bench.report.fit import DecayFit
from pvm_bench.report.per_image import image_rows
from pvm_bench.report.rows import (
    MACRO,
    POOLED,
    GroupKey,
    TaskInfo,
    collect_groups,
    length_buckets,
    rows_frame,
    score_rows,
    task_infos,
)
from pvm_bench.report.rundata import REFERENCE_VARIANT, ReportInputError, RunData, load_run, visual_rows
from pvm_bench.report.views import to_markdown

ALL_TASKS = POOLED

__all__ = [
    "ALL_TASKS", "BANDS", "DECAY_NOTE", "MACRO", "REFERENCE_VARIANT", "ReportInputError", "RunData", "Summary",
    "build_summary", "layer_bands", "layer_span", "length_buckets", "load_run", "to_markdown", "visual_rows",
]


@dataclass
class Summary:
    """Output of :func:`build_summary`. ``curves`` has columns task, variant, band, step, mass
    (the fitted curve points); ``fits`` maps (task, variant, band) -> :class:`DecayFit`."""

    table: pd.DataFrame
    bands: dict[str, list[int]]
    curves: pd.DataFrame
    fits: dict[tuple[str, str, str], DecayFit]
    has_entropy: bool
    rows: pd.DataFrame = field(default_factory=lambda: rows_frame([]))
    tasks: dict[str, TaskInfo] = field(default_factory=dict)
    cohort_t: int | None = None
    """The fixed-cohort length asked for (``report --cohort T``); None = suggested per task."""
    groups: dict[GroupKey, Groups] = field(default_factory=dict)
    """The estimate groups behind the score rows (:func:`~pvm_bench.report.rows.collect_groups`),
    for the paired tests of check, baseline and compare."""


def build_summary(data: RunData, seed: int = 0, cohort_t: int | None = None) -> Summary:
    """The metric rows and the wide per task x variant table of a run (see the module docstring).

    ``cohort_t``: the fixed-cohort length of the decay rows with band ``cohort@T`` (all layers,
    only the samples that reached T tokens); default per task (and ALL): the
    :func:`~pvm_bench.report.curves.suggest_cohort_t` of all variants' samples together, so the
    variants of a task share one cohort length."""
    infos = task_infos(data)
    groups = collect_groups(data, infos)
    rows = score_rows(data, infos, seed, groups)
    rows.extend(distance_rows(data, infos, seed))  # kind="distance" (tasks with a distance_key)
    rows.extend(dependence_rows(data, infos, seed, groups))  # kind="dependence" (V+blind:after=K variants)
    rows.extend(image_rows(data, seed))  # kind="image" (--per-image runs)
    agg = data.agg
    bands = agg.bands if agg is not None and agg.has_visual else {}
    curves: list[pd.DataFrame] = []
    fits: dict[tuple[str, str, str], DecayFit] = {}
    wide_decay: dict[tuple[str, str], dict[str, Any]] = {}
    fit_stats: FitStatsByBand = {}  # the task scopes' fit statistics, where the pooled scope's fits start
    if agg is not None and len(agg.gens):
        tasks = data.tasks
        scopes = [(t, t) for t in tasks] + ([(POOLED, None)] if len(tasks) > 1 else [])
        for label, task in scopes:
            in_scope = agg.gen_mask(task)
            t_cohort = scope_cohort_t(agg, in_scope, bands, cohort_t, label, data.warnings)
            for variant in data.variants:
                mask = in_scope & agg.gen_mask(variant=variant)
                if not mask.any():
                    continue
                wide = decay_block(agg, mask, bands, seed, (label, variant), curves, fits, cohort_t=t_cohort,
                                   fit_stats=fit_stats, pooled=task is None)
                wide_decay[(label, variant)] = wide
                rows.extend(decay_rows(wide, label, variant, bands))
                rows.extend(cohort_ratio_rows(agg, mask, t_cohort, label, variant, seed))  # the findings' ratio
                release_freed_memory()  # a scope's per-row temporaries (13M rows pooled, paper scale)
    frame = rows_frame(rows)
    curve_df = (
        pd.concat(curves, ignore_index=True)
        if curves else pd.DataFrame(columns=["step", "mass", "task", "variant", "band"])
    )
    table = wide_view(frame, data, wide_decay)
    has_entropy = bool(agg is not None and len(agg.gens) and "entropy" in agg.columns)
    return Summary(table, bands, curve_df, fits, has_entropy, frame, infos, cohort_t, groups)


def scope_cohort_t(
    agg: AttentionAggregates, mask: np.ndarray, bands: dict[str, list[int]], requested: int | None, label: str,
    warnings: list[str],
) -> int | None:
    """The fixed-cohort length of one task scope (the generations in ``mask``): ``requested`` when
    given (a warning in ``warnings`` when no sample of the scope reached it), else the suggestion
    over every variant's samples of the scope (None when there is no all-layer band or too few samples)."""
    if not bands.get("all") or not agg.has_visual_in(mask):
        return None
    lengths = agg.visual_lengths(mask)  # every variant's generations of the scope
    if requested is None:
        return cohort_t_of(lengths)
    longest = int(lengths.max()) if lengths.size else 0
    if longest < requested:
        msg = (
            f"--cohort {requested}: no sample of {label} reached {requested} tokens (longest {longest}); no cohort rows"
        )
        if msg not in warnings:
            warnings.append(msg)
        return None
    return requested


def scope_order(rows: pd.DataFrame, data: RunData) -> list[tuple[str, str]]:
    """(task, variant) pairs in report order: tasks alphabetically, then ALL, then MACRO; variants
    in :attr:`RunData.variants` order."""
    present = set(zip(rows["task"], rows["variant"]))
    tasks = [*data.tasks, POOLED, MACRO]
    return [(t, v) for t in tasks for v in data.variants if (t, v) in present]


#: Wide columns of the headline; a secondary task metric with one of these names gets a ``task_`` prefix.
HEADLINE_COLUMNS = frozenset({"metric", "accuracy", "acc_ci_low", "acc_ci_high", "n_samples", "diff_vs_base"})


def wide_view(rows: pd.DataFrame, data: RunData, wide_decay: dict[tuple[str, str], dict[str, Any]]) -> pd.DataFrame:
    """The readable wide table (summary.csv) built from the metric rows."""
    out = []
    samples = data.samples
    for task, variant in scope_order(rows, data):
        r = rows[(rows["task"] == task) & (rows["variant"] == variant)]
        w: dict[str, Any] = {"task": task, "variant": variant}
        head = r[r["headline"].astype(bool)]
        if len(head):
            h = head.iloc[0]
            w.update(metric=h["metric"], accuracy=h["value"], acc_ci_low=h["ci_low"], acc_ci_high=h["ci_high"],
                     n_samples=int(h["n"]), diff_vs_base=h["diff"], diff_ci_low=h["diff_ci_low"],
                     diff_ci_high=h["diff_ci_high"], p_value=h["p_value"], p_method=h["p_method"],
                     n_pairs=int(h["n_pairs"]), small_n="small_n" in str(h["flags"]))
        if task not in (POOLED, MACRO) and len(samples):
            s = samples[(samples["task"] == task) & (samples["variant"] == variant)]
            w["n_records"] = len(s)
            w["n_repeats"] = int(s.groupby("sample_id")["repeat"].nunique().max()) if len(s) else 0
        for x in r.itertuples(index=False):
            if x.kind == "run":
                w[x.metric] = x.value
            elif x.kind == "length":
                label = x.band.removeprefix("len:")
                w[f"acc_len_{label}"], w[f"n_len_{label}"] = x.value, int(x.n)
            elif x.kind == "flag":
                w[x.metric] = x.value
            elif x.kind == "task" and not x.headline:
                # a secondary metric named like a headline column (MMBench's per-row "accuracy")
                name = f"task_{x.metric}" if x.metric in HEADLINE_COLUMNS else x.metric
                w[name], w[f"{name}_ci_low"], w[f"{name}_ci_high"] = x.value, x.ci_low, x.ci_high
        w.update(wide_decay.get((task, variant), {}))
        out.append(w)
    table = pd.DataFrame(out)
    for _lo, _hi, label in length_buckets():  # every bucket present, for a stable csv layout
        if len(table) and f"n_len_{label}" not in table:
            table[f"acc_len_{label}"], table[f"n_len_{label}"] = math.nan, 0
    if "n_len_0_31" in table:
        cols = [c for c in table.columns if c.startswith("n_len_")]
        table[cols] = table[cols].fillna(0).astype(int)
    return table


def headline(summary: Summary, task: str, variant: str) -> dict[str, Any] | None:
    """The headline metric row of (task, variant) as a dict, or None."""
    r = summary.rows
    hit = r[(r["task"] == task) & (r["variant"] == variant) & r["headline"].astype(bool)]
    return hit.iloc[0].to_dict() if len(hit) else None


def pvm_format(data: RunData) -> str | None:
    """``"adapter"`` / ``"full"`` for the run's ``--pvm`` (run.json ``adapter.format`` when recorded,
    else the files of the path as :func:`pvm_bench.pvm.io.detect_format` tells them apart), None
    when there is none or it cannot be told."""
    if data.run is None or not data.run.adapter:
        return None
    adapter = data.run.adapter
    if adapter.get("format") in ("adapter", "full"):
        return str(adapter["format"])
    path = Path(str(adapter.get("path") or "")).expanduser()
    if not str(adapter.get("path") or "") or not path.is_dir():
        return None
    if (path / "pvm_config.json").is_file():
        return "adapter"
    return "full" if (path / "config.json").is_file() else None


def base_note(data: RunData) -> str | None:
    """What the ``base`` variant is when ``--pvm`` was a full checkpoint loaded as its own model:
    the fine-tuned LLM with the branch off, not the original instruct model (the paper's baseline).
    A full checkpoint attached to another model passed the loader's base-weight check
    (pvm/io.py ``_check_full_base``), so there ``base`` is that model and nothing is said."""
    if REFERENCE_VARIANT not in data.variants or data.run is None or not data.run.adapter:
        return None
    raw = str(data.run.adapter.get("path") or "")
    source = str((data.run.model or {}).get("source") or data.run.config.get("model") or "")
    pvm_path = Path(raw).expanduser().resolve()
    # the same hub id / directory as --model and --pvm: a full checkpoint loaded as its own model
    # (an adapter directory has no config.json, so it cannot be the model)
    same = bool(raw) and (raw == source or (bool(source) and Path(source).expanduser().resolve() == pvm_path))
    if not same or pvm_format(data) == "adapter":
        return None
    return (
        f"`base` is the full PVM checkpoint {pvm_path.name if Path(raw).exists() else raw} with its PVM branch "
        "switched off, not the original "
        "instruct model: a checkpoint trained with SFT+GRPO has different LLM weights. For the paper's baseline, "
        "run the instruct model and pair the runs with `pvm-bench compare RUN_INSTRUCT RUN_PVM`."
    )
