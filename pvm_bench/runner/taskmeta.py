"""What reports need to know about a run's tasks, written into the run directory as data.

Reading a run must never execute code from it: ``report``, ``baseline``, ``compare`` and
``check`` never import the run's ``--include-path`` plugins (nor entry points). Instead the
runner writes ``RUN/tasks.json`` when it has loaded the tasks (:func:`write_task_file`), and the
report layer reads it back (:func:`read_task_file`, validated with pydantic):

- per task: version, description, where it came from (``builtin`` or ``plugin`` and the module or
  file), the headline metric, ``comparability_note``, ``distance_key`` / ``distance_label``, hub id;
- per declared :class:`~pvm_bench.tasks.metrics.Metric`: name, ``higher_is_better``, ``combine``,
  ``subscore``, description and -- for a metric with ``unit`` / ``stratum`` / ``require``
  functions (MMBench's CircularEval, MMStar's category average) -- those functions' values for
  every sample, evaluated at run time on the sample's metadata (as the report's record info
  holds it). The report rebuilds the metric from these values (:func:`spec_metrics`).

A run made before tasks.json existed is reported with the package's built-in tasks (package code,
not run-directory code); its plugin tasks get the default ``accuracy`` metric and a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pvm_bench.errors import read_model_file
from pvm_bench.tasks.metrics import Metric

if TYPE_CHECKING:
    from pvm_bench.tasks import Sample, Task

TASKS_FILE = "tasks.json"
FORMAT = "pvm-bench-tasks"
VERSION = 1


class MetricSpec(BaseModel):
    """One declared metric as data. ``units``: ``{sample_id: [unit, stratum, required]}`` when the
    metric groups records (else None: one unit per sample); ``units_error``: why the grouping
    could not be evaluated at run time (the metric is then not reported from data)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    higher_is_better: StrictBool | None = True
    combine: Literal["mean", "all"] = "mean"
    subscore: str | None = None
    description: str = ""
    units: dict[str, tuple[str, str | None, StrictBool]] | None = None
    units_error: str | None = None


class TaskSpec(BaseModel):
    """One task of the run as data (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    version: str = ""
    description: str = ""
    source: Literal["builtin", "plugin"]
    origin: str = ""
    headline: str
    metrics: list[MetricSpec] = Field(min_length=1)
    comparability_note: str | None = None
    distance_key: str | None = None
    distance_label: str = ""
    hub_id: str | None = None


class TaskFile(BaseModel):
    """``RUN/tasks.json``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["pvm-bench-tasks"]
    version: Literal[1]
    tasks: dict[str, TaskSpec]


def task_source(task: Task) -> tuple[Literal["builtin", "plugin"], str]:
    """(``builtin`` | ``plugin``, file) of a task instance, from its class: ``builtin`` with
    ``tasks/<file>`` when the class is defined in the built-in task folder
    (:func:`pvm_bench.tasks.registry.builtin_task_dir`), else the plugin's file (or module)."""
    import inspect

    from pvm_bench.tasks.registry import builtin_task_dir

    try:
        file = Path(inspect.getfile(type(task)))
    except (TypeError, OSError):
        return "plugin", type(task).__module__
    if file.parent.resolve() == builtin_task_dir().resolve():
        return "builtin", f"tasks/{file.name}"
    return "plugin", str(file)


def _info(sample: Sample) -> dict[str, Any]:
    """The record info the report builds for a sample, before scoring (metadata + sample_id)."""
    from pvm_bench.runner.workload import jsonable

    meta = jsonable(sample.metadata) or {}
    return {**{k: v for k, v in meta.items() if k != "score"}, "sample_id": sample.id}


