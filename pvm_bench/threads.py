"""How many CPU threads torch may use: the cores this process can actually run on.

torch defaults to one intra-op thread per core it sees, and on a container or a shared machine
it sees cores it cannot use: the affinity mask and the cgroup CPU quota are smaller than
``os.cpu_count()``. Oversubscribed threads spin against each other (a 16-record slice took
3 min 54 s with torch's default and 26.5 s with one thread on a busy 2-core machine), so every
command that runs a model resolves a thread count here and applies it before loading the model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")


def _cgroup_paths(root: Path, proc_cgroup: Path) -> list[Path]:
    """The cgroup directories of this process (its own, then the root), v2 and v1 layouts."""
    paths: list[Path] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, rel = parts[1], parts[2].lstrip("/")
        if controllers == "":  # v2 unified hierarchy
            paths.append(root / rel)
        elif "cpu" in controllers.split(","):
            paths.append(root / controllers / rel)
            paths.append(root / "cpu" / rel)
            paths.append(root / "cpu,cpuacct" / rel)
    paths.extend([root, root / "cpu", root / "cpu,cpuacct"])
    return paths


def cgroup_cpu_limit(root: Path = _CGROUP_ROOT, proc_cgroup: Path = _PROC_CGROUP) -> float | None:
    """CPUs allowed by the cgroup quota (e.g. 2.0 for ``200000 100000``), None when unlimited.

    Reads cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; the first
    directory on this process's cgroup path that has a quota wins.
    """
    for directory in _cgroup_paths(root, proc_cgroup):
        try:
            text = (directory / "cpu.max").read_text().split()
            if len(text) == 2 and text[0] != "max":
                return max(float(text[0]) / float(text[1]), 0.01)
            if text:
                continue
        except (OSError, ValueError, ZeroDivisionError):
            pass
        try:
            quota = int((directory / "cpu.cfs_quota_us").read_text().strip())
            period = int((directory / "cpu.cfs_period_us").read_text().strip())
            if quota > 0 and period > 0:
                return max(quota / period, 0.01)
        except (OSError, ValueError):
            continue
    return None


def available_cpus() -> int:
    """Cores this process may run on: the affinity mask, capped by the cgroup CPU quota (>= 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def env_threads() -> int | None:
    """OMP_NUM_THREADS when it is set to a positive integer (the user's explicit choice)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


def idle_cpus() -> float | None:
    """Cores not busy with other work: visible cores minus the 1-minute load average (None if unknown)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return (os.cpu_count() or 1) - load


def default_threads() -> int:
    """OMP_NUM_THREADS when set; else :func:`available_cpus`, lowered to the idle cores when the
    machine is busy (at least 1).

    Threads beyond the idle cores spin against other jobs: on a 2-core machine running ~7 other
    sessions (load 8), 2 threads were about 9x slower than 1, so the default there is 1; on an
    idle machine it is every available core.
    """
    explicit = env_threads()
    if explicit is not None:
        return explicit
    cores = available_cpus()
    idle = idle_cpus()
    if idle is not None:
        cores = min(cores, max(1, int(idle + 0.5)))
    return cores


def resolve_threads(threads: int | None) -> int:
    """``threads`` when given (>= 1), else :func:`default_threads`."""
    if threads is None:
        return default_threads()
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return threads


def apply_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count for this process; return the count used.

    The environment is left alone (tests and callers in the same process keep their own
    setting); ``--launcher torchrun`` passes ``--threads`` on to its workers.
    """
    import torch

    n = resolve_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


__all__ = [
    "apply_threads",
    "available_cpus",
    "cgroup_cpu_limit",
    "default_threads",
    "env_threads",
    "idle_cpus",
    "resolve_threads",
]
