"""report.html: escaping of model text, self-containment, and a headless-Chromium load check."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_synth import write_run

from pvm_bench.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
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


def _chromium(args: list[str], tmp: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    profile = tmp / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _console_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln]


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless check needs /usr/bin/chromium (apt-get install -y chromium)"
)
def test_report_loads_in_headless_chromium(evil_report: Path, tmp_path: Path) -> None:
    # Control: the detector must see a console error on a page that has one.
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    control = _chromium(["--dump-dom", bad.as_uri()], tmp_path)
    assert any("undefinedFunction" in ln for ln in _console_lines(control.stderr)), control.stderr[-2000:]

    proc = _chromium(["--dump-dom", evil_report.as_uri()], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console_lines(proc.stderr) == [], _console_lines(proc.stderr)
    dom = proc.stdout
    for table_id in ("run-metadata", "accuracy-table", "length-table", "decay-table", "convergence-table"):
        assert f'id="{table_id}"' in dom, table_id
    # the filter script ran (it fills the counter) and the injected markup stayed text
    assert re.search(r'id="pb-count"[^>]*>\d+ of \d+ samples shown', dom), "browser script did not run"
    assert "pwned" in dom and "<img src=\"x\"" not in dom
