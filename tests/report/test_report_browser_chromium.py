"""The sample browser of report.html in headless Chromium (Playwright), step by step as a reader
uses it: the filters and pages work, a clicked sample shows its outputs side by side, markup in
model output stays text, nothing logs an error, and a big run's page draws its first samples fast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_synth import record, write_records
from chromium import chromium_missing_reason

from pvm_bench.report import browser, build_report
from pvm_bench.results import ScoreDetail

pytestmark = pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or "")
if chromium_missing_reason() is None:
    from playwright.sync_api import Page, expect

EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"></pre></script>'
N = 130  # samples; 2 variants each -> 260 records, 6 pages of 25


def _records() -> list:
    recs = []
    for i in range(N):
        base = float(i % 2)  # pvm is right everywhere: base disagrees on the even ids
        recs.append(record("base", f"s{i}", base, output=f"{EVIL} base {i}",
                           score_detail=ScoreDetail(extractor="answer_marker")))
        flags = {"filler_ok": i % 5 != 0}  # every 5th pvm output skipped the counting
        recs.append(record("pvm", f"s{i}", 1.0, output=f"pvm answer {i}",
                           score_detail=ScoreDetail(extractor="answer_marker", flags=flags)))
    return recs


@pytest.fixture(scope="module", params=["embedded", "side-files"])
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same records embedded in report.html, and in side files of 50 samples (3 files) loaded on demand."""
    run = write_records(tmp_path_factory.mktemp("browser") / "run", _records())
    if request.param == "embedded":
        return build_report(run)
    size = browser.CHUNK_GROUPS
    browser.CHUNK_GROUPS = 50
    try:
        html = build_report(run, single_file=False)
    finally:
        browser.CHUNK_GROUPS = size
    assert sorted(p.name for p in (run / browser.SIDE_DIR).iterdir()) == [f"chunk-0000{k}.js" for k in range(3)]
    assert "pvm answer 129" not in html.read_text()  # the records are in the side files, the index in the page
    return html


def _shown(n: int, records: int | None = None) -> re.Pattern[str]:
    """The sample counter's text for ``n`` matching samples (and ``records`` records, when given)."""
    tail = rf" \({records} of {2 * N} records\)$" if records is not None else " "
    return re.compile(rf"^{n} of {N} samples shown{tail}")


