"""Executing a run: variants x tasks x samples x repeats -> ``reports/<run_id>/``.

Owns the runner (:mod:`~pvm_bench.runner.run`), what it works on (:mod:`~pvm_bench.runner.workload`),
one batch (:mod:`~pvm_bench.runner.batch`), the checks before a run (:mod:`~pvm_bench.runner.preflight`),
the run directory's lock, resume and NaN guards (:mod:`~pvm_bench.runner.guard`), its files
(:mod:`~pvm_bench.runner.files`, :mod:`~pvm_bench.runner.attention_merge`, :mod:`~pvm_bench.runner.maps`,
:mod:`~pvm_bench.runner.media`, :mod:`~pvm_bench.runner.taskmeta`), probes per run and data-parallel
sharding. May import tasks, scoring, data, models, probes, variants, session, results, config and
errors; never cli or report (the report reads what the runner wrote, as data).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pvm_bench.runner.files import merge_attention, new_run_id, probe_frame
    from pvm_bench.runner.guard import NonFiniteError, ResumeMismatchError, RunError, RunLockedError, Terminated
    from pvm_bench.runner.run import Runner
    from pvm_bench.runner.workload import WorkItem, sample_seed

#: The public names and the module each lives in. They load on first access (PEP 562): the runner
#: pulls in torch and the models, and :mod:`pvm_bench.runner.files` or :mod:`~pvm_bench.runner.maps`
#: (read by the report) must not.
_SURFACE = {
    "Runner": "run",
    "NonFiniteError": "guard", "ResumeMismatchError": "guard", "RunError": "guard", "RunLockedError": "guard",
    "Terminated": "guard",
    "merge_attention": "files", "new_run_id": "files", "probe_frame": "files",
    "WorkItem": "workload", "sample_seed": "workload",
}
__all__ = [
    "NonFiniteError", "ResumeMismatchError", "RunError", "RunLockedError", "Runner", "Terminated", "WorkItem",
    "merge_attention", "new_run_id", "probe_frame", "sample_seed",
]


def __getattr__(name: str) -> Any:
    if name in _SURFACE:
        return getattr(importlib.import_module(f"{__name__}.{_SURFACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
