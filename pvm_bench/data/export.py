"""Benchmark data for machines without the hub: export the ``--data-dir`` layout, check a folder.

- :func:`export_task` runs on a machine with hub access: it loads a task through the task's own
  ``load`` (its dataset id, configs and fallbacks apply; every row is parsed, so a schema the
  task cannot read fails here, not on the cluster), records the hub tables that were read
  (:func:`pvm_bench.data.tables.recording_hub_tables`), concatenates them (MMMU's 30 subject configs
  become one table) and writes ``OUT/<task data name>/<split>.parquet`` with the images embedded
  as ``{"bytes", "path"}`` structs, exactly what ``--data-dir`` reads.
- :func:`check_task` validates a folder offline the way ``pvm-bench run`` reads it: the same
  one-line errors (missing file, unreadable table, missing field, duplicate ids), plus every image
  decoded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pvm_bench.data.imageroot import image_root
from pvm_bench.runner.workload import duplicate_ids_message
from pvm_bench.safeio import temp_beside
from pvm_bench.tasks import CorruptImageError, HubTask, Task, TaskError


@dataclass
class Exported:
    """One written table."""

    task: str
    split: str
    path: Path
    rows: int
    sources: list[str]


@dataclass
class Checked:
    """The result of checking one task split under a data dir."""

    task: str
    split: str
    samples: int = 0
    images: int = 0
    fingerprint: str = ""
    errors: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def task_splits(task: Task, split: str | None) -> list[str]:
    """``split`` (validated), every split for ``"all"``, else the task's default split; a split made
    of others (a task's ``split_parts``, e.g. MathVerse's "vision") stands for its parts."""
    if split is None:
        chosen = [task.default_split]
    elif split == "all":
        chosen = list(task.splits)
    elif split not in task.splits:
        raise TaskError(f"task '{task.name}': unknown split '{split}'; choose from {', '.join(task.splits)} or 'all'")
    else:
        chosen = [split]
    parts: dict[str, tuple[str, ...]] = getattr(task, "split_parts", {})
    return list(dict.fromkeys(p for s in chosen for p in parts.get(s, (s,))))


def data_folder(task: Task) -> str:
    return getattr(task, "data_name", "") or task.name


def export_task(task: Task, out: Path, split: str, *, overwrite: bool = False) -> Exported:
    """Write ``out/<data name>/<split>.parquet`` for a hub task (see the module docstring)."""
    import datasets
    from datasets.table import embed_table_storage

    from pvm_bench.data.tables import recording_hub_tables

    if not isinstance(task, HubTask):
        raise TaskError(f"task '{task.name}' generates its data locally; it needs no export")
    target = Path(out) / data_folder(task) / f"{split}.parquet"
    if target.exists() and not overwrite:
        raise TaskError(f"{target} already exists; pass --overwrite to replace it")
    with recording_hub_tables() as recorded:
        task.load(split, None, None)  # parses every row: a schema the task cannot read fails here
    recorded = [r for r in recorded if r[2] == split]
    if not recorded:
        raise TaskError(f"task '{task.name}' read no hub table for split '{split}'")
    recorded = [r for r in recorded if r[0] == recorded[-1][0]]  # after a fallback, only the source that served
    tables = [ds for _, _, _, ds in recorded]
    features = tables[0].features
    tables = [t if t.features == features else t.cast(features) for t in tables]
    table = datasets.concatenate_datasets(tables) if len(tables) > 1 else tables[0]
    # Images as bytes inside the file: a table whose images point at this machine's cache would
    # not load anywhere else.
    table = table.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True).with_format(None)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(target)  # a unique temp name: two exports never share one
    os.close(fd)
    try:
        table.to_parquet(str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    sources = [f"{hub}{'/' + config if config else ''}" for hub, config, _, _ in recorded]
    return Exported(task.name, split, target, len(table), sources)


def check_task(task: Task, data_dir: Path, split: str, *, images: bool = True, max_errors: int = 5) -> Checked:
    """Load ``split`` of ``task`` from ``data_dir`` as a run would, then decode every image."""
    result = Checked(task.name, split)
    if not isinstance(task, HubTask):
        result.note = "generated locally, needs no data"
        return result
    try:
        with image_root(data_dir):  # as the runner loads it: image paths confined to data_dir
            samples = task.load(split, None, Path(data_dir))
    except TaskError as exc:
        result.errors.append(str(exc))
        return result
    result.samples = len(samples)
    if not samples:
        result.errors.append(f"task '{task.name}': {data_dir} holds no rows for split '{split}'")
        return result
    duplicates = duplicate_ids_message(task.name, split, samples)  # the runner refuses these too
    if duplicates:
        result.errors.append(duplicates)
    result.fingerprint = task.fingerprint(samples)
    if images:
        bad = 0
        for sample in samples:
            for image in sample.images:
                result.images += 1
                try:
                    image.load()
                except CorruptImageError as exc:
                    bad += 1
                    if bad <= max_errors:
                        result.errors.append(f"task '{task.name}' sample '{sample.id}': {exc}")
        if bad > max_errors:
            result.errors.append(f"task '{task.name}': {bad - max_errors} more undecodable image(s)")
    return result


def describe_sources(sources: Sequence[str]) -> str:
    """``MMMU/MMMU (30 configs)`` rather than thirty names."""
    by_hub: dict[str, int] = {}
    for source in sources:
        hub = "/".join(source.split("/")[:2])
        by_hub[hub] = by_hub.get(hub, 0) + 1
    return ", ".join(hub if n == 1 else f"{hub} ({n} configs)" for hub, n in by_hub.items())


def resolve_tasks(
    names: Sequence[str], include_paths: Sequence[Path] = (), override_tasks: Sequence[str] = ()
) -> list[Task]:
    """Tasks (groups expanded) from the registry (``override_tasks``: see ``--override-task``)."""
    from pvm_bench.tasks import get_registry

    return get_registry(list(include_paths), override_tasks=override_tasks).resolve(names)


def export_tasks(tasks: Sequence[Task], out: Path, split: str | None, *, overwrite: bool = False,
                 log: Callable[[str], Any] = print) -> list[Exported]:
    """Export every (data folder, split) once; generated tasks are skipped with a note."""
    done: set[tuple[str, str]] = set()
    written: list[Exported] = []
    for task in tasks:
        if not isinstance(task, HubTask):
            log(f"skip {task.name}: generated locally, needs no export")
            continue
        for name in task_splits(task, split):
            key = (data_folder(task), name)
            if key in done:
                continue
            done.add(key)
            result = export_task(task, out, name, overwrite=overwrite)
            written.append(result)
            log(f"wrote {result.path} ({result.rows} rows from {describe_sources(result.sources)})")
    return written


__all__ = ["Checked", "Exported", "check_task", "export_task", "export_tasks", "resolve_tasks", "task_splits"]
