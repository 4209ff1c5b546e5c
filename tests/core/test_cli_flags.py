"""Flag names in messages come from one table (:data:`pvm_bench.config.FLAG_NAMES`) and are the run command's."""

from __future__ import annotations

import click
import typer
from typer.testing import CliRunner

from pvm_bench.cli import app
from pvm_bench.config import RunConfig, flag_name

runner = CliRunner()


def _run_options() -> set[str]:
    command = typer.main.get_command(app)
    run = command.get_command(click.Context(command), "run")
    return {opt for param in run.params for opt in (*param.opts, *param.secondary_opts)}


def test_every_config_field_names_a_run_option():
    options = _run_options()
    assert {field: flag_name(field) for field in RunConfig.model_fields if flag_name(field) not in options} == {}
    assert (flag_name("include_paths"), flag_name("override_tasks")) == ("--include-path", "--override-task")


def test_resume_conflict_names_the_include_path_flag(tiny_qwen3_vl, fixture_data, tmp_path):
    """The conflict line spells the flag as the user types it (it said ``--include-paths``)."""
    base = ["run", "--quiet", "--probes", "", "--no-report", "--model", str(tiny_qwen3_vl), "--tasks", "mmmu",
            "--data-dir", str(fixture_data), "--out", str(tmp_path), "--run-id", "r", "--limit", "1",
            "--max-new-tokens", "2"]
    first = runner.invoke(app, base)
    assert first.exit_code == 0, first.output
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    result = runner.invoke(app, [*base, "--resume", str(tmp_path / "r"), "--include-path", str(plugins)])
    assert result.exit_code == 2, result.output
    assert f"--include-path {plugins} (the run has none)" in result.output
    assert "--include-paths" not in result.output
