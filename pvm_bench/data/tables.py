"""Loading benchmark tables from the hub or from a local ``--data-dir``.

Local layout (same columns as the hub dataset): ``DATA_DIR/<task>/<split>.parquet`` (or
``.jsonl`` / ``.json``); ``DATA_DIR`` itself may also hold ``<split>.parquet`` directly when
it is the folder of one task. Image columns are stored as ``{"bytes": ..., "path": ...}``
structs exactly as ``datasets`` writes them, so a hub export loads unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pvm_bench.data.filecheck import check_table_file
from pvm_bench.data.imageroot import set_data_file
from pvm_bench.errors import TaskError

LOCAL_SUFFIXES = (".parquet", ".jsonl", ".json")

#: Hub tables loaded while :func:`recording_hub_tables` is active (``pvm-bench data export``).
_RECORDED: ContextVar[list[tuple[str, str | None, str, Any]] | None] = ContextVar("pvm_bench_hub_tables", default=None)


def load_hub_split(hub_id: str, config: str | None, split: str) -> Any:
    """One split of one config of a hub dataset, as a ``datasets.Dataset`` (the only hub access)."""
    import datasets

    return datasets.load_dataset(hub_id, config, split=split)


@contextmanager
def recording_hub_tables() -> Iterator[list[tuple[str, str | None, str, Any]]]:
    """Collect ``(hub_id, config, split, dataset)`` for every hub table loaded inside the block.

    ``pvm-bench data export`` loads each task through its own ``load`` (so the task's choice of
    dataset, configs and fallbacks applies) and writes what was recorded.
    """
    recorded: list[tuple[str, str | None, str, Any]] = []
    token = _RECORDED.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDED.reset(token)


def find_local_file(data_dir: Path, task: str, split: str) -> Path | None:
    """The local file holding ``split`` of ``task`` under ``data_dir``, if any."""
    for folder in (data_dir / task, data_dir):
        for suffix in LOCAL_SUFFIXES:
            path = folder / f"{split}{suffix}"
            if path.is_file():
                return path
    return None


def load_rows(
    task: str,
    split: str,
    *,
    hub_id: str | None,
    data_dir: Path | None = None,
    hub_configs: Sequence[str | None] = (None,),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``split`` as dicts (images left undecoded), local files first.

    ``hub_configs`` lists the dataset configs to concatenate (MMMU has one per subject).
    Raises :class:`TaskError` with the fix when neither source is available.
    """
    import datasets

    if data_dir is not None:
        path = find_local_file(Path(data_dir), task, split)
        if path is None:
            raise TaskError(
                f"task '{task}': no {split}.parquet/.jsonl/.json under {data_dir}/{task} or {data_dir}; "
                f"export the hub dataset there or drop --data-dir"
            )
        set_data_file(path)  # image paths in its rows resolve against its folder (pvm_bench.data.imageroot)
        fmt = "parquet" if path.suffix == ".parquet" else "json"
        check_table_file(
            path, f"fix or re-export {task}/{split} (pvm-bench data export)"
        )  # one line, not datasets' traceback
        try:
            ds = datasets.load_dataset(fmt, data_files=str(path), split="train")
        except Exception as exc:
            raise TaskError(f"task '{task}': cannot read {path}: {type(exc).__name__}: {exc}") from exc
        return _take(ds, limit)
    if hub_id is None:
        raise TaskError(f"task '{task}' has no hub dataset; pass --data-dir with {split}.parquet")
    rows: list[dict[str, Any]] = []
    for config in hub_configs:
        try:
            ds = load_hub_split(hub_id, config, split)
            recorded = _RECORDED.get()
            if recorded is not None:
                recorded.append((hub_id, config, split, ds))
        except Exception as exc:
            exporting = _RECORDED.get() is not None  # `data export` has no --data-dir: name its own fix
            fix = ("check the dataset id and that this machine reaches the hub" if exporting
                   else f"when offline, pass --data-dir with {task}/{split}.parquet")
            raise TaskError(
                f"task '{task}': cannot load {hub_id}"
                f"{'/' + config if config else ''} split '{split}' from the Hugging Face hub "
                f"({type(exc).__name__}); {fix}"
            ) from exc
        rows.extend(_take(ds, None if limit is None else limit - len(rows)))
        if limit is not None and len(rows) >= limit:
            break
    return rows


def _take(ds: Any, limit: int | None) -> list[dict[str, Any]]:
    import datasets

    # Keep images as raw {"bytes","path"} so a corrupt one fails per sample, not here.
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return [dict(row) for row in ds]
