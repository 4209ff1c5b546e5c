"""The shared training loop (pvm_bench.training): schedule, resume, accumulation, data parallel, order."""

from __future__ import annotations

import math
import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from pvm_bench.training import LoopSettings, bucketed_batches, lr_multiplier, make_optimizer, run_steps, sample_indices
from pvm_bench.training.state import load_state, save_state

X = torch.linspace(-1, 1, 64).reshape(16, 4)
Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.25


def _model(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 1)


def _loss(model: torch.nn.Module, rows: list[int]) -> torch.Tensor:
    return ((model(X[rows]).squeeze(-1) - Y[rows]) ** 2).mean()


def _batch(step: int, micro: int, per_micro: int, offset: int = 0) -> list[int]:
    return sample_indices(16, 3, (step * 2 + micro) * per_micro + offset, per_micro)


SETTINGS = LoopSettings(steps=12, lr=0.05, weight_decay=0.01, betas=(0.9, 0.98), warmup_ratio=0.25, max_grad_norm=1.0)


def test_schedule_warmup_then_cosine() -> None:
    assert SETTINGS.warmup == 3  # ceil(0.25 * 12)
    assert [SETTINGS.lr_at(s) for s in range(3)] == pytest.approx([0.05 / 3, 0.1 / 3, 0.05])
    assert SETTINGS.lr_at(3) == pytest.approx(0.05)  # cosine starts at the peak
    assert SETTINGS.lr_at(11) == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 8 / 9)))
    assert lr_multiplier(50, 12, 3) == 0.0  # clamped past the end
    assert LoopSettings(steps=10, lr=1.0, warmup_ratio=0.0).lr_at(0) == 1.0  # no warmup


def test_resume_from_saved_state_equals_one_run(tmp_path: Path) -> None:
    """Steps 0-4, optimizer state to disk and back into a fresh optimizer, steps 5-11: the same
    weights, bit for bit, as steps 0-11 in one go; the logged lr is the schedule's."""
    whole = _model()
    logged: list[float] = []
    losses = run_steps(list(whole.parameters()), SETTINGS, lambda s, m: (_loss(whole, _batch(s, m, 4)), None),
                       on_step=lambda r: logged.append(r.lr))
    assert logged == [SETTINGS.lr_at(s) for s in range(12)]

    part = _model()
    opt = make_optimizer(list(part.parameters()), SETTINGS)
    first = run_steps(list(part.parameters()), SETTINGS, lambda s, m: (_loss(part, _batch(s, m, 4)), None),
                      optimizer=opt, stop=5)
    saved = save_state(tmp_path, opt)
    weights = {k: v.clone() for k, v in part.state_dict().items()}
    resumed = _model(seed=1)
    resumed.load_state_dict(weights)
    opt2 = make_optimizer(list(resumed.parameters()), SETTINGS)
    load_state(tmp_path, opt2, saved)
    rest = run_steps(list(resumed.parameters()), SETTINGS, lambda s, m: (_loss(resumed, _batch(s, m, 4)), None),
                     optimizer=opt2, start=5)
    assert first + rest == losses
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_grad_accumulation_averages_micro_batches() -> None:
    """Two micro-batches of 4 rows give the gradient of one batch of the same 8 rows."""
    accum, full = _model(), _model()
    two = LoopSettings(**{**SETTINGS.__dict__, "grad_accum": 2, "steps": 3})
    one = LoopSettings(**{**SETTINGS.__dict__, "steps": 3})
    la = run_steps(list(accum.parameters()), two, lambda s, m: (_loss(accum, _batch(s, 0, 8)[m * 4 : m * 4 + 4]), None))
    lf = run_steps(list(full.parameters()), one, lambda s, m: (_loss(full, _batch(s, 0, 8)), None))
    assert la == pytest.approx(lf, rel=1e-6)
    for a, b in zip(accum.parameters(), full.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _rank_main(rank: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from pvm_bench.runner.distributed import init_from_env

    dist = init_from_env()
    model = _model()
    settings = LoopSettings(**{**SETTINGS.__dict__, "steps": 3})
    losses = run_steps(list(model.parameters()), settings,
                       lambda s, m: (_loss(model, _batch(s, 0, 8)[rank * 4 : rank * 4 + 4]), None), dist=dist)
    torch.save({"losses": torch.tensor(losses), **model.state_dict()}, Path(out) / f"rank{rank}.pt")
    dist.shutdown()


@pytest.mark.skipif(sys.platform != "linux", reason="gloo process group on localhost")
def test_data_parallel_two_ranks_equal_one_process() -> None:
    """Two gloo ranks with 4 rows each reach the weights of one process with the 8 rows."""
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        # fork: the ranks inherit the loaded modules (spawn re-imports torch, ~10 s per rank on a busy machine)
        mp.start_processes(_rank_main, args=(port, out), nprocs=2, join=True, start_method="fork")
        ranks = [torch.load(Path(out) / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = _model()
    settings = LoopSettings(**{**SETTINGS.__dict__, "steps": 3})
    losses = run_steps(list(single.parameters()), settings, lambda s, m: (_loss(single, _batch(s, 0, 8)), None))
    for got in ranks:
        torch.testing.assert_close(got["losses"], torch.tensor(losses), rtol=1e-5, atol=1e-6)
        for name, value in single.state_dict().items():
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6)


def test_bucketed_batches_are_a_pure_function_of_the_seed() -> None:
    lengths = [10] * 20 + [200] * 12
    a = bucketed_batches(lengths, 9, 4, seed=7)
    assert a == bucketed_batches(lengths, 9, 4, seed=7) and a != bucketed_batches(lengths, 9, 4, seed=8)
    assert len(a) == 9 and all(len(b) == 4 for b in a)
    assert all(len({lengths[i] >= 160 for i in b}) == 1 for b in a)  # one length bucket per batch
    with pytest.raises(ValueError, match="no full batch"):
        bucketed_batches([10, 200], 1, 4, seed=0)
