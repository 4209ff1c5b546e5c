"""Regression checks of a run against a committed baseline file (reports/baselines/*.json).

Baseline file (JSON, ``"format": "pvm-bench-baseline"``, ``"version": 2``; version 1 files, which
have no per-unit scores, are still read)::

    {"format": "pvm-bench-baseline", "version": 2, "created_at": "...",
     "source": {"run_id", "status", "model", "adapter", "git", "seed", "config", "datasets"},
     "metrics": [{"task", "variant", "metric", "band", "t", "stat": "value" | "diff_vs_base",
                  "value", "ci_low", "ci_high", "n", "higher_is_better"}, ...],
     "units": {"task|variant|metric": {"stratum": {"unit": value, ...}, ...}, ...},
     "samples": [{"task", "variant", "sample_id", "repeat", "score"}, ...]}

``metrics`` are the gated metric rows of the run (:mod:`pvm_bench.report.rows`): every task
metric, the pooled ``ALL`` and ``MACRO`` rows, their paired difference vs ``base`` (non-base
variants), and the visual mass at fixed t (band "all"). ``units`` are the per-unit values
(per-sample scores for sample-level metrics; question/figure groups for grouped ones) of every
score metric; ``samples`` the per-sample scores they come from.

A metric fails (status ``worse``) when

- it dropped beyond tolerance: ``current < baseline - tol`` (higher is better); default ``tol`` =
  the baseline's own 95% CI half-width, floored at ``max(ABS_FLOOR, REL_FLOOR * |baseline|)``; an
  explicit ``tolerance`` is one absolute value for every metric; or
- the drop is significant when paired unit by unit with the baseline's stored units
  (McNemar for 0/1 units, else a sign-flip test; p < ``alpha``, default 0.05).

Missing metrics and (unless allowed) a partial run fail; so do a run whose records disagree with
its run.json count and (unless ``allow_data_change``) a task whose data fingerprint differs from
``source.datasets``. Notes say when the model or adapter fingerprint, or the run settings, differ
from the baseline's. The file is validated by :mod:`pvm_bench.report.baseline_schema`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.report.baseline_schema import BASELINE_FORMAT, validate_baseline
from pvm_bench.report.estimate import Groups, grouped_paired
from pvm_bench.report.mdtext import md_escape
from pvm_bench.report.outputs import make_parent, write_output
from pvm_bench.report.rundata import ReportInputError, load_run
from pvm_bench.report.summary import Summary, build_summary
from pvm_bench.report.views import finite, to_markdown
from pvm_bench.results import utc_now

BASELINE_VERSION = 2
ABS_FLOOR = 1e-6
REL_FLOOR = 0.01
"""Tolerance floor: 1% of the baseline value (a zero-width CI must not make a check flaky)."""
ALPHA = 0.05
"""Significance level of the paired test against the baseline's units."""
SCORE_KINDS = ("task", "pooled", "macro")

MetricKey = tuple[str, str, str, str, float | None, str]


def _t(x: Any) -> float | None:
    return float(x) if finite(x) else None


def baseline_metrics(summary: Summary) -> list[dict[str, Any]]:
    """The gated metrics of a summary as baseline entries (non-finite values omitted)."""
    out = []
    rows = summary.rows
    gated = rows[rows["higher_is_better"].notna()]
    for r in gated.itertuples(index=False):
        base = {"task": str(r.task), "variant": str(r.variant), "metric": str(r.metric), "band": str(r.band),
                "t": _t(r.t), "higher_is_better": bool(r.higher_is_better)}
        if finite(r.value):
            out.append({**base, "stat": "value", "value": float(r.value), "ci_low": _t(r.ci_low),
                        "ci_high": _t(r.ci_high), "n": int(r.n)})
        if r.kind in SCORE_KINDS and finite(r.diff):
            out.append({**base, "stat": "diff_vs_base", "value": float(r.diff), "ci_low": _t(r.diff_ci_low),
                        "ci_high": _t(r.diff_ci_high), "n": int(r.n_pairs)})
    return out


def _units_json(groups: dict[tuple[str, str, str], Groups]) -> dict[str, Any]:
    return {"|".join(k): {str(g): {str(u): float(v) for u, v in units.items()} for g, (_, units) in gs.items()}
            for k, gs in groups.items()}


