"""Regression checks of a run against a committed baseline file (reports/baselines/*.json).

Baseline file (JSON, ``"format": "pvm-bench-baseline"``, ``"version": 1``)::

    {"format": "pvm-bench-baseline", "version": 1, "created_at": "...",
     "source": {"run_id": ..., "status": ..., "model": {...}, "adapter": ..., "git": {...},
                "seed": ..., "config": {...}},
     "metrics": [{"task": "colour", "variant": "pvm", "metric": "accuracy", "value": 0.8,
                  "ci_low": 0.7, "ci_high": 0.9, "higher_is_better": true, "n": 48}, ...]}

Metrics (per task x variant of the summary, NaN ones omitted): ``accuracy``, ``diff_vs_base``
(non-base variants), and ``mass_all_t{64,256,1024,4096}`` (visual mass, all layers).

Rule: a metric passes when ``current >= baseline - tol`` (higher is better), i.e. within
tolerance or better. Default ``tol`` = the baseline's own 95% CI half-width, floored at
``max(ABS_FLOOR, REL_FLOOR * |baseline|)``; an explicit ``tolerance`` is one absolute value in
metric units for every metric. Missing metrics and (unless allowed) a partial run fail.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.report.fit import FIXED_POSITIONS
from pvm_bench.report.summary import ReportInputError, build_summary, load_run, to_markdown
from pvm_bench.results import atomic_write_text, utc_now

BASELINE_FORMAT = "pvm-bench-baseline"
BASELINE_VERSION = 1
ABS_FLOOR = 1e-6
REL_FLOOR = 0.01
"""Tolerance floor: 1% of the baseline value (a zero-width CI must not make a check flaky)."""

#: (metric name, summary column, CI low column, CI high column, higher is better)
METRICS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("accuracy", "accuracy", "acc_ci_low", "acc_ci_high", True),
    ("diff_vs_base", "diff_vs_base", "diff_ci_low", "diff_ci_high", True),
) + tuple(
    (f"mass_all_t{t}", f"mass_all_t{t}", f"mass_all_t{t}_ci_low", f"mass_all_t{t}_ci_high", True)
    for t in FIXED_POSITIONS
)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(float(x))


def baseline_metrics(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The checked metrics of a summary table as baseline entries (NaN values omitted)."""
    out = []
    for _, r in table.iterrows():
        for name, col, lo, hi, higher in METRICS:
            value = r.get(col, math.nan)
            if not _finite(value):
                continue
            out.append({
                "task": str(r["task"]), "variant": str(r["variant"]), "metric": name, "value": float(value),
                "ci_low": float(r[lo]) if _finite(r.get(lo)) else None,
                "ci_high": float(r[hi]) if _finite(r.get(hi)) else None,
                "higher_is_better": higher,
                "n": int(r["n_pairs"] if name == "diff_vs_base" else r["n_samples"]),
            })
    return out


