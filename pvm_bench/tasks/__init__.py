"""The Task API: what a benchmark is (data + prompt + scorer), its metrics, and the task registry.

Owns :class:`~pvm_bench.tasks.base.base.Task`, :class:`~pvm_bench.tasks.base.base.HubTask`, ``Sample``,
``Score``, ``LazyImage`` (:mod:`~pvm_bench.tasks.base.base`), declared metrics and their reduction
(:mod:`~pvm_bench.tasks.base.metrics`) and where a run's tasks came from (:mod:`~pvm_bench.tasks.base.defs`).
The benchmarks themselves are task modules in the repository's top-level ``tasks/`` folder.
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
    TaskRegistry,
    get_registry,
    is_missing,
)
from pvm_bench.tasks.metrics import Metric, RecordInfo, stratified_mean, unit_values

__all__ = [
    "CorruptImageError", "HubTask", "LazyImage", "Metric", "RecordInfo", "Sample", "Score", "Task", "TaskError",
    "TaskRegistry", "get_registry", "is_missing", "stratified_mean", "unit_values",
]
