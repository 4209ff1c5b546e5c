"""Fixtures for the report tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from report_synth import write_run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """``make_run(name="run", **kwargs)`` -> a synthetic run dir under tmp_path."""

    def _make(name: str = "run", **kwargs: object) -> Path:
        return write_run(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return _make
