"""Long-format metric rows of a run: the one table summary.md, report.html, compare and check read.

One row per (task, variant, metric, band, t); see :data:`ROW_COLUMNS` and reports/README.md.
Consumers select rows by those keys and never parse column names.

Score metrics (this module):

- per task and variant, every :class:`~pvm_bench.tasks.base.Metric` the task declares (``kind="task"``,
  the headline marked ``headline=True``): value, 95% CI over the metric's units (Wilson for 0/1
  units, else bootstrap; :mod:`pvm_bench.report.estimate`), and
  the paired difference vs ``base`` (units paired by key) with its CI and p-value;
- ``task="ALL"`` (``kind="pooled"``, runs with several tasks): the mean score over samples keyed
  by (task, sample_id), repeats averaged first, so tasks that share sample ids are never merged;
- ``task="MACRO"`` (``kind="macro"``): the mean over tasks of each task's headline metric, its
  CI resampling units within each task, and a paired test vs ``base``
  (:mod:`pvm_bench.report.estimate`);
- descriptive run rows (``kind="run"``, ``higher_is_better=None``): truncation, error and
  unparsed rates (unparsed = share of records whose scorer reported ``extractor == "none"``,
  only when the task's scorer reports an extractor), unfinished-reasoning rate (share of outputs
  that end inside an unclosed ``<think>``, :func:`pvm_bench.scoring.extract.is_unfinished`), mean output
  length, tokens/s;
- accuracy by output-length bucket (``kind="length"``, ``band`` = bucket label, 95% CI from
  :func:`~pvm_bench.report.stats.accuracy_ci`, flag ``small_n`` below 30 records) and score-flag
  rates (``kind="flag"``, metric ``flag_<name>``).

Accuracy by a task's declared distance (``kind="distance"``) comes from
:func:`pvm_bench.report.distance.distance_rows`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pvm_bench.report.estimate import Groups, grouped_estimate, grouped_paired
from pvm_bench.report.rundata import REFERENCE_VARIANT, RunData
from pvm_bench.report.stats import accuracy_ci
from pvm_bench.scoring import is_unfinished
from pvm_bench.tasks import Metric, Task, unit_values

POOLED = "ALL"
MACRO = "MACRO"
#: Output-length bucket edges (tokens): octaves, so short diagnostics and long reasoning answers
#: are both resolved.
LENGTH_EDGES: tuple[float, ...] = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096, math.inf)
#: Fewer units than this marks a row ``small_n`` (its CI is wide and its p-value weak).
SMALL_N = 30

ROW_COLUMNS = [
    "task", "variant", "metric", "band", "t", "value", "ci_low", "ci_high", "n", "higher_is_better",
    "headline", "kind", "diff", "diff_ci_low", "diff_ci_high", "p_value", "p_method", "n_pairs", "flags",
]


def length_buckets() -> list[tuple[float, float, str]]:
    """(low, high, label) of the output-length buckets; ``high`` is exclusive."""
    out = []
    for lo, hi in itertools.pairwise(LENGTH_EDGES):
        label = f"{int(lo)}_{int(hi) - 1}" if math.isfinite(hi) else f"{int(lo)}_plus"
        out.append((lo, hi, label))
    return out


def row(task: str, variant: str, metric: str, value: float, **kw: Any) -> dict[str, Any]:
    """One metric row with defaults for every column of :data:`ROW_COLUMNS`."""
    out: dict[str, Any] = {
        "task": task, "variant": variant, "metric": metric, "band": "", "t": math.nan, "value": value,
        "ci_low": math.nan, "ci_high": math.nan, "n": 0, "higher_is_better": None, "headline": False,
        "kind": "task", "diff": math.nan, "diff_ci_low": math.nan, "diff_ci_high": math.nan,
        "p_value": math.nan, "p_method": "", "n_pairs": 0, "flags": "",
    }
    out.update(kw)
    return out


@dataclass
class TaskInfo:
    """What the report knows about a task of the run: its declared metrics, the headline, and a
    comparability note (read from the run's tasks.json, see :func:`task_infos`)."""

    name: str
    metrics: list[Metric]
    headline: str
    comparability_note: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: ``Task.distance_key`` / ``Task.distance_label`` (see :mod:`pvm_bench.report.distance`).
    distance_key: str | None = None
    distance_label: str = ""


@functools.lru_cache(maxsize=1)
def _builtin_tasks() -> dict[str, Task]:
    """The package's built-in tasks (package code; never a run's plugins nor entry points)."""
    from pvm_bench.tasks import get_registry

    return dict(get_registry(entry_points=False).tasks)


def _info_from_task(task: Task) -> TaskInfo:
    key = getattr(task, "distance_key", None)
    return TaskInfo(task.name, task.metrics(), task.headline_metric().name, task.comparability_note,
                    distance_key=str(key) if key else None,
                    distance_label=str(getattr(task, "distance_label", "") or ""))


def task_infos(data: RunData) -> dict[str, TaskInfo]:
    """A :class:`TaskInfo` per task of the run, from the run's ``tasks.json`` (data written at run
    time, :mod:`pvm_bench.runner.taskmeta`): reading a run never imports its plugins. A run without
    tasks.json (made before it existed) uses the package's built-in tasks; any other task is
    reported with the default ``accuracy`` metric and a note in ``data.warnings``."""
    from pvm_bench.runner.taskmeta import read_task_file, spec_metrics

    stored = read_task_file(data.run_dir)
    out: dict[str, TaskInfo] = {}
    for name in data.tasks:
        spec = stored.tasks.get(name) if stored is not None else None
        if spec is not None:
            metrics, warnings = spec_metrics(spec)
            for w in warnings:
                if w not in data.warnings:
                    data.warnings.append(w)
            headline = spec.headline if any(m.name == spec.headline for m in metrics) else None
            metrics = metrics or [Metric("accuracy")]
            out[name] = TaskInfo(name, metrics, headline or metrics[0].name, spec.comparability_note,
                                 distance_key=spec.distance_key, distance_label=spec.distance_label)
        elif stored is None and name in _builtin_tasks():
            out[name] = _info_from_task(_builtin_tasks()[name])
        else:
            note = (f"task {name}: not described in the run's tasks.json" if stored is not None else
                    f"task {name}: the run has no tasks.json (made by an older pvm-bench) and {name} is not built in")
            note += "; reported with the default accuracy metric"
            if note not in data.warnings:
                data.warnings.append(note)
            out[name] = TaskInfo(name, [Metric("accuracy")], "accuracy")
    return out


def _infos(s: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {**(m or {}), **(d or {}), **(f or {}), "sample_id": sid}
        for m, d, f, sid in zip(s["metadata"], s["score_details"], s["score_flags"], s["sample_id"])
    ]


def metric_groups(metric: Metric, s: pd.DataFrame) -> Groups:
    """The metric's units of the records ``s`` (one task and variant) as estimate groups:
    one group per stratum, equal weights."""
    if metric.subscore:
        values: Sequence[float] = [d.get(metric.subscore, math.nan) for d in s["sub_scores"]]
    else:
        values = s["score"].tolist()
    units = unit_values(metric, _infos(s), values, s["repeat"].tolist())
    strata: dict[Hashable, dict[Hashable, float]] = {}
    for unit, (stratum, value) in units.items():
        strata.setdefault(stratum, {})[unit] = value
    return {k: (1.0 / len(strata), v) for k, v in strata.items()}


def _paired_cols(base: Groups | None, other: Groups, seed: int) -> dict[str, Any]:
    if base is None:
        return {}
    pd_ = grouped_paired(base, other, seed=seed)
    return {"diff": pd_.diff, "diff_ci_low": pd_.low, "diff_ci_high": pd_.high, "p_value": pd_.p_value,
            "p_method": pd_.method, "n_pairs": pd_.n}


def _estimate_row(task: str, variant: str, metric: str, groups: Groups, base: Groups | None, seed: int,
                  **kw: Any) -> dict[str, Any]:
    est = grouped_estimate(groups, seed=seed)
    flags = "small_n" if 0 < est.n < SMALL_N else ""
    return row(task, variant, metric, est.value, ci_low=est.low, ci_high=est.high, n=est.n, flags=flags,
               **_paired_cols(base, groups, seed), **kw)


def _run_rows(task: str, variant: str, s: pd.DataFrame) -> list[dict[str, Any]]:
    n = len(s)
    tps = s.loc[s["tokens_per_s"] > 0, "tokens_per_s"]
    out = [
        row(task, variant, "truncation_rate", float(s["truncated"].mean()), n=n, kind="run"),
        row(task, variant, "error_rate", float((s["finish_reason"] == "error").mean()), n=n, kind="run"),
        row(task, variant, "mean_n_generated", float(s["n_generated"].mean()), n=n, kind="run"),
        row(task, variant, "tokens_per_s", float(tps.mean()) if len(tps) else math.nan, n=len(tps), kind="run"),
    ]
    texts = s[s["output"].map(lambda o: isinstance(o, str))]
    if len(texts):  # outputs cut inside an unclosed <think> (scored 0 by default, parsed under --protocol lmms-eval)
        prompts = texts["prompt"] if "prompt" in texts else pd.Series("", index=texts.index)
        unfinished = [is_unfinished(o, prompt=p) for o, p in zip(texts["output"], prompts)]
        out.append(row(task, variant, "unfinished_reasoning_rate", float(sum(unfinished) / len(unfinished)),
                       n=len(texts), kind="run"))
    reported = s["extractor"].notna()
    if reported.any():
        share = float((s.loc[reported, "extractor"] == "none").mean())
        out.append(row(task, variant, "unparsed_rate", share, n=int(reported.sum()), kind="run"))
    for lo, hi, label in length_buckets():
        b = s[(s["n_generated"] >= lo) & (s["n_generated"] < hi)]
        if len(b):
            ci = accuracy_ci(b["score"].to_numpy(dtype=float))  # Wilson for 0/1 scores: never zero width
            out.append(row(task, variant, "accuracy", float(b["score"].mean()), band=f"len:{label}", n=len(b),
                           kind="length", ci_low=ci.low, ci_high=ci.high, flags="small_n" if ci.small_n else ""))
    flags = pd.DataFrame([f if isinstance(f, dict) else {} for f in s["score_flags"]])
    for name in sorted(flags.columns):
        col = flags[name].dropna()
        if len(col):
            out.append(row(task, variant, f"flag_{name}", float(col.astype(bool).mean()), n=len(col), kind="flag"))
    return out


GroupKey = tuple[str, str, str]  # (task, variant, metric)


def collect_groups(data: RunData, infos: dict[str, TaskInfo]) -> dict[GroupKey, Groups]:
    """The estimate groups of every score metric of a run: each task's declared metrics, the
    pooled ``ALL`` accuracy (units (task, sample_id)) and the ``MACRO`` average of the tasks'
    headline metrics (units keyed by (task, stratum) groups). Insertion order: tasks, ALL, MACRO.
    A metric whose grouping fields the records lack is skipped with a warning in ``data.warnings``."""
    samples = data.samples
    out: dict[GroupKey, Groups] = {}
    if samples.empty:
        return out
    variants = [v for v in data.variants if v in set(samples["variant"])]
    headline: dict[str, dict[str, Groups]] = {v: {} for v in variants}
    for task, info in infos.items():
        st = samples[samples["task"] == task]
        for variant in variants:
            s = st[st["variant"] == variant]
            if s.empty:
                continue
            for m in info.metrics:
                try:
                    g = metric_groups(m, s)
                except (KeyError, TypeError, ValueError) as exc:
                    msg = (
                        f"task {task}: metric {m.name} skipped ({type(exc).__name__}: {exc}); records lack its "
                        "grouping fields"
                    )
                    if msg not in data.warnings:
                        data.warnings.append(msg)
                    continue
                if not g and m.name != info.headline:
                    continue  # no record this metric covers (an MMStar category absent from the run)
                out[(task, variant, m.name)] = g
                if m.name == info.headline:
                    headline[variant][task] = g
    if len(infos) > 1:
        for variant in variants:
            per = samples[samples["variant"] == variant].groupby(["task", "sample_id"])["score"].mean()
            out[(POOLED, variant, "accuracy")] = {None: (1.0, dict(zip(per.index, per.to_numpy(dtype=float))))}
        for variant in variants:
            if headline[variant]:
                out[(MACRO, variant, "macro_average")] = _macro_groups(headline[variant])
    return out


def _base_groups(groups: dict[GroupKey, Groups], key: GroupKey) -> Groups | None:
    """``base``'s groups for the same (task, metric); for MACRO restricted to the variant's tasks."""
    task, variant, metric = key
    if variant == REFERENCE_VARIANT:
        return None
    base = groups.get((task, REFERENCE_VARIANT, metric))
    if base is None or task != MACRO:
        return base
    tasks = {g[0] for g in groups[key]}
    return {g: v for g, v in base.items() if g[0] in tasks}


def score_rows(
    data: RunData, infos: dict[str, TaskInfo], seed: int = 0, groups: dict[GroupKey, Groups] | None = None,
) -> list[dict[str, Any]]:
    """Task, pooled, macro, run, length and flag rows of a run (see the module docstring).
    ``groups``: :func:`collect_groups` of ``(data, infos)`` when the caller has it already."""
    samples = data.samples
    groups = collect_groups(data, infos) if groups is None else groups
    out: list[dict[str, Any]] = []
    specs = {(t, m.name): m for t, info in infos.items() for m in info.metrics}
    for key, g in groups.items():
        task, variant, metric = key
        kind = "pooled" if task == POOLED else "macro" if task == MACRO else "task"
        spec = specs.get((task, metric))
        r = _estimate_row(task, variant, metric, g, _base_groups(groups, key), seed,
                          higher_is_better=spec.higher_is_better if spec else True,
                          headline=kind != "task" or metric == infos[task].headline, kind=kind)
        if kind == "macro":
            r["flags"] = ";".join(x for x in (r["flags"], f"tasks={len({k[0] for k in g})}") if x)
        out.append(r)
    scopes = dict.fromkeys((t, v) for t, v, _ in groups)
    for task, variant in scopes:
        if task == MACRO:
            continue
        s = samples[samples["variant"] == variant]
        if task != POOLED:
            s = s[s["task"] == task]
        out.extend(r for r in _run_rows(task, variant, s) if task != POOLED or r["kind"] == "run")
    return out


def _macro_groups(by_task: dict[str, Groups]) -> Groups:
    """Each task weighted 1/T, its strata sharing the task's weight as in its own metric."""
    out: dict[Hashable, tuple[float, dict[Hashable, float]]] = {}
    for task, groups in by_task.items():
        for stratum, (w, units) in groups.items():
            out[(task, stratum)] = (w / len(by_task), dict(units))
    return out


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame with exactly :data:`ROW_COLUMNS` (extra keys dropped)."""
    return pd.DataFrame(rows, columns=ROW_COLUMNS)
