"""Shared fixtures: tiny models built once per session, the fixture data dir, offline mode."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

# Tests never touch the network: the hub is unreachable on CI machines anyway.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # reproducible MKL sums (see pvm_bench/__init__.py)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread per test process (set before torch loads): the suite runs on shared CPUs,
# where torch's default of one thread per visible core oversubscribes them many times over.
# Subprocesses inherit the variables; the CLI's default --threads reads OMP_NUM_THREADS.
# Export OMP_NUM_THREADS=N to choose another count.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import torch  # noqa: E402  (after the thread variables)

torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])) if os.environ["OMP_NUM_THREADS"].isdigit() else 1)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_DATA = FIXTURES / "data"


@pytest.fixture(scope="session")
def fixture_data() -> Path:
    return FIXTURE_DATA


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every process of this pytest session sees: under pytest-xdist the session's common
    temp folder (the parent of each worker's own), else this process's temp folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_model(family, seed=0, size="tiny", init_std=None, name="m")``: the directory ``name`` of
    :func:`pvm_bench.testing.build_tiny_model`'s model, built once per test session for all xdist
    workers (pytest-xdist's documented recipe: the workers' common temp folder and a file lock).
    The same arguments give byte-identical weights, so fixtures of several test folders that
    asked for the same model share one build. Tests only read it (copy it first to change it)."""
    from filelock import FileLock

    root = _shared_root(tmp_path_factory) / "shared-tiny-models"
    root.mkdir(parents=True, exist_ok=True)

    def build(family: str, seed: int = 0, size: str = "tiny", init_std: float | None = None, name: str = "m") -> Path:
        from pvm_bench.testing import build_tiny_model

        folder = root / f"{family}-{size}-s{seed}-std{init_std}"
        folder.mkdir(exist_ok=True)
        out = folder / name
        with FileLock(f"{out}.lock"):
            if not out.is_dir():  # built into a side folder, renamed when complete
                part = folder / f"{name}.part"
                shutil.rmtree(part, ignore_errors=True)
                build_tiny_model(family, part, seed=seed, size=size, init_std=init_std)
                part.rename(out)
        return out

    return build


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tiny_model: Callable[..., Path]) -> Path:
    """A tiny random Qwen3-VL model directory (seed 0)."""
    return tiny_model("qwen3_vl", seed=0, name="tiny-qwen3-vl")


@pytest.fixture(scope="session")
def chromium():
    """One headless Debian Chromium (Playwright) for the session's browser tests; skips, saying
    why, where Chromium or playwright is missing."""
    from chromium import chromium_missing_reason, launch

    reason = chromium_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with launch() as browser:
        yield browser


@pytest.fixture
def console_errors() -> list[str]:
    """What went wrong in the test's ``page``: exceptions, console errors, failed loads."""
    return []


@pytest.fixture
def page(chromium, console_errors: list[str]):
    """A fresh page (its own browser context) of the session's Chromium."""
    from chromium import new_page

    with new_page(chromium, console_errors) as page:
        yield page


def _file_cost(item: pytest.Item) -> float:
    """A test's rough cost for scheduling: the ``slow`` marker's ``seconds=`` (1 when not given),
    0 for a test not marked slow."""
    marker = item.get_closest_marker("slow")
    return 0.0 if marker is None else float(marker.kwargs.get("seconds", 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The costliest files first, each file's tests in their own order.

    pytest-xdist's ``--dist loadfile`` hands out whole files in collection order (pyproject's
    ``--no-loadscope-reorder``; its default order, most tests first, put the two-test file that runs
    the default job, the longest file, near the end, where one worker ran it alone for a minute
    while the other idled). Files with slow tests go first, the costliest (``slow(seconds=N)``)
    ahead, so the suite's tail is made of short files that the two workers share out evenly."""
    cost: dict[str, float] = {}
    for item in items:
        cost[item.nodeid.split("::")[0]] = max(cost.get(item.nodeid.split("::")[0], 0.0), _file_cost(item))
    items.sort(key=lambda item: -cost[item.nodeid.split("::")[0]])