def write_baseline(run_dir: Path, path: Path, allow_partial: bool = False) -> Path:
    """Summarise ``run_dir`` and write its baseline JSON (metrics, units, per-sample scores) to
    ``path`` (parents created). Raises :class:`ReportInputError` for a missing/invalid run
    directory, or a partial run unless ``allow_partial``."""
    data = load_run(Path(run_dir))
    if data.partial and not allow_partial:
        raise ReportInputError(
            f"{data.run_dir} is a partial run (status: {data.status}); finish or resume it, "
            "or pass --allow-partial to write a baseline from it anyway"
        )
    if data.count_problem and not allow_partial:
        raise ReportInputError(f"{data.run_dir}: {data.count_problem}; or pass --allow-partial")
    summary = build_summary(data)
    run = data.run
    s = data.samples
    doc = {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "created_at": utc_now(),
        "source": {
            "run_id": data.run_id, "status": data.status,
            "model": run.model if run else {}, "adapter": run.adapter if run else None,
            "git": run.git if run else {}, "seed": run.seed if run else None,
            "config": run.config if run else {}, "datasets": run.datasets if run else {},
        },
        "metrics": baseline_metrics(summary),
        "units": _units_json(summary.groups),
        "samples": [
            {"task": t, "variant": v, "sample_id": i, "repeat": int(r), "score": float(x)}
            for t, v, i, r, x in zip(s["task"], s["variant"], s["sample_id"], s["repeat"], s["score"])
        ] if len(s) else [],
    }
    if not doc["metrics"]:
        raise ReportInputError(f"{data.run_dir} has no gated metrics (no scored samples), so a baseline from it would "
                               "pass any run; make the baseline from a run with scored samples")
    path = Path(path)
    make_parent(path, "the baseline")
    return write_output(path, _dump_baseline(doc), what="the baseline")


def _dump_baseline(doc: dict[str, Any]) -> str:
    """JSON with one line per metric, per unit table and per sample (readable diffs in git)."""
    head = {k: v for k, v in doc.items() if k not in ("metrics", "units", "samples")}
    text = json.dumps(head, indent=2, default=str)[:-2] + ",\n"

    def lines(items: list[str]) -> str:
        return "[\n" + ",\n".join(f"  {x}" for x in items) + ("\n ]" if items else "]")

    text += ' "metrics": ' + lines([json.dumps(m, default=str) for m in doc["metrics"]]) + ",\n"
    units = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in doc["units"].items()]
    text += ' "units": {' + ("\n" + ",\n".join(f"  {u}" for u in units) + "\n }" if units else "}") + ",\n"
    text += ' "samples": ' + lines([json.dumps(x) for x in doc["samples"]]) + "\n}\n"
    return text


