"""Multi-node runs need one shared run directory: ranks that cannot see it fail with one line naming
the fix, at the start (collective check) and at the end (missing rank shards)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pvm_bench.runner.distributed import shared_dir_problem
from pvm_bench.runner.files import merge_sample_shards
from pvm_bench.runner.guard import RunError


def _shard(run: Path, rank: int, sample_id: str) -> None:
    row = {"variant": "base", "task": "t", "sample_id": sample_id, "repeat": 0, "seed": 1, "prompt": "p", "output": "o"}
    (run / f"samples.rank{rank}.jsonl").write_text(json.dumps(row) + "\n")


def test_missing_rank_shard_at_merge_names_the_fix_and_keeps_every_file(tmp_path: Path) -> None:
    _shard(tmp_path, 0, "a")
    _shard(tmp_path, 2, "c")
    with pytest.raises(RunError, match=r"rank\(s\) 1, 3 .* not in .*filesystem every node mounts at the same path"):
        merge_sample_shards(tmp_path, world=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.rank0.jsonl", "samples.rank2.jsonl"]
    _shard(tmp_path, 1, "b")
    merge_sample_shards(tmp_path, world=3)  # every rank of a 3-rank run is there: merged
    assert [p.name for p in tmp_path.iterdir()] == ["samples.jsonl"]
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 3


def test_shared_dir_problem_names_the_blind_ranks_and_hosts(tmp_path: Path) -> None:
    assert shared_dir_problem([(0, "n1", True), (1, "n1", True)], tmp_path) is None
    msg = shared_dir_problem([(0, "n1", True), (1, "n2", False), (2, "n2", False)], tmp_path)
    assert msg is not None and msg.startswith(f"rank 1 on n2, rank 2 on n2 cannot see the run directory {tmp_path}")
    assert "rank 0 on n1" in msg and "NFS" in msg and "\n" not in msg


_RANK = """
import sys
from pathlib import Path
from pvm_bench.runner.distributed import init_from_env
from pvm_bench.errors import UserError
dist = init_from_env()
try:
    dist.check_shared_dir(Path(sys.argv[1]))
    print("ok")
except UserError as exc:
    print("error:", exc)
dist.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two torch processes per case
@pytest.mark.parametrize("shared", [True, False])
def test_collective_check_over_gloo(tmp_path: Path, shared: bool) -> None:
    """Two gloo ranks; 'node-local disks' are two different directories under the same name."""
    dirs = [tmp_path / "node0" / "run", tmp_path / ("node0" if shared else "node1") / "run"]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "CUDA_VISIBLE_DEVICES": ""}
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK, str(dirs[rank])], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    lines = [o[0].strip().splitlines()[-1] for o in outs]
    if shared:
        assert lines == ["ok", "ok"]
    else:
        host = socket.gethostname()
        for line in lines:  # both ranks fail, with the same line
            assert line == (f"error: rank 1 on {host} cannot see the run directory {dirs[0]} that rank 0 on {host} "
                            "writes; a multi-node run needs --out on a filesystem every node mounts at the same path "
                            "(NFS, Lustre, GPFS...); see README 'Multi-GPU and multi-node'")
    assert not list(dirs[0].iterdir())  # the token file is removed
