"""The streaming merge of attention parts writes what the in-memory merge wrote, value for value,
and a memory failure is an error that keeps every part (never "unreadable", never a success)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pvm_bench.bench.synth_run import SynthSpec, write_synthetic_run
from pvm_bench.results import KEY_COLUMNS, compact_frame, read_samples
from pvm_bench.runner.attention_merge import ROW_GROUP_ROWS, MergeMemoryError
from pvm_bench.runner.files import merge_attention, write_parquet_atomic
from pvm_bench.runner.guard import RunError


def reference_merge(run_dir: Path) -> pa.Table:
    """The merge before the streaming one (pvm_bench/runner/files.py at 787a1b4), kept as the oracle."""
    target = run_dir / "attention.parquet"
    parts = sorted((run_dir / "attention").glob("part-*.parquet"))
    frames = ([pd.read_parquet(target)] if target.exists() else []) + [pd.read_parquet(p) for p in parts]
    frame = pd.concat(frames, ignore_index=True)
    keep = {rec.key for rec in read_samples(run_dir)}
    keys = list(zip(frame["variant"], frame["task"], frame["sample_id"], frame["repeat"]))
    frame = frame[[k in keep for k in keys]]
    index_cols = KEY_COLUMNS + [c for c in ("step", "layer") if c in frame.columns]
    frame = frame.drop_duplicates(subset=index_cols, keep="last").sort_values(index_cols, kind="stable")
    return pa.Table.from_pandas(compact_frame(frame.reset_index(drop=True)), preserve_index=False)


def _part(run: Path, name: str, frame: pd.DataFrame) -> None:
    (run / "attention").mkdir(exist_ok=True)
    write_parquet_atomic(frame, run / "attention" / name)


def _rows(variant: str, sample_id: str, steps: int, layers: int, seed: int, **extra: object) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = steps * layers
    frame = pd.DataFrame({"variant": variant, "task": "t", "sample_id": sample_id, "repeat": 0,
                          "step": np.repeat(np.arange(steps), layers), "layer": np.tile(np.arange(layers), steps),
                          "visual_mass": rng.random(n), "n_keys": np.arange(n) + 5})
    for col, value in extra.items():
        frame[col] = value
    return frame


def _records(run: Path, keys: list[tuple[str, str]]) -> None:
    with open(run / "samples.jsonl", "w") as fh:
        for variant, sid in keys:
            fh.write(json.dumps({"variant": variant, "task": "t", "sample_id": sid, "repeat": 0, "seed": 1,
                                 "prompt": "p", "output": "o"}) + "\n")


def _assert_same(run: Path, expected: pa.Table) -> None:
    got = pq.read_table(run / "attention.parquet")
    assert got.schema.equals(expected.schema, check_metadata=True), (got.schema, expected.schema)
    assert got.equals(expected)
    assert pd.read_parquet(run / "attention.parquet").dtypes.equals(expected.to_pandas().dtypes)


@pytest.mark.parametrize("batch_rows", [ROW_GROUP_ROWS, 3])  # 3: duplicates straddle the streamed batches
def test_merge_equals_the_in_memory_merge_on_resume_duplicates_and_schema_drift(tmp_path: Path, monkeypatch,
                                                                                batch_rows: int) -> None:
    from pvm_bench.runner import attention_merge
    monkeypatch.setattr(attention_merge, "ROW_GROUP_ROWS", batch_rows)
    run = tmp_path / "r"
    run.mkdir()
    # an earlier merge, then parts: a re-run sample (its new rows must win), rows of a sample that
    # is no longer recorded (dropped), a part without the pvm column and one where an int column
    # is missing (pandas promotes it to float), ids that sort differently as strings and numbers
    write_parquet_atomic(pd.concat([_rows("base", "s-10", 3, 2, 0), _rows("base", "s-2", 2, 2, 1)]),
                         run / "attention.parquet")
    _part(run, "part-1-a.parquet", _rows("base", "s-2", 4, 2, 2))
    _part(run, "part-2-b.parquet", pd.concat([_rows("pvm", "s-9", 2, 2, 3, pvm_ratio=0.5),
                                              _rows("pvm", "gone", 2, 2, 4, pvm_ratio=0.1)]))
    _part(run, "part-3-c.parquet", _rows("pvm", "s-1", 2, 2, 5).drop(columns="n_keys"))
    _part(run, "part-4-d.parquet", _rows("base", "s-10", 1, 2, 6))  # re-run again: replaces step 0 only
    _records(run, [("base", "s-10"), ("base", "s-2"), ("pvm", "s-9"), ("pvm", "s-1")])
    expected = reference_merge(run)
    assert merge_attention(run) == run / "attention.parquet"
    _assert_same(run, expected)
    assert not (run / "attention").exists() and not list(run.glob(".merge-tmp*"))


def test_merge_of_a_synthetic_run_equals_the_in_memory_merge_with_bounded_row_groups(
    tmp_path: Path, monkeypatch
) -> None:
    from pvm_bench.runner import attention_merge
    monkeypatch.setattr(attention_merge, "ROW_GROUP_ROWS", 16_384)
    run = tmp_path / "s"
    info = write_synthetic_run(run, SynthSpec(rows=80_000, layers=4, cap=2048, tasks=3))
    expected = reference_merge(run)
    merge_attention(run)
    _assert_same(run, expected)
    meta = pq.ParquetFile(run / "attention.parquet").metadata
    assert meta.num_rows == info["rows"] and meta.num_row_groups >= 4
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 16_384 < ROW_GROUP_ROWS


def test_out_of_memory_is_a_clear_error_and_keeps_every_part(tmp_path: Path) -> None:
    run = tmp_path / "m"
    write_synthetic_run(run, SynthSpec(rows=60_000, layers=4, cap=2048, tasks=2))
    before = sorted(p.name for p in (run / "attention").iterdir())
    with pytest.raises(MergeMemoryError, match="out of memory merging.*nothing was lost.*PVM_BENCH_MERGE_MEMORY"):
        merge_attention(run, memory_limit="1MB")
    assert sorted(p.name for p in (run / "attention").iterdir()) == before  # nothing renamed "unreadable"
    assert (
        not (run / "attention.parquet").exists() and not list(run.glob("*.tmp")) and not (run / ".merge-tmp").exists()
    )


def test_a_part_damaged_past_its_footer_is_set_aside_and_the_rest_merged(tmp_path: Path) -> None:
    run = tmp_path / "d"
    run.mkdir()
    _part(run, "part-1-a.parquet", _rows("base", "s-1", 50, 4, 0))
    _part(run, "part-2-b.parquet", _rows("base", "s-2", 50, 4, 1))
    _records(run, [("base", "s-1"), ("base", "s-2")])
    bad = run / "attention" / "part-2-b.parquet"
    data = bytearray(bad.read_bytes())
    data[4:400] = b"\xff" * 396  # the first data pages; the footer still reads
    bad.write_bytes(bytes(data))
    pq.read_metadata(bad)
    with pytest.raises(RunError, match="part-2-b.parquet .* unreadable"):
        merge_attention(run)
    assert (run / "attention" / "part-2-b.parquet.unreadable").exists()
    assert set(pd.read_parquet(run / "attention.parquet")["sample_id"]) == {"s-1"}


def test_a_full_disk_during_the_merge_is_disk_full_not_memory_nor_damage(tmp_path: Path, monkeypatch) -> None:
    import duckdb

    from pvm_bench.errors import DiskFullError
    from pvm_bench.runner import files as runfiles

    run = tmp_path / "f"
    run.mkdir()
    _part(run, "part-1-a.parquet", _rows("base", "s-1", 3, 2, 0))
    _records(run, [("base", "s-1")])

    def full(*args: object, **kwargs: object) -> int:
        raise duckdb.OutOfMemoryException("could not write block: max_temp_directory_size reached (No space left)")

    monkeypatch.setattr(runfiles, "stream_merge", full)
    with pytest.raises(DiskFullError, match="disk full writing .*attention.parquet"):
        merge_attention(run)
    assert [p.name for p in (run / "attention").iterdir()] == ["part-1-a.parquet"]
