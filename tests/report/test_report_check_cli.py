"""report / compare / check / baseline through the CLI (typer CliRunner on our own app)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pvm_bench.report.check import check, default_tolerance, load_baseline, write_baseline
from pvm_bench.report.summary import ReportInputError

runner = CliRunner()


def _set_scores(run_dir: Path, task: str, variant: str, score: float) -> None:
    path = run_dir / "samples.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        if r["task"] == task and r["variant"] == variant:
            r["score"] = score
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_check_exit_codes(app: typer.Typer, make_run: Callable[..., Path], tmp_path: Path) -> None:
    run = make_run("good", n_samples=16, max_len=100, n_layers=3)
    baseline = tmp_path / "baselines" / "tiny.json"
    res = runner.invoke(app, ["baseline", str(run), "-o", str(baseline)])
    assert res.exit_code == 0, res.output
    doc = load_baseline(baseline)
    assert doc["version"] == 2 and {m["metric"] for m in doc["metrics"]} >= {"accuracy", "macro_average", "visual_mass"}
    assert {m["stat"] for m in doc["metrics"]} == {"value", "diff_vs_base"}
    assert len(doc["samples"]) == 16 * 2 * 2 and "colour|pvm|accuracy" in doc["units"]

    # 0 on the baseline's own run
    res = runner.invoke(app, ["check", str(run), "--baseline", str(baseline)])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output

    # 1 when one task's accuracy drops by more than its tolerance
    acc = next(m for m in doc["metrics"]
               if (m["task"], m["variant"], m["metric"], m["stat"]) == ("colour", "pvm", "accuracy", "value"))
    assert acc["value"] > default_tolerance(acc)  # dropping to 0 exceeds the tolerance
    _set_scores(run, "colour", "pvm", 0.0)
    res = runner.invoke(app, ["check", str(run), "--baseline", str(baseline)])
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "worse" in res.output and "accuracy" in res.output
    # a generous explicit tolerance does not hide a significant paired drop ...
    res = runner.invoke(app, ["check", str(run), "--baseline", str(baseline), "--tolerance", "1.5"])
    assert res.exit_code == 1 and "significant paired drop" in " ".join(res.output.split()), res.output
    # ... unless the paired test is turned off
    res = runner.invoke(app, ["check", str(run), "--baseline", str(baseline), "--tolerance", "1.5", "--alpha", "0"])
    assert res.exit_code == 0, res.output

    # 2 on a missing baseline file: one error line naming it and the fix
    missing = tmp_path / "nope.json"
    res = runner.invoke(app, ["check", str(run), "--baseline", str(missing)])
    assert res.exit_code == 2
    err_lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and str(missing) in " ".join(res.output.split()) and "pvm-bench baseline" in res.output
    # 2 on a missing run directory and on a file that is not a baseline
    res = runner.invoke(app, ["check", str(tmp_path / "no-run"), "--baseline", str(baseline)])
    assert res.exit_code == 2 and "run directory not found" in res.output
    bogus = tmp_path / "bogus.json"
    bogus.write_text("{\"hello\": 1}")
    res = runner.invoke(app, ["check", str(run), "--baseline", str(bogus)])
    assert res.exit_code == 2 and "not a pvm-bench baseline" in res.output


def test_check_partial_run_and_missing_metrics(make_run: Callable[..., Path], tmp_path: Path) -> None:
    good = make_run("full", n_samples=10, max_len=100, attention=False)
    baseline = write_baseline(good, tmp_path / "b.json")
    partial = make_run("partial", n_samples=10, max_len=100, attention=False, status="interrupted",
                       tasks=("colour",))
    result = check(partial, baseline)
    assert not result.passed
    assert set(result.failures["task"]) >= {"count"}  # metrics of the missing task
    assert any("partial" in n for n in result.notes)
    with pytest.raises(ReportInputError, match="partial"):
        write_baseline(partial, tmp_path / "p.json")
    # with allow_partial the missing task still fails the check
    assert not check(partial, baseline, allow_partial=True).passed
    assert check(good, baseline).passed


def test_report_and_compare_commands(app: typer.Typer, make_run: Callable[..., Path], tmp_path: Path) -> None:
    a = make_run("run-a", n_samples=8, max_len=80, n_layers=3, tasks=("colour",))
    b = make_run("run-b", n_samples=8, max_len=80, n_layers=3, tasks=("colour",), seed=1, variants=("base",))
    res = runner.invoke(app, ["report", str(a)])
    assert res.exit_code == 0, res.output
    assert (a / "report.html").exists() and (a / "summary.csv").exists()
    out = tmp_path / "cmp" / "ab.md"
    res = runner.invoke(app, ["compare", str(a), str(b), "-o", str(out)])
    assert res.exit_code == 0, res.output
    md = out.read_text()
    assert "| A | run-a | tiny-qwen3-vl |" in md and "| B | run-b | tiny-qwen3-vl |" in md
    assert "| model |  |  | tiny-qwen3-vl | tiny-qwen3-vl |" in md and "Δ B−A" in md
    csv = (tmp_path / "cmp" / "ab.csv").read_text().splitlines()
    assert csv[0].startswith("task,variant,metric,run,run_variant,run_id,value,ci_low,ci_high,n")
    res = runner.invoke(app, ["compare", str(a)])
    assert res.exit_code == 2 and "at least two" in res.output
    res = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2


def test_check_notes_settings_that_differ_from_the_baseline(
    app: typer.Typer, make_run: Callable[..., Path], tmp_path: Path
) -> None:
    """A run with another --limit scores other samples: check says so next to its verdict."""
    baseline = write_baseline(make_run("base", n_samples=10, max_len=100, attention=False), tmp_path / "b.json")
    same = check(make_run("same", n_samples=10, max_len=100, attention=False), baseline)
    assert not any("settings differ" in n for n in same.notes)
    other = make_run("other", n_samples=12, max_len=100, attention=False)
    res = CliRunner().invoke(app, ["check", str(other), "--baseline", str(baseline)])
    assert res.exit_code in (0, 1)
    assert "settings differ" in res.output and "limit: run 12 vs baseline 10" in " ".join(res.output.split())
