"""The Task API: what a benchmark is (data + prompt + scorer), its metrics, and the task registry.

Owns :class:`~pvm_bench.tasks.base.Task`, :class:`~pvm_bench.tasks.base.HubTask`, ``Sample``,
``Score``, ``LazyImage`` (:mod:`~pvm_bench.tasks.base`), declared metrics and their reduction
(:mod:`~pvm_bench.tasks.metrics`), where a run's tasks came from (:mod:`~pvm_bench.tasks.defs`), and
the registry (:mod:`~pvm_bench.tasks.registry`), which loads the benchmarks, task modules in the
repository's top-level ``tasks/`` folder, through the same loader as ``--include-path``.
May import data (tables, images) and errors; nothing of models, runner, report or cli.
"""

from pvm_bench.errors import TaskError
from pvm_bench.tasks.base import (
    CorruptImageError,
    HubTask,
    LazyImage,
    Sample,
    Score,
    Task,
    is_missing,
)
from pvm_bench.tasks.metrics import Metric, RecordInfo, stratified_mean, unit_values
from pvm_bench.tasks.registry import TaskRegistry, get_registry

__all__ = [
    "CorruptImageError", "HubTask", "LazyImage", "Metric", "RecordInfo", "Sample", "Score", "Task", "TaskError",
    "TaskRegistry", "get_registry", "is_missing", "stratified_mean", "unit_values",
]
