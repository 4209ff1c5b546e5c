"""``pvm-bench compare RUN_A RUN_B ...``: the same metrics of several runs, paired across runs.

Runs get short labels (A, B, C, ...) listed with their run id, model, fingerprint, adapter and
status. For every metric row of the first run (task metrics, ALL, MACRO) and each later run, the
difference ``run - A`` is paired unit by unit across the runs: samples matched by
(task, sample_id, repeat), then grouped into the metric's units (CircularEval questions, ...), so
it is the paired CI and p-value of :func:`pvm_bench.report.estimate.grouped_paired`. Variants are
matched by name, or by explicit ``pairs`` (``("base", "pvm")``: A's ``base`` vs the other run's
``pvm``, e.g. the instruct model's run vs a full PVM checkpoint's run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.report.estimate import grouped_paired
from pvm_bench.report.mdtext import md_escape
from pvm_bench.report.rows import MACRO, POOLED
from pvm_bench.report.rundata import ReportInputError, RunData, load_run
from pvm_bench.report.summary import Summary, build_summary
from pvm_bench.report.views import finite, fmt, fmt_ci, fmt_p, to_markdown
from pvm_bench.tasks.defs import ALLOW_FLAG, definition_conflicts

#: Descriptive decay values shown per run (band "all"): (metric, t or None, label, digits).
DECAY_SHOWN: tuple[tuple[str, float | None, str, int, str], ...] = (
    ("visual_mass", 64.0, "mass@64", 4, "all"), ("visual_mass", 256.0, "mass@256", 4, "all"),
    ("half_life_fit", None, "half-life (fixed cohort)", 1, "cohort"),
    ("decay_r2", None, "fit R² (fixed cohort)", 3, "cohort"),
)
"""(metric, t or None, label, digits, band): band "cohort" = the run's ``cohort@T`` rows (the
all-samples half-life mixes different samples at different t, see the decay note)."""


#: How the paired differences of a comparison are computed (markdown and compare.html).
DELTA_NOTE = ("Δ: paired across runs by (task, sample_id, repeat), grouped into each metric's units; 95% CI: "
              "Newcombe's paired interval for 0/1 pairs of one group, else a percentile bootstrap (within each "
              "group for grouped metrics); p from McNemar (0/1 units) or a sign-flip test.")

@dataclass
class Comparison:
    """``runs``: one line per run (label, run_id, model, fingerprint, adapter, status, records);
    ``table``: long numeric rows (task, variant, metric, run, value, CI, diff vs A, p) for CSV;
    ``readable``: the markdown table (one line per task/variant/metric, a model line first)."""

    runs: pd.DataFrame
    table: pd.DataFrame
    readable: pd.DataFrame
    #: The visual-forgetting leaderboard (:mod:`pvm_bench.report.leaderboard`): ranked, numeric.
    leaderboard: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Variants paired across runs that ran another configuration (:func:`composition_notes`).
    notes: list[str] = field(default_factory=list)
    #: Things that change how to read the numbers: runs over different samples (:func:`sample_set_warnings`),
    #: a leaderboard ranked by an empty column.
    warnings: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        from pvm_bench.report.leaderboard import NOTE, readable

        board = ""
        if not self.leaderboard.empty:
            board = ("## Leaderboard\n\n" + NOTE.format(rank_by=self.leaderboard.attrs.get("rank_by", "accuracy"))
                     + "\n\n" + to_markdown(readable(self.leaderboard)) + "\n## Metrics\n\n")
        notes = "".join(f"> **warning**: {md_escape(w)}\n\n" for w in self.warnings)
        notes += "".join(f"> **not the same configuration**: {note}\n\n" for note in self.notes)
        return ("# pvm-bench compare\n\n" + to_markdown(self.runs) + "\n" + notes + board
                + DELTA_NOTE + "\n\n" + to_markdown(self.readable))


def run_labels(n: int) -> list[str]:
    """A, B, ..., Z, AA, AB, ..."""
    out = []
    for i in range(n):
        label, k = "", i
        while True:
            label = chr(ord("A") + k % 26) + label
            k = k // 26 - 1
            if k < 0:
                break
        out.append(label)
    return out


def model_label(data: RunData) -> str:
    """Short model name: the hub id or the last part of a local path."""
    model = (data.run.model if data.run else {}) or {}
    src = str(model.get("name") or model.get("source") or (data.run.config.get("model") if data.run else "") or "?")
    return src if src.count("/") == 1 and not Path(src).exists() else Path(src).name or src


def composition_notes(runs: list[RunData], labels: list[str], pairs: list[tuple[str, str]] | None) -> list[str]:
    """One line per variant whose paired variant in a later run resolved to another composition
    (run.json ``variant_compositions``), e.g. ``pai`` recorded as ``pvm+pai`` by an older run, or
    unknown there (a run recorded before compositions were)."""
    comps = [(d.run.variant_compositions if d.run else {}) or {} for d in runs]
    out = []
    for name in runs[0].variants:
        for k in range(1, len(runs)):
            other = next((b for a, b in pairs or () if a == name), name)
            if other not in runs[k].variants:
                continue
            mine, theirs = (comps[0].get(name) or {}).get("canonical"), (comps[k].get(other) or {}).get("canonical")
            unknown = mine is None or theirs is None
            if mine != theirs and not (unknown and {name, other} <= {"base", "pvm"} and name == other):
                unrecorded = "an unrecorded composition (a run made before compositions were recorded)"
                out.append(f"variant '{name}': {labels[0]} ran {mine or unrecorded}, {labels[k]} ran '{other}' as "
                           f"{theirs or unrecorded}")
    return out


def _runs_table(runs: list[RunData], labels: list[str]) -> pd.DataFrame:
    out = []
    for d, label in zip(runs, labels):
        model = (d.run.model if d.run else {}) or {}
        adapter = (d.run.adapter if d.run else None) or {}
        out.append(
            {
                "run": label,
                "run id": d.run_id,
                "model": model_label(d),
                "fingerprint": str(model.get("fingerprint") or "–"),
                "adapter": Path(str(adapter.get("path"))).name if adapter.get("path") else "–",
                "status": d.status,
                "records": len(d.samples),
            }
        )
    return pd.DataFrame(out)


def compare_runs(run_dirs: list[Path], seed: int = 0, pairs: list[tuple[str, str]] | None = None,
                 rank_by: str | None = None, allow_task_change: bool = False) -> Comparison:
    """Compare runs (see the module docstring) and rank their variants (``rank_by``: a
    :data:`pvm_bench.report.leaderboard.RANK_KEYS` column). Raises :class:`ReportInputError` on bad input,
    and when a task's recorded definition differs between runs (:func:`pvm_bench.tasks.defs.definition_conflicts`)
    unless ``allow_task_change``."""
    if len(run_dirs) < 2:
        raise ReportInputError("compare needs at least two run directories (pvm-bench compare RUN_A RUN_B ...)")
    from pvm_bench.report.leaderboard import check_rank_by

    check_rank_by(rank_by)  # before any run is read
    runs = [load_run(Path(p)) for p in run_dirs]
    conflicts = (
        [] if allow_task_change else definition_conflicts([(d.run_id, d.run.datasets if d.run else {}) for d in runs])
    )
    if conflicts:
        raise ReportInputError(
            "cannot pair these runs: "
            f"{conflicts[0]}{f' (and {len(conflicts) - 1} more)' if len(conflicts) > 1 else ''}; "
            f"pass {ALLOW_FLAG} to compare them anyway"
        )
    labels = run_labels(len(runs))
    summaries = [build_summary(d, seed=seed) for d in runs]
    groups = [s.groups for s in summaries]
    first = summaries[0].rows
    keys = first[first["kind"].isin(["task", "pooled", "macro"])][["task", "variant", "metric"]]
    table: list[dict[str, Any]] = []
    readable: list[dict[str, Any]] = [{"task": "model", "variant": "", "metric": "",
                                       **{f"{lab}": model_label(d) for lab, d in zip(labels, runs)}}]
    for task, variant, metric in keys.itertuples(index=False):
        line: dict[str, Any] = {"task": task, "variant": variant, "metric": metric}
        ref = groups[0].get((task, variant, metric))
        for k, (label, summary) in enumerate(zip(labels, summaries)):
            other_variant = variant if k == 0 else _paired_variant(variant, pairs, summary)
            r = _row(summary, task, other_variant, metric)
            rec = {"task": task, "variant": variant, "metric": metric, "run": label, "run_variant": other_variant,
                   "run_id": runs[k].run_id, "value": r.get("value", math.nan), "ci_low": r.get("ci_low", math.nan),
                   "ci_high": r.get("ci_high", math.nan), "n": r.get("n", 0)}
            line[label] = fmt_ci(rec["value"], rec["ci_low"], rec["ci_high"])
            if other_variant != variant:
                line[label] += f" ({other_variant})"
            if k > 0:
                other = groups[k].get((task, other_variant, metric))
                d = grouped_paired(ref, other, seed=seed) if ref is not None and other is not None else None
                rec.update(diff_vs_first=d.diff if d else math.nan, diff_ci_low=d.low if d else math.nan,
                           diff_ci_high=d.high if d else math.nan, p_value=d.p_value if d else math.nan,
                           p_method=d.method if d else "", n_pairs=d.n if d else 0)
                line[f"Δ {label}−{labels[0]}"] = (fmt_ci(rec["diff_vs_first"], rec["diff_ci_low"], rec["diff_ci_high"],
                                                         sign=True) + f" (paired n={rec['n_pairs']})")
                line[f"p {label}"] = fmt_p(rec["p_value"])
            table.append(rec)
        readable.append(line)
    readable.extend(_decay_lines(summaries, labels))
    from pvm_bench.report.leaderboard import leaderboard_rows, rank

    board = rank(
        [line for lab, d, s in zip(labels, runs, summaries) for line in leaderboard_rows(s, lab, model_label(d))],
        rank_by,
    )
    warnings = sample_set_warnings(runs, labels, pairs)
    if board.attrs.get("empty_rank_warning"):
        warnings.append(board.attrs["empty_rank_warning"])
    return Comparison(
        _runs_table(runs, labels),
        pd.DataFrame(table),
        pd.DataFrame(readable).fillna("–"),
        board,
        composition_notes(runs, labels, pairs),
        warnings,
    )


def sample_set_warnings(runs: list[RunData], labels: list[str], pairs: list[tuple[str, str]] | None) -> list[str]:
    """One line per (later run, task, variant) whose (sample_id, repeat) set differs from run A's:
    the value columns are then over different samples and every Δ only over the ones both have."""

    def keys(d: RunData, variant: str) -> dict[str, set[tuple[str, int]]]:
        s = d.samples
        if s.empty:
            return {}
        s = s[s["variant"] == variant]
        return {t: set(zip(g["sample_id"], g["repeat"])) for t, g in s.groupby("task")}

    out = []
    for variant in [v for v in runs[0].variants]:
        mine = keys(runs[0], variant)
        for k in range(1, len(runs)):
            other = next((b for a, b in pairs or () if a == variant), variant)
            theirs = keys(runs[k], other)
            for task in sorted(set(mine) & set(theirs)):
                a, b = mine[task], theirs[task]
                if a != b:
                    out.append(
                        f"{task}/{variant}: {labels[0]} has {len(a)} samples, {labels[k]} has {len(b)}, "
                        f"{len(a & b)} in both: the {labels[0]} and {labels[k]} columns are over different "
                        f"samples; Δ {labels[k]}−{labels[0]} is over the {len(a & b)} paired ones only"
                    )
    return out


def _paired_variant(variant: str, pairs: list[tuple[str, str]] | None, summary: Summary) -> str:
    for a, b in pairs or []:
        if a == variant:
            return b
    return variant


def _row(summary: Summary, task: str, variant: str, metric: str) -> dict[str, Any]:
    r = summary.rows
    hit = r[
        (r["task"] == task)
        & (r["variant"] == variant)
        & (r["metric"] == metric)
        & r["kind"].isin(["task", "pooled", "macro"])
    ]
    return hit.iloc[0].to_dict() if len(hit) else {}


def _decay_lines(summaries: list[Summary], labels: list[str]) -> list[dict[str, Any]]:
    """Band-"all" decay values per run (descriptive; not paired)."""
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], None] = {}
    for s in summaries:
        dec = s.rows[(s.rows["kind"] == "decay") & (s.rows["band"] == "all")]
        seen.update(dict.fromkeys(zip(dec["task"], dec["variant"])))
    for task, variant in seen:
        if task in (POOLED, MACRO):
            continue
        for metric, t, name, digits, band in DECAY_SHOWN:
            line: dict[str, Any] = {"task": task, "variant": variant, "metric": name}
            for label, s in zip(labels, summaries):
                r = s.rows
                bands = r["band"].astype(str)
                in_band = bands.str.startswith(f"{band}@") if band == "cohort" else bands == band
                sel = r[(r["task"] == task) & (r["variant"] == variant) & (r["metric"] == metric) & in_band]
                if t is not None:
                    sel = sel[sel["t"] == t]
                shown = fmt(float(sel["value"].iloc[0]), digits) if len(sel) and finite(sel["value"].iloc[0]) else "–"
                if shown != "–" and "extrapolated" in str(sel["flags"].iloc[0]):
                    shown += " (extrapolated)"
                if shown != "–" and band == "cohort":
                    shown += f" (T={str(sel['band'].iloc[0]).removeprefix('cohort@')})"
                line[label] = shown
            if any(line[lab] != "–" for lab in labels):
                out.append(line)
    return out
