"""The README's default job, CI check, organism table and figures, from ONE run of the default job
(`pvm-bench run` with no arguments, ~1 min quiet): a module-scoped fixture runs it once and every
test here reads it (issue 25: CI under 5 minutes; the two tests once ran the job twice).

- the default job passes ``check`` against the committed organism baseline;
- the README's organism table and figures come from that run (issue 21 item 4): the run is
  summarised again with the fixed cohort T = 128 (the rows ``pvm-bench report RUN --cohort 128``
  writes), the table is regenerated from the two metrics.csv files
  (:func:`pvm_bench.report.readme_table.organism_table`) and must equal README.md's block.

``PVM_BENCH_REGEN_README=1 pytest tests/core/test_readme_figures.py`` rewrites the block, copies
the run's plots into docs/organism/ and screenshots the top of its report.html
(docs/organism/report_top.png, headless Debian chromium via playwright) instead of comparing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pvm_bench.cli import app
from pvm_bench.report.readme_table import current_block, organism_table, replace_block
from pvm_bench.report.rundata import load_run
from pvm_bench.report.summary import build_summary

# a run and a report: ~1 min quiet, more when loaded; the costliest file, so it is handed out first
pytestmark = [pytest.mark.slow(seconds=60), pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BASELINE = ROOT / "reports" / "baselines" / "organism.json"
#: README figures that are the default job's own report plots (docs/organism/<name>.png).
FIGURES = ("accuracy_vs_distance", "accuracy_vs_length", "decay", "decay_cohort")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The default job run once for the module: (its run dir, the CLI's output). The tests only
    read the run dir (``check`` writes nothing into it)."""
    out = tmp_path_factory.mktemp("default-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        result = CliRunner().invoke(app, ["run", "--quiet", "--out", str(out), "--run-id", "ci"])
    assert result.exit_code == 0, result.output
    return out / "ci", result.output


def test_default_run_passes_the_committed_baseline(default_run: tuple[Path, str]) -> None:
    run_dir, output = default_run
    # 100 samples x 2 variants: the closing line counts records and says so (it once said "200 samples").
    assert "200 records over 2 variant(s)" in output
    for name in ("run.json", "samples.jsonl", "summary.csv", "summary.md", "report.html"):
        assert (run_dir / name).is_file(), name
    # the attention store is a directory of parts, each with its aggregate tables
    parts = sorted(p.name for p in (run_dir / "attention.parquet").glob("part-*.parquet"))
    assert parts and parts == sorted(p.name for p in (run_dir / "attention-agg" / "steps").glob("part-*.parquet"))
    assert {p.name for p in (run_dir / "plots").glob("*.png")} >= {"decay.png", "heatmap.png"}
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["variants"] == ["base", "pvm"]
    assert "branch" in record["config"]["probes"]

    check = CliRunner().invoke(app, ["check", str(run_dir), "--baseline", str(BASELINE)])
    assert check.exit_code == 0, check.output


def test_readme_organism_table_is_the_default_jobs_metrics(default_run: tuple[Path, str]) -> None:
    run, _ = default_run
    rows = pd.read_csv(run / "metrics.csv")
    # the rows `pvm-bench report RUN --cohort 128` writes to metrics.csv, without its plots and page
    cohort128 = build_summary(load_run(run), cohort_t=128).rows
    block = organism_table(rows, [cohort128])
    text = README.read_text(encoding="utf-8")
    if os.environ.get("PVM_BENCH_REGEN_README") == "1":
        README.write_text(replace_block(text, block), encoding="utf-8")
        for name in FIGURES:
            shutil.copyfile(run / "plots" / f"{name}.png", ROOT / "docs" / "organism" / f"{name}.png")
        _screenshot(run / "report.html", ROOT / "docs" / "organism" / "report_top.png")
        return
    assert current_block(text) == block, "README's organism table differs from the run: PVM_BENCH_REGEN_README=1"
    for name in FIGURES:  # every figure the README shows from this job is one the report writes
        assert (run / "plots" / f"{name}.png").is_file() and f"docs/organism/{name}.png" in text
    assert "docs/organism/report_top.png" in text and (ROOT / "docs" / "organism" / "report_top.png").is_file()


def _screenshot(page: Path, out: Path) -> None:
    """The first 1000 x 900 px of ``page`` (headless Debian chromium through playwright); skipped,
    saying why, without chromium or playwright."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("README screenshot needs playwright (pip install playwright)")
    if not chromium.exists():
        pytest.skip("README screenshot needs /usr/bin/chromium (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1000, "height": 900})
        tab.goto(page.as_uri())
        tab.screenshot(path=str(out))
        browser.close()
