"""Where a run's tasks come from and which definition they had: recorded per task in run.json.

``run.json``'s ``datasets[task]`` gains ``source`` (``builtin``, ``include path`` or ``entry
point``), ``origin`` (the module name, the plugin file, the entry point) and ``definition``: a hash
of the file of the module that defines the task's class plus its class name and version. A task of
the same name but another definition (an ``--include-path`` module shadowing a built-in with
``--override-task``, or an edited plugin) scores other things, so ``resume`` refuses to mix the
two in one run and ``compare`` refuses to pair them (:func:`definition_conflicts`).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: ``compare``'s flag to pair runs whose task definitions differ anyway.
ALLOW_FLAG = "--allow-task-change"


def source_kind(origin: str) -> str:
    """``builtin`` / ``entry point`` / ``include path`` from a registry origin string."""
    from pvm_bench.tasks.registry import BUILTIN_ORIGIN

    if origin.startswith(BUILTIN_ORIGIN):
        return "builtin"
    if origin.startswith("entry point "):
        return "entry point"
    return "include path"


def definition_fingerprint(task: Any) -> str:
    """16 hex over the task's class name, version and the bytes of the module's file (not the module's
    name: a task file is imported under a name made from its path, which differs between installs)."""
    cls = type(task)
    h = hashlib.sha256(f"{cls.__qualname__}:{getattr(task, 'version', '')}".encode())
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if file and Path(file).is_file():
        h.update(Path(file).read_bytes())
    return h.hexdigest()[:16]


def provenance(origin: str, task: Any) -> dict[str, str]:
    """The ``source``/``origin``/``definition`` entries recorded for ``task`` in run.json."""
    return {"source": source_kind(origin), "origin": origin, "definition": definition_fingerprint(task)}


def definition_conflicts(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Tasks whose recorded definition differs between runs (``(run_id, datasets)`` pairs, the first
    run being the reference), one description each. Runs recorded before definitions were are not
    compared."""
    if not runs:
        return []
    ref_id, ref = runs[0]
    out = []
    for run_id, datasets in runs[1:]:
        for task, info in (ref or {}).items():
            other = (datasets or {}).get(task)
            if not isinstance(info, Mapping) or not isinstance(other, Mapping):
                continue
            a, b = info.get("definition"), other.get("definition")
            if a and b and a != b:
                out.append(f"task '{task}' of {run_id} ({_where(other)}) is not the one of {ref_id} ({_where(info)})")
    return out


def _where(info: Mapping[str, Any]) -> str:
    return f"{info.get('source', '?')} {info.get('origin', '')}, definition {info.get('definition')}".strip()