def load_baseline(path: Path) -> dict[str, Any]:
    """Read a baseline file and validate it against :mod:`pvm_bench.report.baseline_schema`;
    :class:`ReportInputError` names the file, the bad entry and the fix."""
    path = Path(path)
    fix = f"create one with `pvm-bench baseline RUN_DIR -o {path}`"
    if not path.is_file():
        raise ReportInputError(f"baseline file not found: {path} ({fix})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"baseline file {path} is not valid JSON ({exc}); {fix}") from exc
    return validate_baseline(doc, path)


def default_tolerance(entry: dict[str, Any]) -> float:
    """The baseline's own 95% CI half-width, floored at max(ABS_FLOOR, REL_FLOOR * |value|)."""
    value = float(entry["value"])
    floor = max(ABS_FLOOR, REL_FLOOR * abs(value))
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    half = (float(hi) - float(lo)) / 2.0 if finite(lo) and finite(hi) else 0.0
    return max(half, floor)


def validate_tolerance(tolerance: float | dict[str, float] | None) -> None:
    """Refuse NaN, infinite or negative tolerances (one error line)."""
    values = tolerance.items() if isinstance(tolerance, dict) else [("--tolerance", tolerance)]
    for name, tol in values:
        if tol is None:
            continue
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(float(tol)) or tol < 0:
            raise ReportInputError(
                f"tolerance {name} must be a finite number >= 0, got {tol!r} (e.g. --tolerance 0.02)"
            )


@dataclass
class CheckResult:
    """Outcome of :func:`check`. ``table`` columns: task, variant, metric, band, t, stat, baseline,
    current, delta (current - baseline), tolerance, p_value (paired vs the baseline's units),
    status (ok | better | worse | missing), reason."""

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
        for c in ("baseline", "current", "delta", "tolerance", "p_value"):
            spec = "+.4f" if c == "delta" else ".4f"
            shown[c] = shown[c].map(lambda x, spec=spec: format(x, spec) if finite(x) else "–")
        notes = "".join(f"- {md_escape(n)}\n" for n in self.notes)
        return f"**check: {head}**\n\n{notes}\n{to_markdown(shown)}"


#: RunConfig fields that decide which samples are scored and how they are generated: a run that
#: differs from its baseline in one of them measures something else.
COMPARABLE_FIELDS = ("tasks", "split", "limit", "seed", "max_new_tokens", "temperature", "top_p", "top_k",
                     "repetition_penalty", "repeats", "protocol", "system_prompt", "min_pixels", "max_pixels")


def config_differences(run_config: dict[str, Any], baseline_config: dict[str, Any]) -> list[str]:
    """``"field: run X vs baseline Y"`` for each :data:`COMPARABLE_FIELDS` entry present in both."""
    return [
        f"{k}: run {run_config[k]!r} vs baseline {baseline_config[k]!r}"
        for k in COMPARABLE_FIELDS
        if k in run_config and k in baseline_config and run_config[k] != baseline_config[k]
    ]


def fingerprint_notes(run: Any, source: dict[str, Any]) -> list[str]:
    """Notes when the model (or adapter) or its fingerprint differs from the baseline's."""
    notes = []
    have = (run.model if run else {}) or {}
    want = source.get("model") or {}
    if have.get("fingerprint") and want.get("fingerprint") and have["fingerprint"] != want["fingerprint"]:
        notes.append(f"model fingerprint differs from the baseline's: run {have['fingerprint']} vs baseline "
                     f"{want['fingerprint']} (other weights: differences may be the model, not a regression)")
    elif (
        (have.get("name") or have.get("source"))
        and (want.get("name") or want.get("source"))
        and not want.get("fingerprint")
    ):
        a, b = (
            Path(str(have.get("name") or have.get("source"))).name,
            Path(str(want.get("name") or want.get("source"))).name,
        )
        if a != b:
            notes.append(f"model differs from the baseline's: run {a} vs baseline {b}")
    ha, wa = ((run.adapter if run else None) or {}), (source.get("adapter") or {})
    if ha.get("fingerprint") and wa.get("fingerprint") and ha["fingerprint"] != wa["fingerprint"]:
        notes.append(
            f"adapter fingerprint differs from the baseline's: run {ha['fingerprint']} vs baseline {wa['fingerprint']}"
        )
    return notes


def data_differences(run: Any, source: dict[str, Any]) -> tuple[list[str], str | None]:
    """``(["task: fingerprint run X vs baseline Y", ...], note)``: the tasks whose data fingerprint
    differs from the baseline's; ``note`` when the baseline records no fingerprints (older files)."""
    have = (run.datasets if run else None) or {}
    want = source.get("datasets")
    if want is None:
        return [], "the baseline records no data fingerprints (made by an older pvm-bench): the data was not compared"
    out = []
    for task, info in sorted(want.items()):
        a, b = ((have.get(task) or {}).get("fingerprint"), (info or {}).get("fingerprint"))
        if a and b and a != b:
            out.append(f"task {task}: fingerprint run {a} vs baseline {b}")
    return out, None


def _key(m: dict[str, Any]) -> MetricKey:
    return (str(m["task"]), str(m["variant"]), str(m["metric"]), str(m.get("band") or ""), _t(m.get("t")),
            str(m.get("stat") or ("diff_vs_base" if m["metric"] == "diff_vs_base" else "value")))


def _v1_entry(m: dict[str, Any]) -> dict[str, Any]:
    """Version-1 names (``diff_vs_base``, ``mass_all_t64``) as version-2 keys."""
    m = dict(m)
    if m["metric"] == "diff_vs_base":
        m.update(metric="accuracy", stat="diff_vs_base")
    elif str(m["metric"]).startswith("mass_all_t"):
        m.update(metric="visual_mass", band="all", t=float(str(m["metric"]).removeprefix("mass_all_t")))
    return m


def _baseline_groups(doc: dict[str, Any], key: MetricKey) -> Groups | None:
    units = (doc.get("units") or {}).get("|".join(key[:3]))
    if not isinstance(units, dict):
        return None
    return {g: (1.0, values) for g, values in units.items()}


def _as_str_groups(groups: Groups | None) -> Groups | None:
    if groups is None:
        return None
    return {str(g): (w, {str(u): v for u, v in units.items()}) for g, (w, units) in groups.items()}


def check(
    run_dir: Path,
    baseline: Path | dict[str, Any],
    tolerance: float | dict[str, float] | None = None,
    allow_partial: bool = False,
    alpha: float = ALPHA,
    allow_data_change: bool = False,
) -> CheckResult:
    """Compare ``run_dir`` with a baseline (a file path or an already loaded dict).

    ``tolerance``: None -> per-metric default (:func:`default_tolerance`); a float -> that
    absolute tolerance for every metric; a dict -> per metric name, others default. ``alpha``:
    level of the paired test against the baseline's units (0: tolerance only). A partial run fails unless
    ``allow_partial``; a run whose records disagree with run.json's count fails; a task whose data
    fingerprint differs from the baseline's fails unless ``allow_data_change``. Raises
    :class:`ReportInputError` on bad input (NaN tolerance included).
    """
    validate_tolerance(tolerance)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < 1:
        raise ReportInputError(
            f"alpha must be in [0, 1), got {alpha!r} (e.g. --alpha 0.05; 0 turns the paired test off)"
        )
    baseline_path: Path | None = None
    if isinstance(baseline, dict):
        doc = baseline
    else:
        baseline_path = Path(baseline)
        doc = load_baseline(baseline_path)
    data = load_run(Path(run_dir))
    summary = build_summary(data)
    current = {_key(m): m for m in baseline_metrics(summary)}
    groups = summary.groups
    rows = []
    for raw in doc["metrics"]:
        entry = _v1_entry(raw) if doc.get("version") == 1 else raw
        key = _key(entry)
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
            rows.append((*key, base_v, math.nan, math.nan, tol, math.nan, "missing", "not in the run"))
            continue
        delta = cur["value"] - base_v
        signed = delta if higher else -delta
        p = math.nan
        if key[5] == "value":
            ref, now = _baseline_groups(doc, key), _as_str_groups(groups.get(key[:3]))
            if ref is not None and now is not None:
                p = grouped_paired(ref, now).p_value
        significant = finite(p) and p < alpha and signed < 0
        if signed < -tol:
            status, reason = "worse", f"dropped more than the tolerance {tol:.4g}"
        elif significant:
            status, reason = "worse", f"significant paired drop (p={p:.2g} < {alpha})"
        else:
            status, reason = ("better" if signed > tol else "ok"), ""
        rows.append((*key, base_v, cur["value"], delta, tol, p, status, reason))
    table = pd.DataFrame(
        rows,
        columns=[
            "task",
            "variant",
            "metric",
            "band",
            "t",
            "stat",
            "baseline",
            "current",
            "delta",
            "tolerance",
            "p_value",
            "status",
            "reason",
        ],
    )
    notes = []
    passed = not table["status"].isin(["worse", "missing"]).any()
    if data.partial:
        notes.append(f"run status is {data.status!r} (partial)" + ("" if allow_partial else ": counts as a failure"))
        passed = passed and allow_partial
    if data.count_problem:
        notes.append(data.count_problem + ": counts as a failure")
        passed = False
    src = doc.get("source") or {}
    changed, unknown = data_differences(data.run, src)
    if changed:
        verdict = "" if allow_data_change else ": counts as a failure (pass --allow-data-change to compare anyway)"
        notes.append("data differs from the baseline's, so other samples are compared: " + "; ".join(changed) + verdict)
        passed = passed and allow_data_change
    if unknown:
        notes.append(unknown)
    if src.get("run_id"):
        notes.append(f"baseline from run {src.get('run_id')} ({doc.get('created_at', '?')})")
    notes.extend(fingerprint_notes(data.run, src))
    diffs = config_differences(data.run.config if data.run else {}, src.get("config") or {})
    if diffs:
        notes.append(
            "settings differ from the baseline's, so different samples or decoding are compared: " + "; ".join(diffs)
        )
    if doc.get("version") == 1 or not doc.get("units"):
        notes.append("baseline has no per-unit scores (version 1): only the tolerance is checked, no paired test")
    return CheckResult(bool(passed), table, data.run_dir, baseline_path, notes)