def write_baseline(run_dir: Path, path: Path, allow_partial: bool = False) -> Path:
    """Summarise ``run_dir`` and write its baseline JSON to ``path`` (parents created).

    Raises :class:`ReportInputError` for a missing/invalid run directory, or a partial run
    unless ``allow_partial``."""
    data = load_run(Path(run_dir))
    if data.partial and not allow_partial:
        raise ReportInputError(
            f"{data.run_dir} is a partial run (status: {data.status}); finish or resume it, "
            "or pass --allow-partial to write a baseline from it anyway"
        )
    summary = build_summary(data)
    run = data.run
    doc = {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "created_at": utc_now(),
        "source": {
            "run_id": data.run_id, "status": data.status,
            "model": run.model if run else {}, "adapter": run.adapter if run else None,
            "git": run.git if run else {}, "seed": run.seed if run else None,
            "config": run.config if run else {},
        },
        "metrics": baseline_metrics(summary.table),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    return path


def load_baseline(path: Path) -> dict[str, Any]:
    """Read and validate a baseline file; :class:`ReportInputError` names the file and the fix."""
    path = Path(path)
    fix = f"create one with `pvm-bench baseline RUN_DIR -o {path}`"
    if not path.is_file():
        raise ReportInputError(f"baseline file not found: {path} ({fix})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"baseline file {path} is not valid JSON ({exc}); {fix}") from exc
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise ReportInputError(f"{path} is not a pvm-bench baseline (no \"format\": \"{BASELINE_FORMAT}\"); {fix}")
    if doc.get("version") != BASELINE_VERSION:
        raise ReportInputError(
            f"{path} has baseline version {doc.get('version')!r}, this pvm-bench reads version "
            f"{BASELINE_VERSION}; regenerate it with `pvm-bench baseline RUN_DIR -o {path}`"
        )
    metrics = doc.get("metrics")
    needed = {"task", "variant", "metric", "value"}
    if not isinstance(metrics, list) or not all(isinstance(m, dict) and needed <= m.keys() for m in metrics):
        raise ReportInputError(f"{path}: \"metrics\" must be a list of objects with {sorted(needed)}; {fix}")
    return doc


def default_tolerance(entry: dict[str, Any]) -> float:
    """The baseline's own 95% CI half-width, floored at max(ABS_FLOOR, REL_FLOOR * |value|)."""
    value = float(entry["value"])
    floor = max(ABS_FLOOR, REL_FLOOR * abs(value))
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    half = (float(hi) - float(lo)) / 2.0 if _finite(lo) and _finite(hi) else 0.0
    return max(half, floor)


@dataclass
class CheckResult:
    """Outcome of :func:`check`. ``table`` columns: task, variant, metric, baseline, current,
    delta (current - baseline), tolerance, status (ok | better | worse | missing)."""

    passed: bool
    table: pd.DataFrame
    run_dir: Path
    baseline_path: Path | None
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> pd.DataFrame:
        """Rows with status ``worse`` or ``missing``."""
        return self.table[self.table["status"].isin(["worse", "missing"])]

    def to_markdown(self) -> str:
        """Verdict line, notes and the diff table as markdown."""
        head = "PASS" if self.passed else f"FAIL ({len(self.failures)} metric(s) worse or missing)"
        shown = self.table.copy()
        for c in ("baseline", "current", "delta", "tolerance"):
            spec = "+.4f" if c == "delta" else ".4f"
            shown[c] = shown[c].map(lambda x, spec=spec: format(x, spec) if _finite(x) else "–")
        notes = "".join(f"- {n}\n" for n in self.notes)
        return f"**check: {head}**\n\n{notes}\n{to_markdown(shown)}"


#: RunConfig fields that decide which samples are scored and how they are generated: a run that
#: differs from its baseline in one of them measures something else.
COMPARABLE_FIELDS = ("tasks", "split", "limit", "seed", "max_new_tokens", "temperature", "top_p", "repeats")


def config_differences(run_config: dict[str, Any], baseline_config: dict[str, Any]) -> list[str]:
    """``"field: run X vs baseline Y"`` for each :data:`COMPARABLE_FIELDS` entry present in both."""
    return [
        f"{k}: run {run_config[k]!r} vs baseline {baseline_config[k]!r}"
        for k in COMPARABLE_FIELDS
        if k in run_config and k in baseline_config and run_config[k] != baseline_config[k]
    ]


def check(
    run_dir: Path,
    baseline: Path | dict[str, Any],
    tolerance: float | dict[str, float] | None = None,
    allow_partial: bool = False,
) -> CheckResult:
    """Compare ``run_dir`` with a baseline (a file path or an already loaded dict).

    ``tolerance``: None -> per-metric default (:func:`default_tolerance`); a float -> that
    absolute tolerance for every metric; a dict -> per metric name, others default. A partial
    run fails unless ``allow_partial``. Raises :class:`ReportInputError` on bad input.
    """
    baseline_path: Path | None = None
    if isinstance(baseline, dict):
        doc = baseline
    else:
        baseline_path = Path(baseline)
        doc = load_baseline(baseline_path)
    data = load_run(Path(run_dir))
    current = {
        (m["task"], m["variant"], m["metric"]): m for m in baseline_metrics(build_summary(data).table)
    }
    rows = []
    for entry in doc["metrics"]:
        key = (str(entry["task"]), str(entry["variant"]), str(entry["metric"]))
        base_v = float(entry["value"])
        if isinstance(tolerance, dict):
            tol = float(tolerance[key[2]]) if key[2] in tolerance else default_tolerance(entry)
        elif tolerance is not None:
            tol = float(tolerance)
        else:
            tol = default_tolerance(entry)
        higher = bool(entry.get("higher_is_better", True))
        cur = current.get(key)
        if cur is None:
            rows.append((*key, base_v, math.nan, math.nan, tol, "missing"))
            continue
        delta = cur["value"] - base_v
        signed = delta if higher else -delta
        status = "worse" if signed < -tol else "better" if signed > tol else "ok"
        rows.append((*key, base_v, cur["value"], delta, tol, status))
    table = pd.DataFrame(rows, columns=["task", "variant", "metric", "baseline", "current", "delta", "tolerance", "status"])
    notes = []
    passed = not table["status"].isin(["worse", "missing"]).any()
    if data.partial:
        notes.append(f"run status is {data.status!r} (partial)" + ("" if allow_partial else ": counts as a failure"))
        passed = passed and allow_partial
    src = doc.get("source", {})
    if src.get("run_id"):
        notes.append(f"baseline from run {src.get('run_id')} ({doc.get('created_at', '?')})")
    diffs = config_differences(data.run.config if data.run else {}, src.get("config") or {})
    if diffs:
        notes.append("settings differ from the baseline's, so different samples or decoding are compared: " + "; ".join(diffs))
    if not doc["metrics"]:
        notes.append("baseline has no metrics: nothing was compared")
    return CheckResult(bool(passed), table, data.run_dir, baseline_path, notes)
