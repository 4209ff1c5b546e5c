"""Honest failures (issue 22 item 4): a report that cannot compute a section exits non-zero and
writes nothing, or with --allow-partial says so at the top of report.html and summary.md; running
out of memory is never reported as an unreadable file, a damaged file still is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from pvm_bench.report.attention_engine import MEMORY_ENV, ReportIncompleteError, ReportMemoryError
from pvm_bench.report.rundata import load_run

runner = CliRunner()


def _torn(run: Path) -> None:
    (run / "attention.parquet").write_bytes(b"PAR1 torn write")


def _damaged_pages(run: Path) -> None:
    """A valid footer over overwritten data pages: only reading the rows finds the damage."""
    path = run / "attention.parquet"
    raw = bytearray(path.read_bytes())
    raw[8: len(raw) // 2] = b"\xff" * (len(raw) // 2 - 8)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", [_torn, _damaged_pages])
def test_damaged_attention_fails_the_report_unless_allowed(
    app: typer.Typer, make_run: Callable[..., Path], damage: Callable[[Path], None],
) -> None:
    run = make_run(n_samples=4, max_len=40, tasks=("colour",))
    damage(run)
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 2, res.output
    assert "attention.parquet unreadable" in res.output and "--allow-partial" in res.output
    assert not (run / "report.html").exists() and not (run / "summary.md").exists()
    res = runner.invoke(app, ["report", str(run), "--allow-partial"])
    assert res.exit_code == 0, res.output
    html, md = (run / "report.html").read_text(), (run / "summary.md").read_text()
    assert 'id="incomplete-banner"' in html and "attention.parquet unreadable" in html
    assert md.splitlines()[2].startswith("> **INCOMPLETE REPORT**") and "attention.parquet unreadable" in md
    # compare / baseline read the run the same way: no silent numbers without the decay rows
    res = runner.invoke(app, ["baseline", str(run), "-o", str(run.parent / "b.json")])
    assert res.exit_code == 2 and "attention.parquet unreadable" in res.output


def test_out_of_memory_is_not_an_unreadable_file(
    app: typer.Typer, make_run: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = make_run(n_samples=4, max_len=40, tasks=("colour",))
    monkeypatch.setenv(MEMORY_ENV, "1MB")  # DuckDB's own OutOfMemoryException, for real
    with pytest.raises(ReportMemoryError, match="out of memory"):
        load_run(run)
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 2 and "out of memory" in res.output and "unreadable" not in res.output
    assert f"{MEMORY_ENV}=" in res.output and not (run / "report.html").exists()
    res = runner.invoke(app, ["report", str(run), "--allow-partial"])
    assert res.exit_code == 0, res.output
    html, md = (run / "report.html").read_text(), (run / "summary.md").read_text()
    assert 'id="incomplete-banner"' in html and "out of memory" in html and "unreadable" not in html
    assert "INCOMPLETE REPORT" in md and "no decay section: out of memory" in md and "unreadable" not in md
    monkeypatch.delenv(MEMORY_ENV)
    data = load_run(run)  # the same run with the default limit is complete
    assert not data.failures and data.agg is not None and len(data.agg.gens) == 8


def test_arrow_memory_error_in_the_row_reader_is_raised(
    make_run: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The full-rows reader (RunData.attention) used to catch ArrowException, ArrowMemoryError
    included, and call the file unreadable."""
    from pvm_bench.report import rundata

    run = make_run(n_samples=4, max_len=40, tasks=("colour",))
    data = load_run(run)

    def no_memory(path: Path, *args: object) -> pd.DataFrame:
        raise pa.ArrowMemoryError("malloc of size 1073741824 failed")

    monkeypatch.setattr(rundata, "_read_attention_file", no_memory)
    with pytest.raises(MemoryError):
        _ = data.attention


def test_incomplete_error_names_the_section_and_the_fix(make_run: Callable[..., Path]) -> None:
    run = make_run(n_samples=4, max_len=40, tasks=("colour",))
    _torn(run)
    with pytest.raises(ReportIncompleteError, match=r"attention\.parquet unreadable.*--allow-partial"):
        load_run(run)
    data = load_run(run, allow_partial=True)
    assert data.agg is None and data.failures and "attention.parquet unreadable" in data.warnings[0]
