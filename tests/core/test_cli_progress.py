"""Progress display of `pvm-bench run` and its closing headline table."""

from __future__ import annotations

import io
import time

from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.cli.progress import LineProgress, ProgressState, format_duration, headline_rows

runner = CliRunner()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_state_rate_and_eta_count_only_this_process():
    clock = Clock()
    state = ProgressState(clock)
    state.update(40, 200)  # 40 done by an earlier (resumed) process
    clock.now += 10
    state.update(60, 200, "pvm", "swatch_recall")
    assert state.rate == 2.0  # 20 samples in 10 s
    assert state.line() == "progress: pvm swatch_recall 60/200 (30%), 2.00 samples/s, ETA 1m10s"


def test_format_duration():
    assert [format_duration(s) for s in (5, 65, 3725, float("nan"))] == ["5s", "1m05s", "1h02m", "?"]


def test_line_progress_prints_on_change_and_on_a_timer_without_callbacks():
    stream = io.StringIO()
    with LineProgress(stream, interval=0.05) as progress:
        progress(0, 4)
        progress(0, 4, "base", "mmmu")  # change of variant/task: a line now
        time.sleep(0.3)  # a slow batch: the timer keeps the log alive
        progress(4, 4, "base", "mmmu")  # done: a line now
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("progress: base mmmu 0/4 (0%)")
    assert len(lines) >= 4  # change + >= 2 timer lines + done
    assert lines[-1].startswith("progress: base mmmu 4/4 (100%)")


def test_headline_rows_from_metric_rows(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "task,variant,metric,band,t,value,ci_low,ci_high,n,headline,kind,diff,diff_ci_low,diff_ci_high,p_value\n"
        "mmmu,base,accuracy,,,0.5,0.3,0.7,20,True,task,,,,\n"
        "mmmu,pvm,accuracy,,,0.6,0.4,0.8,20,True,task,0.1,-0.05,0.25,0.2\n"
        "mmmu,pvm,accuracy,0-31,,0.9,0.4,1.0,5,True,length,,,,\n"
        "mmmu,pvm,truncated_rate,,,0.0,,,20,False,task,,,,\n"
    )
    rows = headline_rows(tmp_path)
    assert [(r["task"], r["variant"]) for r in rows] == [("mmmu", "base"), ("mmmu", "pvm")]
    assert rows[1]["value [95% CI]"] == "0.600 [0.400, 0.800]"
    assert rows[1]["delta vs base"] == "+0.100 [-0.050, +0.250] p=0.2"


def test_headline_rows_compare_an_ablated_variant_with_its_own(tmp_path):
    # issue 21: pvm+blind:after=0 is compared with pvm (its dependence row), not with base
    (tmp_path / "metrics.csv").write_text(
        "task,variant,metric,band,t,value,ci_low,ci_high,n,headline,kind,diff,diff_ci_low,diff_ci_high,p_value\n"
        "a,base,accuracy,,,0.3,0.1,0.6,10,True,task,,,,\n"
        "a,pvm,accuracy,,,0.7,0.4,0.9,10,True,task,0.4,0.01,0.64,0.125\n"
        "a,pvm+blind:after=0,accuracy,,,0.0,0.0,0.28,10,True,task,-0.3,-0.6,0.04,0.25\n"
        "a,pvm,accuracy,pvm+blind:after=0,0,0.0,0.0,0.28,10,False,dependence,-0.7,-0.89,-0.29,0.0156\n"
    )
    rows = headline_rows(tmp_path)
    assert [r["variant"] for r in rows] == ["base", "pvm", "pvm+blind:after=0"]
    assert rows[2]["delta vs base"] == "-0.700 [-0.890, -0.290] p=0.0156 (vs pvm)"


def test_headline_rows_from_summary_csv_and_none_without_report(tmp_path):
    assert headline_rows(tmp_path) == []
    (tmp_path / "summary.csv").write_text(
        "task,variant,n_samples,accuracy,acc_ci_low,acc_ci_high,diff_vs_base,diff_ci_low,diff_ci_high,p_value\n"
        "a,base,10,1.0,0.72,1.0,,,,\n"
    )
    assert headline_rows(tmp_path)[0]["value [95% CI]"] == "1.000 [0.720, 1.000]"


def test_run_off_terminal_prints_progress_lines_headline_and_paths(tiny_qwen3_vl, fixture_data, tmp_path):
    result = runner.invoke(
        app,
        [
            "run",
            "--model",
            str(tiny_qwen3_vl),
            "--tasks",
            "mmmu",
            "--data-dir",
            str(fixture_data),
            "--out",
            str(tmp_path),
            "--run-id",
            "p",
            "--limit",
            "3",
            "--max-new-tokens",
            "4",
            "--batch-size",
            "2",
            "--probes",
            "",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "progress: base mmmu 0/3" in out and "progress: base mmmu 3/3 (100%)" in out
    assert "headline metric per task and variant" in out and "mmmu" in out
    assert f"summary: {tmp_path / 'p' / 'summary.md'}" in out
    assert f"report: {tmp_path / 'p' / 'report.html'}" in out


def test_terminal_bar_is_labelled_with_variant_and_task():
    from rich.console import Console

    from pvm_bench.cli.progress import BarProgress

    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120)
    with BarProgress(console, "r1") as bar:
        bar(0, 4)
        bar(2, 4, "pvm", "mmmu")
        assert bar.bar.tasks[0].description == "r1: pvm mmmu" and bar.bar.tasks[0].completed == 2
    assert "r1: pvm mmmu" in stream.getvalue()
