"""Small CLI outputs a newcomer reads first: `pvm info` numbers, `tasks`, `bench pvm --help`."""

from __future__ import annotations

from typer.testing import CliRunner

from pvm_bench.cli import app
from pvm_bench.pvm.info import format_count, format_share

runner = CliRunner()


def test_counts_and_shares_are_readable():
    assert [format_count(n) for n in (812, 206_000, 27_920_000, 8_770_000_000)] == ["812", "206.0K", "27.92M", "8.77B"]
    assert [format_share(s) for s in (0.0032, 0.25, 23.87)] == ["0.32%", "25.0%", "23.9x the size"]


def test_pvm_info_on_a_tiny_model_reads_right(tiny_qwen3_vl):
    result = runner.invoke(app, ["pvm", "info", "--model", str(tiny_qwen3_vl)])
    assert result.exit_code == 0, result.output
    assert "x the size of" in result.output and "0.00B" not in result.output and "%" not in result.output.splitlines()[-1]


def test_bench_pvm_help_states_no_internal_goal():
    result = runner.invoke(app, ["bench", "pvm", "--help"])
    assert result.exit_code == 0 and "goal" not in result.output


def test_tasks_table_has_no_empty_column_and_default_split_first():
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "task" in line and "metric" in line)
    assert "size" not in header and "splits (default first)" in header
    mathvista = next(line for line in result.output.splitlines() if line.startswith("│ mathvista "))
    assert "testmini, test" in mathvista
