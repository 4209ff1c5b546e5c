"""Fixtures for the report tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from report_synth import write_run

from pvm_bench.report.commands import register


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """``make_run(name="run", **kwargs)`` -> a synthetic run dir under tmp_path."""

    def _make(name: str = "run", **kwargs: object) -> Path:
        return write_run(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return _make


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """A typer app with only the report commands (report, baseline, check, compare) registered."""
    app = typer.Typer()
    register(app)
    return app
