"""Run-level protections through the CLI: forced resume, reuse of a failed run id, full disk,
concurrent resumes and kill -9 before the first sample."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pvm_bench.attention_store import read_store
from pvm_bench.results import read_jsonl


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_force_resume_continues_and_records_what_changed(env) -> None:
    run = env.make_run()
    shutil.copy(env.other_model / "model.safetensors", env.model / "model.safetensors")
    code, output = env.cli("run", "--resume", str(run), "--quiet", "--force-resume")
    assert code == 0, output
    record = _record(run)
    assert record["status"] == "completed" and record["counts"]["samples"] == 3
    (forced,) = record["forced_resumes"]
    assert any("model weights" in change for change in forced["changed"])
    # the next resume compares against the new weights, so it is not refused again
    code, output = env.cli("run", "--resume", str(run), "--quiet")
    assert code == 0, output


def test_resume_with_the_same_inputs_is_not_refused(env) -> None:
    run = env.make_run()
    code, output = env.cli("run", "--resume", str(run), "--quiet")
    assert code == 0, output
    record = _record(run)
    assert record["status"] == "completed" and record["counts"]["samples"] == 3 and record["forced_resumes"] == []
    assert record["generation"]["mmstar"]["max_new_tokens"] == 4
    assert len(read_jsonl(run / "samples.jsonl")) == 3


def test_failed_before_first_sample_is_recorded_and_its_run_id_reusable(env) -> None:
    weights = env.model / "model.safetensors"
    saved = weights.read_bytes()
    weights.unlink()
    code, output = env.cli(*env.run_args())
    assert code == 2 and "no model weights" in output, output
    record = _record(env.out / "r")
    assert record["status"] == "failed" and "no model weights" in record["error"]
    weights.write_bytes(saved)
    code, output = env.cli(*env.run_args())  # same --run-id: the sample-less failed run is replaced
    assert code == 0, output
    assert _record(env.out / "r")["status"] == "completed"


def test_completed_run_id_is_still_refused(env) -> None:
    env.make_run(drop_last=False)
    code, output = env.cli(*env.run_args())
    assert code == 2 and "already exists" in output, output


def _fail_writes_to(name: str, after: int, monkeypatch: pytest.MonkeyPatch, *, short: bool) -> None:
    """From the ``after``-th write to a file called ``name`` on: write half, then report ENOSPC
    (``short``: the kernel returns a short count, then 0 bytes, as on a full disk)."""
    real = os.write
    seen = {"n": 0}

    def fake(fd: int, data) -> int:  # noqa: ANN001
        target = os.readlink(f"/proc/self/fd/{fd}")
        if not target.endswith(name):
            return real(fd, data)
        seen["n"] += 1
        if seen["n"] <= after:
            return real(fd, data)
        if short and len(data) > 1:
            return real(fd, bytes(data[: len(data) // 2]))
        if short:
            return 0
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", fake)


@pytest.mark.parametrize("short", [False, True], ids=["enospc", "short-write"])
def test_disk_full_is_one_line_interrupted_and_resumable(env, monkeypatch: pytest.MonkeyPatch, short: bool) -> None:
    _fail_writes_to("samples.jsonl", 1, monkeypatch, short=short)
    code, output = env.cli(*env.run_args())
    monkeypatch.undo()
    run = env.out / "r"
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, output
    assert f"disk full writing {run / 'samples.jsonl'}; free space and `pvm-bench run --resume {run}`" in errors[0]
    record = _record(run)
    assert record["status"] == "interrupted" and "disk full" in record["error"]
    assert (run / "samples.jsonl").read_bytes().endswith(b"\n")  # no half record left behind
    assert len(read_jsonl(run / "samples.jsonl")) == 1
    assert not [p for p in run.rglob("*.tmp")]
    code, output = env.cli("run", "--resume", str(run), "--quiet")
    assert code == 0, output
    assert _record(run)["status"] == "completed" and len(read_jsonl(run / "samples.jsonl")) == 3


def test_disk_full_writing_run_json_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pvm_bench.errors import DiskFullError
    from pvm_bench.results import atomic_write_text

    target = tmp_path / "run.json"
    target.write_text("old\n")
    _fail_writes_to(".tmp", 0, monkeypatch, short=True)  # the temp file beside run.json (a unique name)
    with pytest.raises(DiskFullError, match="disk full writing .*run.json"):
        atomic_write_text(target, "x" * 10_000)
    monkeypatch.undo()
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "pvm_bench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.slow(seconds=10)  # three CLI processes
def test_concurrent_resumes_never_duplicate_samples(env) -> None:
    run = env.make_run()
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text(lines[0])  # two samples left to do
    procs = [_cli("run", "--resume", str(run), "--quiet") for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    rows = read_jsonl(run / "samples.jsonl")
    keys = [(r["variant"], r["task"], r["sample_id"], r["repeat"]) for r in rows]
    assert len(keys) == len(set(keys)) == 3, results
    # either they overlapped (one refused: the run is locked) or ran one after the other
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert any("in use by another pvm-bench process" in out for code, out in results if code == 2)
    assert _record(run)["status"] == "completed"


def test_kill_9_before_first_sample_does_not_block_the_run_id(env) -> None:
    proc = _cli(*env.run_args())
    run_json = env.out / "r" / "run.json"
    deadline = time.time() + 240
    while not run_json.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_json.exists() and not read_jsonl(env.out / "r" / "samples.jsonl")
    assert _record(env.out / "r")["status"] == "running"  # kill -9 cannot update run.json
    code, output = env.cli(*env.run_args())  # the dead run holds no lock and no samples: reused
    assert code == 0, output
    assert _record(env.out / "r")["status"] == "completed"


def test_disk_full_while_writing_the_report_is_one_line(env, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    run = env.make_run(drop_last=False)

    def full(self, path=None, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    code, output = env.cli("report", str(run))
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 3 and len(errors) == 1 and "Traceback" not in output, output  # 3: an output I/O error
    assert "disk full writing" in errors[0] and "free space" in errors[0]


def test_sigterm_records_interrupted_and_resume_completes(env) -> None:
    args = env.run_args()
    args[args.index("--max-new-tokens") + 1] = "48"
    proc = _cli(*args, "--batch-size", "1")
    samples = env.out / "r" / "samples.jsonl"
    deadline = time.time() + 240
    while (
        (not samples.exists() or not samples.read_bytes().count(b"\n"))
        and time.time() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    record = _record(env.out / "r")
    assert record["status"] == "interrupted" and record["error"] == "terminated (SIGTERM)", record
    code, output = env.cli("run", "--resume", str(env.out / "r"), "--quiet")
    assert code == 0, output
    assert _record(env.out / "r")["status"] == "completed" and len(read_jsonl(samples)) == 3


def test_kill_9_mid_run_with_probes_then_resume_equals_uninterrupted(env) -> None:
    """Outputs AND attention rows of a killed-then-resumed run equal an uninterrupted one
    (probe parts written before the kill are merged once, never duplicated)."""

    def args(run_id: str) -> list[str]:
        a = env.run_args(run_id, "--batch-size", "1")
        a[a.index("--max-new-tokens") + 1] = "24"
        a[a.index("--probes") + 1] = "attention"
        a[a.index("--limit") + 1] = "4"
        return a

    code, output = env.cli(*args("full"))
    assert code == 0, output
    proc = _cli(*args("killed"))
    samples = env.out / "killed" / "samples.jsonl"
    deadline = time.time() + 240
    while (
        (not samples.exists() or samples.read_bytes().count(b"\n") < 2)
        and time.time() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(read_jsonl(samples)) < 4
    code, output = env.cli("run", "--resume", str(env.out / "killed"), "--quiet")
    assert code == 0, output

    def outputs(run_id: str) -> dict:
        return {r["sample_id"]: r["output"] for r in read_jsonl(env.out / run_id / "samples.jsonl")}

    assert outputs("killed") == outputs("full")
    keys = ["variant", "task", "sample_id", "repeat", "step", "layer"]
    full = read_store(env.out / "full").sort_values(keys).reset_index(drop=True)
    killed = read_store(env.out / "killed").sort_values(keys).reset_index(drop=True)
    assert len(killed) == len(full) and not killed.duplicated(keys).any()
    assert (killed["visual_mass"].to_numpy() == full["visual_mass"].to_numpy()).all()
