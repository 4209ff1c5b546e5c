"""The sample browser in headless Chromium (DevTools protocol): no console errors, the filters and
pages work, and markup in model output stays text."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_synth import record, write_records
from cdp import Page, chromium_missing_reason

from pvm_bench.report import browser, build_report
from pvm_bench.results import ScoreDetail

pytestmark = pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or "")

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


def _wait(page: Page) -> None:
    """Until the side files the page asked for have loaded (and the page is drawn)."""
    page.js("new Promise(function (r) { (function w() { if (document.getElementById('browser')"
            ".getAttribute('data-loading') !== '1') { r(true); } else { setTimeout(w, 5); } })(); })")


COUNT = "document.getElementById('pb-count').textContent"
SHOWN = "document.querySelectorAll('#pb-list details.pb-group').length"
PAGE = "document.getElementById('pb-page').textContent"


def _set(page: Page, element_id: str, value: str | bool) -> None:
    """Change a control the way a user does (value/checked, then the event the page listens to)."""
    if isinstance(value, bool):
        page.js(f"(function(e){{ if (e.checked !== {str(value).lower()}) {{ e.click(); }} }})"
                f"(document.getElementById('{element_id}'))")
    else:
        event = "input" if element_id == "pb-q" else "change"
        page.js(f"(function(e){{ e.value = {value!r}; e.dispatchEvent(new Event('{event}')); }})"
                f"(document.getElementById('{element_id}'))")
    _wait(page)


def test_error_detector_sees_a_broken_page(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    with Page(tmp_path) as page:
        page.goto(bad.as_uri())
        assert any("undefinedFunction" in e for e in page.errors), page.errors


def test_browser_filters_pages_and_escaping(report: Path, tmp_path: Path) -> None:
    with Page(tmp_path) as page:
        page.goto(report.as_uri())
        _wait(page)
        assert page.js(COUNT) == f"{N} of {N} samples shown ({2 * N} of {2 * N} records)"
        assert page.js(SHOWN) == 25 and page.js(PAGE) == "page 1 of 6 · samples 1–25"
        # natural order: s0, s1, ..., s9, s10 (not s0, s1, s10, s100, ...)
        keys = page.js("Array.from(document.querySelectorAll('#pb-list details')).map(d => d.dataset.key)")
        assert keys[:12] == [f"t/s{i}/0" for i in range(12)]

        _set(page, "pb-disagree", True)
        assert page.js(COUNT).startswith(f"{N // 2} of {N} samples shown")
        assert page.js(
            "Array.from(document.querySelectorAll('#pb-list details')).every(d => d.dataset.disagree === '1')"
        )
        _set(page, "pb-disagree", False)

        _set(page, "pb-variant", "pvm")  # pvm alone: its score is 1.00 everywhere, 26 with a caveat
        _set(page, "pb-wrong", True)
        assert page.js(COUNT).startswith(f"0 of {N} samples shown")
        _set(page, "pb-wrong", False)
        _set(page, "pb-caveat", True)
        assert page.js(COUNT) == f"26 of {N} samples shown (26 of {2 * N} records)"
        badges = page.js(
            "Array.from(document.querySelectorAll('#pb-list .pb-badge')).map(b => b.className + '|' + b.textContent)"
        )
        assert badges and all(b == "pb-badge warn|pvm 1.00 !" for b in badges), badges[:3]
        _set(page, "pb-caveat", False)
        _set(page, "pb-variant", "")

        page.js("document.querySelector('.pb-next').click()")
        _wait(page)
        assert page.js(PAGE) == "page 2 of 6 · samples 26–50"
        _set(page, "pb-size", "100")
        assert page.js(SHOWN) == 100 and page.js(PAGE).startswith("page 1 of 2")

        _set(page, "pb-q", "base 17")
        assert page.js(COUNT).startswith(f"1 of {N} samples shown")
        page.js("document.querySelector('#pb-list details').open = true")
        page.js("new Promise(r => setTimeout(r, 50))")  # the body is built on the toggle event
        out = page.js("document.querySelector('#pb-list .pb-col .pb-output').textContent")
        assert out == f"{EVIL} base 17"  # shown verbatim, as text
        assert page.js("document.querySelectorAll('#pb-list script, #pb-list img[src=x]').length") == 0
        assert page.js("window.__pwned === undefined")
        assert page.js("document.querySelectorAll('#pb-list .pb-col').length") == 2  # variants side by side
        assert page.errors == []


def test_url_hash_opens_a_paired_sample(report: Path, tmp_path: Path) -> None:
    with Page(tmp_path) as page:
        page.goto(report.as_uri() + "#browser?disagree=1&open=t/s10/0")
        _wait(page)
        assert page.js(COUNT).startswith(f"{N // 2} of {N}")
        opened = page.js("Array.from(document.querySelectorAll('#pb-list details[open]')).map(d => d.dataset.key)")
        assert opened == ["t/s10/0"]
        heads = page.js("Array.from(document.querySelectorAll('details[open] .pb-col h4')).map(h => h.textContent)")
        assert heads == ["base 0.00", "pvm 1.00 !"]  # s10: pvm skipped the counting (filler_ok false)
        assert page.js("document.querySelectorAll('details[open] svg.pb-curve').length") == 0
        assert page.errors == []
