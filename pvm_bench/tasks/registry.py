"""The task registry: tasks and groups by name, from task folders and entry points.

One loader for every task module: :func:`load_task_file` imports a ``*.py`` file of a task folder
(its ``TASKS`` and ``GROUPS``) under a name unique to its path. The built-in benchmarks are simply
the first such folder (:func:`builtin_task_dir`, the repository's top-level ``tasks/``), then come
the ``pvm_bench.tasks`` entry points (a module or a callable returning tasks), then each
``--include-path`` folder; there is no second import path for built-ins.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType

from pvm_bench.errors import TaskError
from pvm_bench.registry import Registry, unknown_message
from pvm_bench.tasks.base import Task

#: Where a wheel carries the repository's ``tasks/`` folder inside the package (pyproject's
#: ``[tool.hatch.build.targets.wheel.force-include]``). Not an identifier, so it cannot be imported
#: as a subpackage: the loader below is the only way in.
PACKAGED_TASKS = "builtin-tasks"
#: How a built-in task's origin reads (``builtin tasks/mmmu.py``); :mod:`pvm_bench.tasks.defs`
#: records its source as ``builtin`` from this prefix.
BUILTIN_ORIGIN = "builtin tasks/"


def builtin_task_dir() -> Path:
    """The folder of the built-in task modules: ``pvm_bench/builtin-tasks`` inside an installed wheel,
    else the checkout's top-level ``tasks/`` beside the ``pvm_bench`` package (a fresh clone, or an
    editable install, whose ``.pth`` puts the checkout on ``sys.path``)."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / PACKAGED_TASKS
    return packaged if packaged.is_dir() else package.parent / "tasks"


def load_task_file(path: Path) -> ModuleType:
    """Import a task module from its file, under a name unique to the path (a module re-read from
    its file each time, so an edited plugin is picked up and per-run task state stays per registry)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    mod_name = f"pvm_bench_task_{path.parent.name}_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"cannot import task module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise TaskError(f"task module {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def builtin_task_module(stem: str) -> ModuleType:
    """One built-in task module (``length_diagnostics``...), through the same loader."""
    path = builtin_task_dir() / f"{stem}.py"
    if not path.is_file():
        raise TaskError(f"no built-in task module {stem!r} in {builtin_task_dir()}")
    return load_task_file(path)


class TaskRegistry:
    """Tasks and task groups by name, gathered from task folders and entry points."""

    def __init__(self, override_tasks: Iterable[str] = ()) -> None:
        self.tasks: Registry[Task] = Registry("task")
        self.groups: Registry[list[str]] = Registry("group")
        #: Where each task came from: ``builtin tasks/<file>``, an include-path file or ``entry point X``.
        self.origins: dict[str, str] = {}
        #: Names a later source may redefine (``--override-task``); any other redefinition is a conflict.
        self.override_tasks = {n.strip() for n in override_tasks if n.strip()}
        #: Name (task or group) -> the refusal for a name two sources define; raised when it is selected.
        self.conflicts: dict[str, str] = {}
        self._claims: dict[str, tuple[str, str]] = {}  # task and group names share one namespace

    def _claim(self, name: str, kind: str, origin: str) -> bool:
        """Whether ``origin`` may define ``name``: a name another source defines is kept by the first
        one and recorded in :attr:`conflicts`, unless it is in :attr:`override_tasks` (then the later
        source wins). A plugin named like a built-in would otherwise replace it silently."""
        before = self._claims.get(name)
        if before is not None and before[1] != origin and name not in self.override_tasks:
            self.conflicts[name] = (
                f"{kind} '{name}' from {origin} has the name of a {before[0]} from {before[1]}; rename it, or pass "
                f"--override-task {name} to let it replace that {before[0]}"
            )
            return False
        self._claims[name] = (kind, origin)
        return True

    def add(self, task: Task, origin: str) -> None:
        """Register ``task`` from ``origin`` (see :meth:`_claim` for a name already taken)."""
        if not task.name:
            raise TaskError(f"a task from {origin} has no name")
        if self._claim(task.name, "task", origin):
            self.groups.unregister(task.name)  # an overridden group of that name
            self.tasks.register(task.name, task)
            self.origins[task.name] = origin

    def add_module(self, module: ModuleType, origin: str) -> None:
        """Add a module's ``TASKS`` and ``GROUPS``."""
        for task in getattr(module, "TASKS", []):
            self.add(task, origin)
        for group, members in getattr(module, "GROUPS", {}).items():
            if self._claim(group, "group", origin):
                self.groups.register(group, list(members))

    def add_dir(self, directory: Path, *, builtin: bool = False) -> None:
        """Add every ``*.py`` of ``directory`` (not ``_*``), in name order; ``builtin``: the origins
        read ``builtin tasks/<file>`` (the same wherever the package is installed)."""
        if not directory.is_dir():
            raise TaskError(f"include path {directory} is not a directory; pass a folder of task modules")
        for path in sorted(directory.glob("*.py")):
            if not path.name.startswith("_"):
                origin = f"{BUILTIN_ORIGIN}{path.name}" if builtin else str(path)
                self.add_module(load_task_file(path), origin)

    def add_entry_points(self) -> None:
        for ep in metadata.entry_points(group="pvm_bench.tasks"):
            obj = ep.load()
            if isinstance(obj, ModuleType):
                self.add_module(obj, f"entry point {ep.name}")
            else:
                for task in obj() if callable(obj) else obj:
                    self.add(task, f"entry point {ep.name}")

    def resolve(self, names: Iterable[str]) -> list[Task]:
        """Expand groups and return tasks in order, without duplicates; a selected name two sources
        define (:attr:`conflicts`) is refused with one line naming both and ``--override-task``."""
        out: list[Task] = []
        for raw in names:
            name = raw.strip()
            if not name:
                continue
            if name in self.conflicts:  # a name two sources define is refused only when it is used
                raise TaskError(self.conflicts[name])
            for member in self.groups.get(name, [name]):
                if member in self.conflicts:
                    raise TaskError(self.conflicts[member])
                if member not in self.tasks:
                    raise TaskError(unknown_message("task", member, [*self.tasks, *self.groups],
                                                    "`pvm-bench tasks` lists the tasks and groups"))
                if self.tasks[member] not in out:
                    out.append(self.tasks[member])
        if not out:
            raise TaskError("no tasks selected; pass --tasks with names from `pvm-bench tasks`")
        return out


def get_registry(include_paths: Sequence[Path | str] = (), entry_points: bool = True,
                 override_tasks: Iterable[str] = ()) -> TaskRegistry:
    """Build a registry: the built-in task folder, then entry points, then include paths; a later
    source may redefine a task name only when it is in ``override_tasks`` (then the last one wins)."""
    reg = TaskRegistry(override_tasks)
    reg.add_dir(builtin_task_dir(), builtin=True)
    if entry_points:
        reg.add_entry_points()
    for directory in include_paths:
        reg.add_dir(Path(directory))
    return reg
