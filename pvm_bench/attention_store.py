"""Where a run's attention rows live, and the one helper every reader uses to find them.

Layout of a run directory (format since issue 22; older runs keep working):

- ``attention/part-<ns>-<hex>.parquet``: written by the runner, one per batch of whole samples
  (unmerged: a running or killed run);
- ``attention.parquet/part-*.parquet``: the merged full-resolution store, a directory of parquet
  files (the Spark convention: ``pd.read_parquet(RUN / "attention.parquet")``,
  ``read_parquet('RUN/attention.parquet/*.parquet')`` in DuckDB and pyarrow's dataset read it as one
  table). The merge moves parts in (rename), it never rewrites rows except of a part holding
  superseded or unrecorded samples. Runs written before this format have ``attention.parquet`` as
  one file; it is read the same way (and becomes the dataset's first part on ``--resume``);
- ``attention-agg/<kind>/<part name>``: the aggregate tables of every part
  (:mod:`pvm_bench.attention_tables`), which is all the report reads.

:func:`attention_sources` lists the files in reading order (store, then unmerged parts; the last
file holding a sample wins), :func:`attention_dataset` the files of the full-resolution store for
users and exporters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

STORE = "attention.parquet"
"""The merged store: a directory of part files (a single file in runs before issue 22)."""
PARTS = "attention"
"""The runner's unmerged part files."""
AGG = "attention-agg"
"""The aggregate tables, one set per attention file (named after it)."""
LEGACY_PART = "part-0-legacy.parquet"
"""The name an old single-file attention.parquet gets inside the store (sorts before every part)."""


@dataclass(frozen=True)
class AttentionSources:
    """A run's attention files in reading order: ``store`` (merged) then ``parts`` (unmerged)."""

    run_dir: Path
    store: list[Path]
    parts: list[Path]

    @property
    def files(self) -> list[Path]:
        return [*self.store, *self.parts]

    def label(self, path: Path) -> str:
        """The file's name relative to the run directory (for messages)."""
        try:
            return str(path.relative_to(self.run_dir))
        except ValueError:
            return str(path)


def part_files(folder: Path) -> list[Path]:
    """``part-*.parquet`` in ``folder``, in name (= write) order; none when it is not a directory."""
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def attention_sources(run_dir: Path | str) -> AttentionSources:
    """The attention files of ``run_dir`` (see the module docstring), old single-file store included."""
    run_dir = Path(run_dir)
    store = run_dir / STORE
    merged = [store] if store.is_file() else part_files(store)
    return AttentionSources(run_dir, merged, part_files(run_dir / PARTS))


def attention_dataset(run_dir: Path | str) -> list[Path]:
    """The files of the merged full-resolution store (empty when the run has none)."""
    return attention_sources(run_dir).store


def has_attention(run_dir: Path) -> bool:
    """Whether the run has any attention file (merged or not)."""
    return bool(attention_sources(run_dir).files)


def agg_root(run_dir: Path) -> Path:
    return run_dir / AGG


def store_schema(run_dir: Path | str) -> pa.Schema:
    """The union of the store's file schemas (parts differ: base has no ``pvm_*`` columns), for
    ``pd.read_parquet(RUN / "attention.parquet", schema=store_schema(RUN))``; pyarrow alone would
    take the first file's columns for all."""
    import pyarrow.parquet as pq

    return pa.unify_schemas([pq.read_schema(p).remove_metadata() for p in attention_dataset(run_dir)])


def read_store(run_dir: Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    """The full-resolution rows of the store in pandas, every file's columns included, sorted by
    (variant, task, sample_id, repeat, step, layer) as the single merged file of older runs was
    (memory grows with the run: small runs and column subsets only)."""
    import pyarrow.parquet as pq

    files = attention_dataset(run_dir)
    if not files:
        raise FileNotFoundError(f"{run_dir} has no attention store ({STORE})")
    if len(files) == 1:
        frame = pd.read_parquet(files[0], columns=columns)
    else:
        frame = pq.read_table(Path(run_dir) / STORE, schema=store_schema(run_dir), columns=columns).to_pandas()
    order = [c for c in ("variant", "task", "sample_id", "repeat", "step", "layer") if c in frame.columns]
    return frame.sort_values(order, kind="stable").reset_index(drop=True) if order else frame
