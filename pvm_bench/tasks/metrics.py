"""Task metrics: what a task declares (:class:`Metric`) and how per-record scores reduce to it.

Re-exported by :mod:`pvm_bench.tasks`; the report (:mod:`pvm_bench.report.rows`) turns the same
declarations into metric rows with bootstrap CIs over units and paired tests.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: What a :class:`Metric` callable receives for one record: the sample's metadata, the score's
#: details and ``"sample_id"``.
RecordInfo = Mapping[str, Any]


@dataclass(frozen=True)
class Metric:
    """A metric a task declares: how to aggregate per-record scores and how to resample them.

    The metric is a mean over *units* (the resampling unit of the bootstrap and the pairing unit
    of paired tests): ``unit(info)`` names the unit of a record (default: its sample id). One
    unit's value: per repeat, the mean (``combine="mean"``) or the minimum (``"all"``: every
    record of the unit right, e.g. MMBench CircularEval) of the records' scores (or of
    ``sub_scores[subscore]``), then the mean over repeats. With ``stratum``, the metric is the mean
    over strata of the per-stratum mean of units (e.g. MMStar's average over L2 categories) and the
    bootstrap resamples within each stratum. ``require(info)``: a unit counts only when at least one
    of its records satisfies it (lmms-eval's CircularEval scores only questions whose main row is
    present). ``higher_is_better=None`` marks a descriptive metric that ``check`` never gates.
    ``value_range``: the closed range every record's score (or sub-score) must lie in, checked when
    the record is scored (:func:`score_problem`); default [0, 1] (accuracy-like), None: any finite value.
    """

    name: str
    higher_is_better: bool | None = True
    unit: Callable[[RecordInfo], Hashable] | None = None
    combine: Literal["mean", "all"] = "mean"
    stratum: Callable[[RecordInfo], Hashable] | None = None
    require: Callable[[RecordInfo], bool] | None = None
    subscore: str | None = None
    description: str = ""
    value_range: tuple[float, float] | None = (0.0, 1.0)

    def unit_of(self, info: RecordInfo) -> Hashable:
        return self.unit(info) if self.unit else info.get("sample_id")


def score_problem(metrics: Sequence[Metric], value: Any, sub_scores: Mapping[str, Any]) -> str | None:
    """Why a record's score cannot be recorded, or None: the value (and every declared sub-score
    it has) must be a finite number inside its metric's ``value_range``; other sub-scores must be
    finite numbers. A missing declared sub-score is fine (that metric skips the record)."""

    def bad(what: str, number: Any, bounds: tuple[float, float] | None) -> str | None:
        # Python and numpy numbers (np.float32 is not a float subclass); a bool is 0 or 1.
        if not isinstance(number, numbers.Real):
            return f"{what} is {number!r:.40} ({type(number).__name__}), not a number"
        number = float(number)
        if not math.isfinite(number):
            return f"{what} is {number}, not a finite number"
        if bounds is not None and not bounds[0] <= number <= bounds[1]:
            return f"{what} {number:g} is outside its declared range [{bounds[0]:g}, {bounds[1]:g}]"
        return None

    ranges: dict[str | None, tuple[float, float] | None] = {}
    for m in metrics:
        ranges.setdefault(m.subscore, m.value_range)
    problem = bad("score", value, ranges.get(None, (0.0, 1.0)))
    for name, number in (sub_scores or {}).items():
        problem = problem or bad(f"sub-score '{name}'", number, ranges.get(name))
    return problem


def unit_values(
    metric: Metric, infos: Sequence[RecordInfo], values: Sequence[float], repeats: Sequence[int] | None = None,
) -> dict[Hashable, tuple[Hashable, float]]:
    """Per-unit values of ``metric``: ``{unit: (stratum, value)}`` (see :class:`Metric`).

    ``values[i]`` is record i's score (or sub-score; non-finite values are skipped) and
    ``repeats[i]`` its repeat index (default 0 for all).
    """
    per: dict[Hashable, dict[int, list[float]]] = {}
    strata: dict[Hashable, Hashable] = {}
    required: set[Hashable] = set()
    for i, (info, value) in enumerate(zip(infos, values)):
        unit = metric.unit_of(info)
        if metric.require is None or metric.require(info):
            required.add(unit)
        strata.setdefault(unit, metric.stratum(info) if metric.stratum else None)
        if value is None or value != value:
            continue
        per.setdefault(unit, {}).setdefault(repeats[i] if repeats is not None else 0, []).append(float(value))
    reduce = min if metric.combine == "all" else (lambda v: sum(v) / len(v))
    out: dict[Hashable, tuple[Hashable, float]] = {}
    for unit, by_rep in per.items():
        if unit in required:
            reps = [reduce(v) for v in by_rep.values()]
            out[unit] = (strata[unit], sum(reps) / len(reps))
    return out


def stratified_mean(units: Mapping[Hashable, tuple[Hashable, float]]) -> float:
    """Mean over strata of the mean unit value per stratum (one stratum: the plain mean)."""
    groups: dict[Hashable, list[float]] = {}
    for stratum, value in units.values():
        groups.setdefault(stratum, []).append(value)
    if not groups:
        return float("nan")
    return sum(sum(v) / len(v) for v in groups.values()) / len(groups)
