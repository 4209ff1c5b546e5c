"""Thread count: the cores a process may use (affinity, cgroup quota) and OMP_NUM_THREADS."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pvm_bench import threads


def _cgroup(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc_file = tmp_path / "proc-cgroup"
    proc_file.write_text(proc)
    return root, proc_file


def test_cgroup_v2_quota(tmp_path):
    root, proc = _cgroup(tmp_path, "0::/user.slice/job\n", {"user.slice/job/cpu.max": "150000 100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(1.5)


def test_cgroup_v2_unlimited(tmp_path):
    root, proc = _cgroup(tmp_path, "0::/job\n", {"job/cpu.max": "max 100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) is None


def test_cgroup_v1_quota_and_period(tmp_path):
    root, proc = _cgroup(
        tmp_path, "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n",
        {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"},
    )
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(2.0)


def test_cgroup_v1_no_quota(tmp_path):
    root, proc = _cgroup(tmp_path, "1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) is None


def test_available_cpus_is_capped_by_quota(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1.5)
    assert threads.available_cpus() == 2
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.available_cpus() == 64


@pytest.mark.parametrize(("env", "expected"), [("3", 3), ("0", None), ("x", None), ("", None)])
def test_env_threads(monkeypatch, env, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    assert threads.env_threads() == expected


def test_default_threads_respects_omp_num_threads_then_idle_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 16)
    monkeypatch.setattr(threads, "idle_cpus", lambda: 16.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.default_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.default_threads() == 16  # an idle machine: every available core
    monkeypatch.setattr(threads, "idle_cpus", lambda: 5.6)
    assert threads.default_threads() == 6  # a busy one: the idle cores
    monkeypatch.setattr(threads, "idle_cpus", lambda: -6.0)
    assert threads.default_threads() == 1  # 2 cores, load 8 (this project's shared machine)
    monkeypatch.setattr(threads, "idle_cpus", lambda: None)
    assert threads.default_threads() == 16
    assert threads.resolve_threads(5) == 5
    with pytest.raises(ValueError):
        threads.resolve_threads(0)


def test_apply_threads_sets_torch():
    before = torch.get_num_threads()
    try:
        assert threads.apply_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
