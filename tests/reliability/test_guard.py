"""Unit checks of the guard pieces the CLI table cannot reach cheaply."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pvm_bench.results import JsonlAppender, RunRecord, read_jsonl
from pvm_bench.runner.guard import RunLock, RunLockedError, hub_snapshot, resume_changes


def test_hub_revision_is_read_from_the_cache_and_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = tmp_path / "models--org--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text("abc123")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert hub_snapshot("org/tiny") == "abc123"
    assert hub_snapshot("org/absent") is None
    old = RunRecord(run_id="r", model={"source": "org/tiny", "fingerprint": "f", "hub_revision": "abc123"})
    new = RunRecord(run_id="r", model={"source": "org/tiny", "fingerprint": "f", "hub_revision": "def456"})
    assert resume_changes(old, new) == ["hub revision of org/tiny (abc123 -> def456)"]
    assert resume_changes(old, old) == []


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    assert not RunLock(tmp_path).is_free()
    first.release()
    assert RunLock(tmp_path).is_free()
    RunLock(tmp_path).acquire().release()


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """POSIX may write fewer bytes than asked without an error: the appender finishes the line."""
    real = os.write

    def dribble(fd: int, data) -> int:  # noqa: ANN001
        return real(fd, bytes(data[:7]))

    path = tmp_path / "samples.jsonl"
    with JsonlAppender(path) as sink:
        monkeypatch.setattr(os, "write", dribble)
        sink.append({"a": "x" * 100})
        sink.append({"b": 2})
        monkeypatch.undo()
    assert read_jsonl(path) == [{"a": "x" * 100}, {"b": 2}]


def test_judge_adapter_data_and_generation_changes_are_named() -> None:
    old = RunRecord(
        run_id="r", model={"source": "m", "fingerprint": "f", "judge": {"id": "j", "fingerprint": "j1"}},
        adapter={"path": "a", "fingerprint": "a1"}, datasets={"mmstar": {"n": 6, "fingerprint": "d1"}},
        generation={"mmstar": {"max_new_tokens": 12, "generation_config.top_k": None}},
    )
    new = RunRecord(
        run_id="r", model={"source": "m", "fingerprint": "f", "judge": {"id": "j", "fingerprint": "j2"}},
        adapter={"path": "a", "fingerprint": "a2"}, datasets={"mmstar": {"n": 5, "fingerprint": "d2"}},
        generation={"mmstar": {"max_new_tokens": 12, "generation_config.top_k": 7}},
    )
    assert resume_changes(old, new) == [
        "judge model (fingerprint j1 -> j2)",
        "PVM adapter a (fingerprint a1 -> a2)",
        "data of task 'mmstar' (6 -> 5 samples, fingerprint d1 -> d2)",
        "generation settings of task 'mmstar' (generation_config.top_k None -> 7)",
    ]
