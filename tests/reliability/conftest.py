"""Fixtures for the reliability table: tiny models, adapters, data copies and a CLI runner.

Everything a case touches lives under the test's tmp dir (copies), so cases can corrupt freely.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvm_bench.cli.main import app

RUN_ARGS = ["--quiet", "--probes", "", "--no-report", "--max-new-tokens", "4", "--limit", "3"]


@pytest.fixture(scope="session")
def tiny_other(tiny_model) -> Path:
    """The tiny Qwen3-VL with other random weights (seed 1): same shapes, another fingerprint."""
    return tiny_model("qwen3_vl", seed=1, name="tiny-other")


def _adapter(model: Path, out: Path, seed: int) -> Path:
    from pvm_bench.models.loading import load_model
    from pvm_bench.pvm import attach_pvm, save_adapter

    lm = load_model(str(model), device="cpu", dtype="float32")
    attach_pvm(lm, hidden_size=32, seed=seed, gate=0.5)
    return save_adapter(lm, out)


@pytest.fixture(scope="session")
def adapters(tiny_qwen3_vl: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two adapters (seeds 0 and 1) for the tiny model."""
    root = tmp_path_factory.mktemp("adapters")
    return _adapter(tiny_qwen3_vl, root / "a0", 0), _adapter(tiny_qwen3_vl, root / "a1", 1)


@dataclass
class Env:
    """One case's sandbox: copies of a model, an adapter and the fixture data under ``root``."""

    root: Path
    model: Path
    other_model: Path
    adapter: Path
    other_adapter: Path
    data: Path
    cleanups: list = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.root / "out"

    def cli(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [str(a) for a in args])
        return result.exit_code, result.output

    def run_args(
        self, run_id: str = "r", *extra: str, model: Path | None = None, data: Path | None = None
    ) -> list[str]:
        return ["run", "--model", str(model or self.model), "--tasks", "mmstar", "--data-dir", str(data or self.data),
                "--out", str(self.out), "--run-id", run_id, *RUN_ARGS, *extra]

    def make_run(self, run_id: str = "r", *extra: str, drop_last: bool = True) -> Path:
        """A run of 3 samples; with ``drop_last`` its last line is removed as if it was killed."""
        code, output = self.cli(*self.run_args(run_id, *extra))
        assert code == 0, output
        run_dir = self.out / run_id
        if drop_last:
            path = run_dir / "samples.jsonl"
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(lines[:-1]))
        return run_dir


@pytest.fixture()
def env(tmp_path: Path, tiny_qwen3_vl: Path, tiny_other: Path, adapters: tuple[Path, Path], fixture_data: Path):
    model = tmp_path / "model"
    shutil.copytree(tiny_qwen3_vl, model)
    adapter = tmp_path / "adapter"
    shutil.copytree(adapters[0], adapter)
    data = tmp_path / "data"
    shutil.copytree(fixture_data / "mmstar", data / "mmstar")
    e = Env(tmp_path, model, tiny_other, adapter, adapters[1], data)
    yield e
    for fn in e.cleanups:
        fn()
