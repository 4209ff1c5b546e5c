"""The baseline file's schema (pydantic, strict): what ``check`` accepts from a baseline JSON.

Strict types, so ``"higher_is_better": "false"`` is refused instead of read as true and
``"source": "x"`` is refused instead of failing later; finite numbers only; a CI must contain its
value and be no wider than ``max(1, 10 * |value|)`` on each side (a CI of +-1e308 would make the
default tolerance infinite, and the metric could never fail); at least one metric (an empty
baseline would pass every run). :func:`validate_baseline` returns the normalised document or
raises :class:`~pvm_bench.report.rundata.ReportInputError` with one line naming the entry.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pvm_bench.errors import validation_summary
from pvm_bench.report.rundata import ReportInputError

BASELINE_FORMAT = "pvm-bench-baseline"
READABLE_VERSIONS = (1, 2)
#: Slack for "the CI contains the value" (float rounding of stored numbers).
CI_SLACK = 1e-9


def _finite(x: float | None, name: str) -> None:
    if x is not None and not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x}")


class BaselineMetric(BaseModel):
    """One gated metric of the baseline run."""

    model_config = ConfigDict(strict=True, extra="ignore")

    task: str
    variant: str
    metric: str
    band: str = ""
    t: float | None = None
    stat: Literal["value", "diff_vs_base"] | None = None
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = Field(default=None, ge=0)
    higher_is_better: bool = True

    @model_validator(mode="after")
    def _sane(self) -> BaselineMetric:
        for name in ("t", "value", "ci_low", "ci_high"):
            _finite(getattr(self, name), name)
        lo, hi, v = self.ci_low, self.ci_high, self.value
        if lo is not None and hi is not None:
            if not lo - CI_SLACK <= v <= hi + CI_SLACK:
                raise ValueError(f"the CI [{lo}, {hi}] does not contain the value {v}")
            if max(v - lo, hi - v) > max(1.0, 10 * abs(v)):
                raise ValueError(f"the CI [{lo}, {hi}] is implausibly wide for the value {v} (it would make the "
                                 "tolerance so large that the metric could never fail)")
        return self


class BaselineSource(BaseModel):
    """The run the baseline was made from."""

    model_config = ConfigDict(strict=True, extra="ignore")

    run_id: str | None = None
    status: str | None = None
    model: dict[str, Any] = {}
    adapter: dict[str, Any] | None = None
    git: dict[str, Any] = {}
    seed: int | None = None
    config: dict[str, Any] = {}
    #: run.json's ``datasets`` (per-task data fingerprints); None in baselines written before it was kept.
    datasets: dict[str, Any] | None = None


class BaselineSample(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    task: str
    variant: str
    sample_id: str
    repeat: int = 0
    score: float

    @model_validator(mode="after")
    def _sane(self) -> BaselineSample:
        _finite(self.score, "score")
        return self


class Baseline(BaseModel):
    """A whole baseline file (see :mod:`pvm_bench.report.check` for the layout)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    format: Literal["pvm-bench-baseline"]
    version: Literal[1, 2]
    created_at: str | None = None
    source: BaselineSource = BaselineSource()
    metrics: list[BaselineMetric] = Field(min_length=1)
    units: dict[str, dict[str, dict[str, float]]] = {}
    samples: list[BaselineSample] = []

    @model_validator(mode="after")
    def _finite_units(self) -> Baseline:
        for key, groups in self.units.items():
            for values in groups.values():
                for unit, v in values.items():
                    _finite(v, f"units[{key!r}][{unit!r}]")
        return self


def validate_baseline(doc: Any, path: Any) -> dict[str, Any]:
    """The validated, normalised baseline document; :class:`ReportInputError` (one line) when
    ``doc`` does not follow the schema."""
    fix = f"regenerate it with `pvm-bench baseline RUN_DIR -o {path}`"
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise ReportInputError(f"{path} is not a pvm-bench baseline (no \"format\": \"{BASELINE_FORMAT}\"); {fix}")
    if doc.get("version") not in READABLE_VERSIONS:
        raise ReportInputError(
            f"{path} has baseline version {doc.get('version')!r}, this pvm-bench reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; {fix}"
        )
    if isinstance(doc.get("metrics"), list) and not doc["metrics"]:
        raise ReportInputError(f"{path} has no metrics, so a check against it would pass any run; {fix} "
                               "from a run with scored samples")
    try:
        return Baseline.model_validate(doc).model_dump()
    except ValidationError as exc:
        raise ReportInputError(f"{path}: {_first_problem(exc)}; {fix}") from None


_PHRASES = {
    "float_type": "must be a finite number", "float_parsing": "must be a finite number",
    "finite_number": "must be a finite number", "int_type": "must be a whole number",
    "bool_type": "must be a JSON boolean (true or false, not a string)",
    "model_type": "must be a JSON object", "dict_type": "must be a JSON object",
    "list_type": "must be a JSON list", "string_type": "must be a string",
}


def _first_problem(exc: ValidationError) -> str:
    """``metrics[0] (task/variant/metric): higher_is_better: Input should be a valid boolean (got 'false')``."""
    errors = exc.errors()
    if not errors:
        return validation_summary(exc)
    e = errors[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.get("loc", ())).lstrip(".") or "file"
    msg = _PHRASES.get(str(e.get("type")), str(e.get("msg", "invalid")).removeprefix("Value error, "))
    got = e.get("input")
    shown = f" (got {got!r:.60})" if e.get("type") != "value_error" and not isinstance(got, (dict, list)) else ""
    more = f"; {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    return f"{where}: {msg}{shown}{more}"
