"""report.html: escaping of model text, self-containment, and a headless-Chromium load check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chromium import chromium_missing_reason
from report_synth import write_run

from pvm_bench.report import build_report

EVIL = '<script>alert("pwned")</script><img src=x onerror=alert(1)> & "quotes"'


@pytest.fixture(scope="module")
def evil_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = write_run(tmp_path_factory.mktemp("html") / "evil", n_samples=5, max_len=80, status="interrupted",
                    output_text=lambda v, t, i: f"{EVIL} sample {i} ({v})")
    return build_report(run)


def test_model_text_is_escaped(evil_report: Path) -> None:
    page = evil_report.read_text()
    assert page.count("<script") == 2  # only the sample browser's data block and script
    # sample records are embedded as script-safe JSON (< > & as \\u escapes), rendered as text by the page
    assert '\\u003cscript\\u003ealert(\\"pwned\\")\\u003c/script\\u003e' in page
    assert "<img src=x" not in page and "\\u003cimg src=x onerror=alert(1)\\u003e" in page
    assert "partial-banner" in page


def test_report_is_self_contained(evil_report: Path) -> None:
    page = evil_report.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert page.count('src="data:image/png;base64,') >= 4  # one per plot in plots/


@pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or "")
def test_report_loads_in_headless_chromium(evil_report: Path, page, console_errors: list[str]) -> None:
    """Open report.html: every table is there, the sample browser's script ran (it fills the
    counter), the injected markup stayed text, and nothing logged an error (the error detector's
    control is test_report_browser_chromium.test_error_detector_sees_a_broken_page)."""
    from playwright.sync_api import expect

    page.goto(evil_report.as_uri())
    for table_id in ("run-metadata", "accuracy-table", "length-table", "decay-table", "convergence-table"):
        expect(page.locator(f"table#{table_id}")).to_have_count(1)
    expect(page.locator("#pb-count")).to_have_text(re.compile(r"^\d+ of \d+ samples shown"))
    page.get_by_label("search samples").fill("pwned")
    page.locator("#pb-list summary").first.click()
    expect(page.locator("#pb-list .pb-output").first).to_contain_text('<script>alert("pwned")</script>')
    expect(page.locator('img[src="x"]')).to_have_count(0)
    assert console_errors == []
