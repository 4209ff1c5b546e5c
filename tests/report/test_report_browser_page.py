"""report.html's page skeleton (templates/report.html.j2): escaping and the run table."""

from __future__ import annotations

import re
from pathlib import Path

from browser_synth import record, write_records

from pvm_bench.report import build_report
from pvm_bench.results import RunRecord


def test_page_escapes_run_values_and_renders_mappings_as_key_value_lists(tmp_path: Path) -> None:
    run = write_records(tmp_path / "run", [record("base", "a", 1.0), record("pvm", "a", 0.0)],
                        config={"tasks": ["t"], "note": "</pre><script>alert(1)</script>"})
    rec = RunRecord.load(run)
    rec.model = {"name": "<b>tiny</b>", "params": 1234, "extra": {"k": "v"}}
    rec.git = {"commit": "abc1234", "dirty": False}
    rec.save(run)
    page = build_report(run).read_text(encoding="utf-8")
    table = re.search(r'<table class="meta" id="run-metadata">(.*?)</tbody></table>\s*<details>', page, re.S).group(1)
    assert '<td>model</td><td><span class="kv0">' in table
    assert '<span class="kv-item"><span class="k">name</span> &lt;b&gt;tiny&lt;/b&gt;</span>' in table
    assert '<span class="k">params</span> 1234</span>' in table and '<span class="k">dirty</span> False</span>' in table
    assert (
        '<span class="k">extra</span> <span class="kv1"><span class="kv-item"><span class="k">k</span>: '
        "v</span></span>" in table
    )
    assert '{"commit"' not in table  # no raw JSON rows
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the full config, escaped
    assert page.count("<script") == 2  # the sample browser's data block and script only
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
