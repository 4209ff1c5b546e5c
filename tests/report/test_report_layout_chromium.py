"""report.html and compare.html at 800 px in headless Chromium (issue 21 items 1 and 3): no sideways
scroll, the findings on the first screen ahead of every table, the method notes folded.

``PVM_BENCH_SCREENSHOTS=DIR`` also writes the screenshots the checks looked at (report_top.png,
compare_top.png) into DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chromium import chromium_missing_reason
from typer.testing import CliRunner

from pvm_bench.cli import app
from pvm_bench.report import build_report

pytestmark = pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or "")

WIDTH = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"


def _shot(page, name: str) -> None:
    folder = os.environ.get("PVM_BENCH_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder, name)))


def test_report_and_compare_fit_800px_with_the_findings_first(make_run, tmp_path, page, console_errors):
    run = make_run(tasks=("colour", "count"), n_samples=30, max_len=200)
    page_path = build_report(run)
    other = make_run("other", tasks=("colour", "count"), n_samples=12, max_len=200, seed=3)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(run), str(other), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(page_path.as_uri())
    scroll, client = page.evaluate(WIDTH)
    assert scroll <= client, f"report.html scrolls sideways at 800 px: {scroll} > {client}"
    tops = page.evaluate(
        "[document.getElementById('findings').getBoundingClientRect().top,"
        " document.querySelector('table').getBoundingClientRect().top,"
        " document.querySelectorAll('#findings li').length,"
        " document.querySelectorAll('details.method[open]').length]"
    )
    assert tops[0] < 200 < tops[1] and tops[2] >= 2 and tops[3] == 0
    _shot(page, "report_top.png")
    # the sample browser: each row names its target; the sparklines have axes (0, max, first/last step)
    row = page.evaluate(
        "(function () { var d = document.querySelector('details.pb-group'); d.open = true;"
        " d.dispatchEvent(new Event('toggle'));"
        " return [d.querySelector('summary .pb-target').textContent,"
        " d.querySelectorAll('svg.pb-curve line.pb-axis').length,"
        " Array.prototype.map.call("
        " d.querySelectorAll('svg.pb-curve')[0].querySelectorAll('text.pb-tick'),"
        " function (t) { return t.textContent; })]; })()"
    )
    assert row[0] == "target: red" and row[1] >= 6  # two axes on each of >= 3 sparklines
    assert row[2][1] == "0" and row[2][2].startswith("t ") and row[2][3].startswith("t ")
    page.goto((out / "compare.html").as_uri())
    scroll, client = page.evaluate(WIDTH)
    assert scroll <= client, f"compare.html scrolls sideways at 800 px: {scroll} > {client}"
    assert page.evaluate("document.querySelectorAll('#plot-leaderboard img').length") == 1
    _shot(page, "compare_top.png")
    assert console_errors == []
