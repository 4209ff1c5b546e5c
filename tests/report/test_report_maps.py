"""Spatial maps (``--maps``) in the sample browser: the payload read from the map files, and in
headless Chromium the slider that moves the heat map and the output shaded per token by visual mass."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from browser_synth import record, write_records
from chromium import chromium_missing_reason

from pvm_bench.report import build_report
from pvm_bench.report.browser_maps import attach_maps, map_payload
from pvm_bench.runner.maps import SampleMaps, map_path, write_maps

TOKENS = ["<b>", "Answer", ":", " red"]  # markup in a token must stay text


def _maps(hot: list[int], cells: int = 6) -> SampleMaps:
    """A 2 x 3 grid; step k looks at cell hot[k] (mass 0.4) and a little at every other cell."""
    att = np.full((len(hot), cells), 0.01, dtype=np.float32)
    for k, c in enumerate(hot):
        att[k, c] = 0.4
    images = [{"index": 0, "start": 0, "n_tokens": cells,
               "views": [{"start": 0, "rows": 2, "cols": 3, "label": "image", "whole": True, "note": ""}]}]
    return SampleMaps(attention=att, visual_mass=att.sum(-1), layers=[0, 1, 2, 3], images=images,
                      n_generated=len(hot), max_steps=1024)


def _run(tmp: Path) -> Path:
    recs = [record(v, f"s{i}", 1.0, output="Answer: red") for i in range(2) for v in ("base", "pvm")]
    run = write_records(tmp / "run", recs)
    write_maps(map_path(run, "pvm", "t", "s0", 0), _maps([5, 0, 2, 3]), TOKENS, variant="pvm", task="t",
               sample_id="s0", repeat=0)
    return run


def test_payload_quantises_each_step_relative_to_its_brightest_cell(tmp_path):
    run = _run(tmp_path)
    groups = [{"task": "t", "id": f"s{i}", "repeat": 0, "records": [{"variant": "base"}, {"variant": "pvm"}]}
              for i in range(2)]
    assert attach_maps(run, groups) == []
    assert [("maps" in r) for g in groups for r in g["records"]] == [False, True, False, False]
    m = groups[0]["records"][1]["maps"]
    assert m["tokens"] == TOKENS and m["steps"] == 4 and m["layers"] == [0, 1, 2, 3]
    assert m["mass"] == pytest.approx([0.45] * 4, rel=1e-3)
    (im,) = m["images"]
    q = np.frombuffer(base64.b64decode(im["q"]), dtype=np.uint8).reshape(4, 2, 3)
    assert [int(step.argmax()) for step in q] == [5, 0, 2, 3] and q.max() == 255 and q.min() == 6
    assert m["peak"] == pytest.approx([0.4] * 4, rel=1e-3)
    # Long generations: only the first SLIDER_STEPS are sent, with a note.
    tensors = {"attention": np.zeros((5, 6), np.float16), "visual_mass": np.zeros(5, np.float32)}
    meta = {"images": _maps([0]).images, "tokens": list("abcde"), "n_generated": 9, "max_steps": 5}
    short = map_payload(tensors, meta, max_steps=2)
    assert short["shown"] == 2 and "first 2 of 5" in short["note"] and "5 of 9 generated" in short["note"]


def test_images_of_a_sample_share_one_scale_per_step():
    """Two images: the second gets half the first's attention, so its brightest cell is drawn at half."""
    att = np.array([[0.4, 0.1, 0.2, 0.05]], dtype=np.float16)
    view = {"start": 0, "rows": 1, "cols": 2, "label": "image", "whole": True, "note": ""}
    meta = {"images": [{"index": i, "start": 2 * i, "n_tokens": 2, "views": [view]} for i in range(2)], "tokens": ["a"]}
    m = map_payload({"attention": att, "visual_mass": att.sum(-1).astype(np.float32)}, meta)
    q = [np.frombuffer(base64.b64decode(im["q"]), dtype=np.uint8).tolist() for im in m["images"]]
    assert q == [[255, 64], [128, 32]] and m["peak"] == pytest.approx([0.4], rel=1e-3)


def test_unreadable_map_file_is_a_note_not_a_failed_report(tmp_path):
    run = _run(tmp_path)
    map_path(run, "base", "t", "s1", 0).parent.mkdir(parents=True, exist_ok=True)
    map_path(run, "base", "t", "s1", 0).write_bytes(b"\x00junk")
    groups = [{"task": "t", "id": "s1", "repeat": 0, "records": [{"variant": "base"}]}]
    (note,) = attach_maps(run, groups)
    assert "base t/s1" in note and "maps" not in groups[0]["records"][0]


@pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or "")
def test_browser_slider_moves_the_heat_map_and_tokens_are_shaded(tmp_path, page, console_errors):
    from playwright.sync_api import expect

    html = build_report(_run(tmp_path))
    page.goto(html.resolve().as_uri() + "#browser?open=t/s0/0")
    maps = page.locator(".pm-maps")
    expect(maps).to_have_count(1)  # pvm s0 only
    expect(maps).to_have_attribute("data-variant", "pvm")
    cells = page.locator(".pm-heat rect")
    expect(cells).to_have_count(6)

    def hot() -> int:
        return cells.evaluate_all("rs => rs.map(r => Number(r.getAttribute('data-v'))).indexOf(1)")

    assert hot() == 5
    expect(page.locator(".pm-tok.pm-cur")).to_have_text("<b>")
    page.locator(".pm-slider").fill("2")  # drag the slider to step 2
    expect(maps).to_have_attribute("data-step", "2")
    assert hot() == 2
    expect(page.locator(".pm-caption")).to_contain_text("step 2 of 4")
    page.locator(".pm-tok").nth(3).click()  # clicking a token moves the slider there
    expect(page.locator(".pm-slider")).to_have_value("3")
    assert hot() == 3
    titles = page.locator(".pm-tok").evaluate_all(
        "ts => ts.map(s => s.getAttribute('title') + '|' + s.style.backgroundColor)")
    assert titles[0].startswith("step 0 · visual mass 0.45") and "rgba(255, 51, 0" in titles[0]
    expect(page.locator(".pm-tok b")).to_have_count(0)  # markup stayed text
    assert console_errors == []
