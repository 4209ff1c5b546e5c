"""The merge of attention parts into the store keeps each recorded sample's rows from its last part,
moves parts instead of rewriting them, and a memory failure is an error that keeps every part
(never "unreadable", never a success)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pvm_bench.bench.synth_run import SynthSpec, write_synthetic_run
from pvm_bench.results import KEY_COLUMNS, read_samples
from pvm_bench.runner.attention_merge import MergeMemoryError
from pvm_bench.runner.files import merge_attention, write_parquet_atomic
from pvm_bench.runner.guard import RunError


def reference_merge(run_dir: Path) -> pd.DataFrame:
    """What the store must hold: per recorded sample, the rows of the last file holding it (the
    old single file first, then the parts in name order), in file order, pandas' column union."""
    target = run_dir / "attention.parquet"
    parts = sorted((run_dir / "attention").glob("part-*.parquet"))
    frames = ([pd.read_parquet(target)] if target.is_file() else []) + [pd.read_parquet(p) for p in parts]
    owner = {}
    for i, frame in enumerate(frames):
        owner.update(dict.fromkeys(zip(frame["variant"], frame["task"], frame["sample_id"], frame["repeat"]), i))
    keep = {rec.key for rec in read_samples(run_dir)}
    kept = [f[[owner[k] == i and k in keep for k in zip(f["variant"], f["task"], f["sample_id"], f["repeat"])]]
            for i, f in enumerate(frames)]
    return _canonical(pd.concat(kept, ignore_index=True))


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    cols = [*KEY_COLUMNS, *(c for c in ("step", "layer") if c in frame.columns)]
    frame = frame.astype({k: str for k in KEY_COLUMNS[:3]})
    return frame.sort_values(cols, kind="stable").reset_index(drop=True)[sorted(frame.columns)]


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


def _assert_same(run: Path, expected: pd.DataFrame) -> None:
    from pvm_bench.attention_store import store_schema

    # the store is a directory pandas reads as one table (with the union of the parts' columns)
    got = pd.read_parquet(run / "attention.parquet", schema=store_schema(run))
    assert run.joinpath("attention.parquet").is_dir()
    pd.testing.assert_frame_equal(_canonical(got), expected, check_dtype=False)


def test_merge_keeps_each_recorded_sample_from_its_last_part_and_rewrites_only_parts_with_stale_samples(
        tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    # an old-format single-file store, then parts: a re-run sample (its new rows replace ALL its old
    # rows), a sample that is no longer recorded (dropped), a part without the pvm column and one where
    # an int column is missing, ids that sort differently as strings and numbers
    write_parquet_atomic(pd.concat([_rows("base", "s-10", 3, 2, 0), _rows("base", "s-2", 2, 2, 1)]),
                         run / "attention.parquet")
    _part(run, "part-1-a.parquet", _rows("base", "s-2", 4, 2, 2))
    _part(run, "part-2-b.parquet", pd.concat([_rows("pvm", "s-9", 2, 2, 3, pvm_ratio=0.5),
                                              _rows("pvm", "gone", 2, 2, 4, pvm_ratio=0.1)]))
    _part(run, "part-3-c.parquet", _rows("pvm", "s-1", 2, 2, 5).drop(columns="n_keys"))
    _part(run, "part-4-d.parquet", _rows("base", "s-10", 1, 2, 6))  # re-run again: replaces s-10 entirely
    _records(run, [("base", "s-10"), ("base", "s-2"), ("pvm", "s-9"), ("pvm", "s-1")])
    untouched = {n: (run / "attention" / n).read_bytes() for n in ("part-1-a.parquet", "part-3-c.parquet")}
    expected = reference_merge(run)
    assert merge_attention(run) == run / "attention.parquet"
    _assert_same(run, expected)
    store = run / "attention.parquet"
    # the legacy file held only superseded samples (deleted); part-2 lost "gone" (rewritten); the rest moved
    assert sorted(p.name for p in store.iterdir()) == ["part-1-a.parquet", "part-2-b.parquet", "part-3-c.parquet",
                                                        "part-4-d.parquet"]
    assert all((store / n).read_bytes() == b for n, b in untouched.items())
    assert set(pd.read_parquet(store / "part-2-b.parquet")["sample_id"]) == {"s-9"}
    assert not (run / "attention").exists() and not list(run.glob(".merge-tmp*"))
    tables = sorted(p.name for p in (run / "attention-agg" / "steps").iterdir())
    assert tables == sorted(p.name for p in store.iterdir())  # every file of the store has its tables


def test_merge_of_a_synthetic_run_moves_every_part_unchanged(tmp_path: Path) -> None:
    run = tmp_path / "s"
    info = write_synthetic_run(run, SynthSpec(rows=80_000, layers=4, cap=2048, tasks=3))
    parts = {p.name: p.stat().st_ino for p in (run / "attention").glob("part-*.parquet")}
    expected = reference_merge(run)
    merge_attention(run)
    _assert_same(run, expected)
    assert {p.name: p.stat().st_ino for p in (run / "attention.parquet").iterdir()} == parts  # renamed, not copied
    assert sum(pq.read_metadata(p).num_rows for p in (run / "attention.parquet").iterdir()) == info["rows"]


def test_out_of_memory_is_a_clear_error_and_keeps_every_part(tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "m"
    write_synthetic_run(run, SynthSpec(rows=60_000, layers=4, cap=2048, tasks=2))
    shutil.rmtree(run / "attention-agg")  # parts without tables: the merge computes them (in DuckDB)
    before = sorted(p.name for p in (run / "attention").iterdir())
    with pytest.raises(MergeMemoryError, match="out of memory merging.*nothing was lost.*PVM_BENCH_MERGE_MEMORY"):
        merge_attention(run, memory_limit="1MB")
    assert sorted(p.name for p in (run / "attention").iterdir()) == before  # nothing renamed "unreadable"
    assert not list((run / "attention.parquet").glob("*")) and not list(run.glob("*.tmp"))
    assert not (run / ".merge-tmp").exists()


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

    monkeypatch.setattr(runfiles, "merge_store", full)
    with pytest.raises(DiskFullError, match="disk full writing .*attention.parquet"):
        merge_attention(run)
    assert [p.name for p in (run / "attention").iterdir()] == ["part-1-a.parquet"]
