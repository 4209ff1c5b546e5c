"""Run-level checks of issue 20 that a table row cannot express: concurrent reports take turns."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pvm_bench.runner.guard import REPORT_LOCK_NAME, RunLock


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "pvm_bench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def test_a_report_waits_for_another_report_of_the_run(env) -> None:
    """While one report holds the run's report lock, a second one writes nothing; it writes its
    whole set once the first is done (two `report --cohort` runs never mix their files)."""
    run = env.make_run(drop_last=False)
    held = RunLock(run, REPORT_LOCK_NAME).acquire()
    try:
        proc = _cli("report", str(run), "--cohort", "4")
        time.sleep(4.0)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert not (run / "summary.md").exists() and not (run / "report.html").exists()
    finally:
        held.release()
    code = proc.wait(timeout=300)
    output = proc.stdout.read() if proc.stdout else ""
    assert code == 0, output
    assert (run / "summary.md").exists() and (run / "report.html").exists()


def test_two_concurrent_reports_both_finish_and_leave_no_temp_files(env) -> None:
    run = env.make_run(drop_last=False)
    procs = [_cli("report", str(run), "--cohort", str(t)) for t in (4, 16)]
    results = [(p.wait(timeout=600), p.stdout.read() if p.stdout else "") for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    assert not [p for p in run.rglob("*.tmp")]
    assert "Traceback" not in "".join(out for _, out in results)