def _str_or_none(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def metric_spec(metric: Metric, samples: Sequence[Sample]) -> MetricSpec:
    """``metric`` as data; its unit/stratum/require functions evaluated for every sample."""
    spec = MetricSpec(name=metric.name, higher_is_better=metric.higher_is_better, combine=metric.combine,
                      subscore=metric.subscore, description=metric.description or "")
    if metric.unit is None and metric.stratum is None and metric.require is None:
        return spec
    units: dict[str, tuple[str, str | None, bool]] = {}
    try:
        for sample in samples:
            info = _info(sample)
            units[str(sample.id)] = (str(metric.unit_of(info)),
                                     _str_or_none(metric.stratum(info)) if metric.stratum else None,
                                     bool(metric.require(info)) if metric.require else True)
    except Exception as exc:  # noqa: BLE001 -- plugin code: a grouping that needs the scorer's details
        spec.units_error = f"{type(exc).__name__}: {exc}"[:200]
        return spec
    spec.units = units
    return spec


def task_spec(task: Task, samples: Sequence[Sample]) -> TaskSpec:
    """What reports need from ``task`` (run on ``samples``), as data."""
    source, origin = task_source(task)
    key = getattr(task, "distance_key", None)
    return TaskSpec(
        name=task.name, version=str(task.version), description=str(task.description or ""), source=source,
        origin=origin, headline=task.headline_metric().name,
        metrics=[metric_spec(m, samples) for m in task.metrics()],
        comparability_note=task.comparability_note, distance_key=str(key) if key else None,
        distance_label=str(getattr(task, "distance_label", "") or ""), hub_id=task.hub_id,
    )


def write_task_file(run_dir: Path, loaded: Sequence[tuple[Task, Sequence[Sample]]]) -> Path:
    """Write ``RUN/tasks.json`` for the loaded tasks (atomically, never through a symlink)."""
    from pvm_bench.results import atomic_write_text

    doc = TaskFile(format=FORMAT, version=VERSION, tasks={t.name: task_spec(t, s) for t, s in loaded})
    path = run_dir / TASKS_FILE
    atomic_write_text(path, doc.model_dump_json(indent=1) + "\n")
    return path


def read_task_file(run_dir: Path) -> TaskFile | None:
    """``RUN/tasks.json`` validated, or None when the run has none (made before it existed).
    A file that is not valid is :class:`~pvm_bench.errors.FileFormatError` (one line, exit 2)."""
    return read_model_file(Path(run_dir) / TASKS_FILE, TaskFile, "it is written by `pvm-bench run` -- restore it, "
                           "or delete it to report with the built-in task definitions only")


def spec_metrics(spec: TaskSpec) -> tuple[list[Metric], list[str]]:
    """The report's :class:`Metric` objects for a task spec (grouping read from the per-sample
    values) and warnings for the metrics that cannot be rebuilt."""
    metrics: list[Metric] = []
    warnings: list[str] = []
    for m in spec.metrics:
        if m.units_error:
            warnings.append(f"task {spec.name}: metric {m.name} left out (its grouping could not be recorded at run "
                            f"time: {m.units_error})")
            continue
        kwargs: dict[str, Any] = {}
        if m.units is not None:
            table = m.units

            def unit(info: Any, table: dict[str, Any] = table) -> str:
                return table[str(info["sample_id"])][0]

            kwargs["unit"] = unit
            if any(v[1] is not None for v in table.values()):
                kwargs["stratum"] = lambda info, table=table: table[str(info["sample_id"])][1]
            if not all(v[2] for v in table.values()):
                kwargs["require"] = lambda info, table=table: table[str(info["sample_id"])][2]
        metrics.append(Metric(m.name, higher_is_better=m.higher_is_better, combine=m.combine, subscore=m.subscore,
                              description=m.description, **kwargs))
    return metrics, warnings


def write_run_tasks(run_dir: Path, loaded: Sequence[tuple[Task, Sequence[Sample]]], datasets: dict[str, Any],
                    *, data_dir: Any = None) -> None:
    """The runner's one call: ``RUN/tasks.json`` and ``RUN/thumbnails.json``
    (:mod:`pvm_bench.runner.media`; ``datasets``: run.json's per-task data record with fingerprints)."""
    from pvm_bench.runner.media import write_thumbnails

    write_task_file(run_dir, loaded)
    fingerprints = {name: (info or {}).get("fingerprint") for name, info in datasets.items()}
    write_thumbnails(run_dir, loaded, fingerprints, data_dir=data_dir)
