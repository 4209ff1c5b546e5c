"""Small CLI outputs a newcomer reads first: `pvm info` numbers, `tasks`, `bench pvm --help`."""

from __future__ import annotations

from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.pvm.info import format_count, format_share

runner = CliRunner()


def test_counts_and_shares_are_readable():
    assert [format_count(n) for n in (812, 206_000, 27_920_000, 8_770_000_000)] == ["812", "206.0K", "27.92M", "8.77B"]
    assert [format_share(s) for s in (0.0032, 0.25, 23.87)] == ["0.32%", "25.0%", "23.9x the size"]


def test_pvm_info_on_a_tiny_model_reads_right(tiny_qwen3_vl):
    result = runner.invoke(app, ["pvm", "info", "--model", str(tiny_qwen3_vl)])
    assert result.exit_code == 0, result.output
    assert (
        "x the size of" in result.output and "0.00B" not in result.output and "%" not in result.output.splitlines()[-1]
    )


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


def test_every_task_has_its_own_description():
    """No two tasks share a description (two_swatch_recall used to say it reads one swatch)."""
    from pvm_bench.tasks import get_registry

    names = ["colour_recall", "colour_recall_given", "swatch_recall", "swatch_recall_given", "two_swatch_recall"]
    descriptions = {task.name: task.description for task in get_registry().resolve(names)}
    assert len(set(descriptions.values())) == len(names), descriptions
    assert "two colour swatches" in descriptions["two_swatch_recall"]


def test_per_image_help_names_the_columns_it_writes():
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert "visual_mass_img0" in result.output and "image_index" not in result.output