def test_error_detector_sees_a_broken_page(page: Page, console_errors: list[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><img src='missing.png'><script>undefinedFunction();</script>"
                   "</body></html>")
    page.goto(bad.as_uri())
    assert any("undefinedFunction" in e for e in console_errors), console_errors
    assert any(e.startswith("load failed:") and "missing.png" in e for e in console_errors), console_errors


def test_browser_filters_pages_and_escaping(report: Path, page: Page, console_errors: list[str]) -> None:
    page.goto(report.as_uri())
    count, samples = page.locator("#pb-count"), page.locator("#pb-list details.pb-group")
    expect(count).to_have_text(_shown(N, 2 * N))
    expect(samples).to_have_count(25)
    expect(page.locator("#pb-page")).to_have_text("page 1 of 6 · samples 1–25")
    # natural order: s0, s1, ..., s9, s10 (not s0, s1, s10, s100, ...)
    keys = samples.evaluate_all("ds => ds.map(d => d.dataset.key)")
    assert keys[:12] == [f"t/s{i}/0" for i in range(12)]

    page.get_by_label("variants disagree").check()
    expect(count).to_have_text(_shown(N // 2))
    assert set(samples.evaluate_all("ds => ds.map(d => d.dataset.disagree)")) == {"1"}
    page.get_by_label("variants disagree").uncheck()

    page.get_by_label("variant", exact=True).select_option("pvm")  # pvm alone: 1.00 everywhere, 26 with a caveat
    page.get_by_label("score < 1").check()
    expect(count).to_have_text(_shown(0))
    expect(page.locator("#pb-list")).to_have_text("No sample matches these filters.")
    page.get_by_label("score < 1").uncheck()
    page.get_by_label("with caveats").check()
    expect(count).to_have_text(_shown(26, 26))
    badges = page.locator("#pb-list .pb-badge")
    expect(badges).to_have_count(25)
    expect(badges).to_have_text(["pvm 1.00 !"] * 25)
    assert set(badges.evaluate_all("bs => bs.map(b => b.className)")) == {"pb-badge warn"}
    page.get_by_label("with caveats").uncheck()
    page.get_by_label("variant", exact=True).select_option("")

    page.get_by_role("button", name="next page").first.click()
    expect(page.locator("#pb-page")).to_have_text("page 2 of 6 · samples 26–50")
    page.get_by_label("samples per page").select_option("100")
    expect(samples).to_have_count(100)
    expect(page.locator("#pb-page")).to_have_text(re.compile("^page 1 of 2"))

    page.get_by_label("search samples").fill("base 17")
    expect(count).to_have_text(_shown(1))
    samples.first.locator("summary").click()  # open the sample: its variants side by side
    columns = samples.first.locator(".pb-col")
    expect(columns).to_have_count(2)
    expect(columns.first.locator(".pb-output")).to_have_text(f"{EVIL} base 17")  # verbatim, as text
    expect(columns.nth(1).locator(".pb-output")).to_have_text("pvm answer 17")
    expect(page.locator("#pb-list script, #pb-list img[src=x]")).to_have_count(0)
    assert page.evaluate("window.__pwned === undefined")
    assert console_errors == []


def test_url_hash_opens_a_paired_sample(report: Path, page: Page, console_errors: list[str]) -> None:
    page.goto(report.as_uri() + "#browser?disagree=1&open=t/s10/0")
    expect(page.locator("#pb-count")).to_have_text(_shown(N // 2))
    opened = page.locator("#pb-list details[open]")
    expect(opened).to_have_count(1)
    assert opened.get_attribute("data-key") == "t/s10/0"
    expect(opened.locator(".pb-col h4")).to_have_text(["base 0.00", "pvm 1.00 !"])  # s10: pvm skipped the counting
    expect(opened.locator("svg.pb-curve")).to_have_count(0)
    assert console_errors == []


#: Samples of the big run (2 variants each): more records than report.html embeds, so the page
#: holds an index and loads side files of CHUNK_GROUPS samples as pages need them.
BIG = 2500
#: Navigation start to the first page of samples drawn, in Chromium on a busy 2-core CI machine
#: (a few hundred ms when quiet): the page must not parse or draw every record before the first 25.
FIRST_RENDER_BUDGET_MS = 5000


def test_big_run_draws_its_first_page_quickly(page: Page, console_errors: list[str], tmp_path: Path) -> None:
    assert 2 * BIG > browser.EMBED_MAX_RECORDS
    recs = [record(v, f"s{i}", float((i + (v == "pvm")) % 2), output=f"{v} says {i}")
            for i in range(BIG) for v in ("base", "pvm")]
    html = build_report(write_records(tmp_path / "big", recs), single_file=False)
    page.goto(html.as_uri())
    page.wait_for_function("document.getElementById('pb-count').textContent.indexOf('samples shown') >= 0",
                           polling="raf")
    first_render_ms = page.evaluate("performance.now()")
    print(f"big run ({2 * BIG} records): first page drawn {first_render_ms:.0f} ms after navigation")
    assert first_render_ms < FIRST_RENDER_BUDGET_MS
    expect(page.locator("#pb-count")).to_have_text(f"{BIG} of {BIG} samples shown ({2 * BIG} of {2 * BIG} records)")
    expect(page.locator("#pb-list details.pb-group")).to_have_count(25)

    page.get_by_label("samples per page").select_option("250")  # the last page: the last side file
    page.get_by_role("button", name="next page").first.click()
    for _ in range(BIG // 250 - 2):
        page.get_by_role("button", name="next page").first.click()
    expect(page.locator("#pb-page")).to_have_text(f"page {BIG // 250} of {BIG // 250} · samples {BIG - 249}–{BIG}")
    last = page.locator("#pb-list details.pb-group").last
    last.locator("summary").click()
    expect(last.locator(".pb-output")).to_have_text([f"base says {BIG - 1}", f"pvm says {BIG - 1}"])
    assert console_errors == []
