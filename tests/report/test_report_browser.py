"""The sample browser's data building (pvm_bench/report/browser.py, browser_media.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser_synth import record, write_records
from typer.testing import CliRunner

from pvm_bench.report import browser_media
from pvm_bench.report.attention_agg import AttentionAggregates
from pvm_bench.report.attention_load import load_attention
from pvm_bench.report.browser import build_browser_data, natural_key, render_browser, script_json
from pvm_bench.report.browser_media import visual_mass_curves
from pvm_bench.report.summary import load_run
from pvm_bench.results import ScoreDetail
from pvm_bench.runner.media import write_thumbnails
from pvm_bench.tasks import get_registry


def _payload_from_page(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="pb-data">(.*?)</script>', page, re.S)
    assert m, "no embedded browser data"
    return json.loads(m.group(1))


def test_natural_key_orders_digit_runs_by_value() -> None:
    ids = ["q10", "q2", "item-1-b", "q1", "item-1-a", "Q3", "item-10", "item-9", "007", "7"]
    assert sorted(ids, key=natural_key) == ["007", "7", "item-1-a", "item-1-b", "item-9", "item-10",
                                            "q1", "q2", "Q3", "q10"]


def test_script_json_cannot_close_the_script_element() -> None:
    evil = {"o": "</script><script>alert(1)</script><!-- & \u2028", "nan": float("nan"), "t": (1, 2)}
    text = str(script_json(evil))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"o": evil["o"], "nan": None, "t": [1, 2]}


def test_groups_pair_variants_in_natural_order_and_flag_disagreement(tmp_path: Path) -> None:
    recs = []
    for i in (10, 2, 1):  # written out of order, ids that sort wrong as plain strings
        recs += [record("pvm", f"s{i}", 1.0), record("base", f"s{i}", 1.0 if i != 2 else 0.0)]
    recs.append(record("base", "s1", 0.0, repeat=1))  # a second repeat of s1: its own group, one variant
    data = load_run(write_records(tmp_path / "run", recs))
    payload = build_browser_data(data, thumbnails=False)
    keys = [(g["id"], g["repeat"]) for g in payload["groups"]]
    assert keys == [("s1", 0), ("s1", 1), ("s2", 0), ("s10", 0)]
    assert [g["disagree"] for g in payload["groups"]] == [False, False, True, False]
    assert [[r["variant"] for r in g["records"]] for g in payload["groups"]] == [
        ["base", "pvm"], ["base"], ["base", "pvm"], ["base", "pvm"]]
    assert payload["n_records"] == 7 and payload["variants"] == ["base", "pvm"]
    assert payload["groups"][0]["prompt"] == "prompt" and "prompt" not in payload["groups"][0]["records"][0]


def test_full_score_with_failed_flag_or_unparsed_answer_has_caveats(tmp_path: Path) -> None:
    recs = [
        record("base", "a", 1.0, score_detail=ScoreDetail(extractor="answer_marker", flags={"filler_ok": True})),
        record("pvm", "a", 1.0, score_detail=ScoreDetail(extractor="answer_marker", flags={"filler_ok": False})),
        record("base", "b", 0.0, score_detail=ScoreDetail(extractor="none")),
        record("pvm", "b", 1.0, truncated=True, score_detail=ScoreDetail(flags={"guessed": True})),
    ]
    payload = build_browser_data(load_run(write_records(tmp_path / "run", recs)), thumbnails=False)
    by = {(g["id"], r["variant"]): r for g in payload["groups"] for r in g["records"]}
    assert by[("a", "base")]["caveats"] == [] and by[("a", "base")]["flags"] == {"filler_ok": True}
    assert by[("a", "pvm")]["caveats"] == ["filler_ok=false"]
    assert by[("a", "pvm")]["details"] == {"extractor": "answer_marker"}
    assert by[("b", "base")]["caveats"] == ["unparsed"]
    assert by[("b", "pvm")]["caveats"] == ["truncated", "guessed=true"]


def test_old_records_read_details_from_metadata(tmp_path: Path) -> None:
    old = record("base", "a", 1.0, metadata={"distance": 12, "score": {"extractor": "none", "filler_ok": False}})
    payload = build_browser_data(load_run(write_records(tmp_path / "run", [old])), thumbnails=False)
    group = payload["groups"][0]
    assert group["records"][0]["caveats"] == ["unparsed", "filler_ok=false"]
    assert group["meta"] == '{"distance": 12}'  # sample metadata without the scorer's details


def test_curve_is_the_layer_mean_binned_to_at_most_64_points(tmp_path: Path) -> None:
    steps = np.arange(200)
    rows = [pd.DataFrame({"variant": "base", "task": "t", "sample_id": "a", "repeat": 0, "step": steps,
                          "layer": layer, "visual_mass": (steps + 10.0 * layer).astype("float32")})
            for layer in (0, 1)]
    short = pd.DataFrame({"variant": "pvm", "task": "t", "sample_id": "a", "repeat": 0, "step": [0, 1, 2],
                          "layer": 0, "visual_mass": np.array([0.5, 0.25, np.nan], dtype="float32")})
    run = tmp_path / "run"
    run.mkdir()
    pd.concat([*rows, short], ignore_index=True).to_parquet(run / "attention.parquet")
    curves = visual_mass_curves(load_attention(run, pd.DataFrame(), [], []), points=64)  # the report's aggregates
    long = curves[("base", "t", "a", 0)]
    assert len(long["t"]) == 64 and len(long["m"]) == 64
    # 200 steps into 64 bins (bin = step * 64 // 200): bin 0 holds steps 0..3, bin 63 steps 197..199;
    # the layer mean at step s is s + 5
    assert long["t"][0] == 1.5 and long["m"][0] == 6.5
    assert long["t"][-1] == 198.0 and long["m"][-1] == 203.0
    assert curves[("pvm", "t", "a", 0)] == {"t": [0.0, 1.0], "m": [0.5, 0.25]}  # NaN row dropped, no binning
    assert visual_mass_curves(None) == {}


@pytest.mark.parametrize("chunk_rows", [browser_media.CHUNK_ROWS, 100])
def test_curves_from_the_aggregates_equal_a_groupby_of_their_steps(chunk_rows: int, monkeypatch) -> None:
    """The browser reads the aggregates' per-step layer means (``m_all``), keyed by generation, whole
    generations at a time (chunks of 100 rows cut inside the 300-step generation: still whole)."""
    monkeypatch.setattr(browser_media, "CHUNK_ROWS", chunk_rows)
    rng = np.random.default_rng(0)
    gens = pd.DataFrame({"variant": ["base", "base", "pvm"], "task": ["t", "t", "t"], "sample_id": ["a", "b", "a"],
                         "repeat": [0, 0, 0]})
    lengths = [300, 5, 64]
    steps = pd.DataFrame({"gen": np.repeat(np.arange(3), lengths).astype(np.int32),
                          "step": np.concatenate([np.arange(n) for n in lengths]).astype(np.int32),
                          "m_all": rng.random(sum(lengths)).astype("float32")})
    steps.loc[3, "m_all"] = np.nan  # a step without a visual row
    agg = AttentionAggregates({}, {"all": [0]}, gens, steps, pd.DataFrame())
    curves = visual_mass_curves(agg, points=64)
    # reference: bins of equal width from each generation's first to last visual step, by pandas
    vis = steps.dropna(subset=["m_all"]).astype({"m_all": float})
    first, last = (vis.groupby("gen")["step"].transform(f) for f in ("min", "max"))
    span = last - first + 1
    vis["bin"] = np.where(span > 64, (vis["step"] - first) * 64 // span, vis["step"] - first)
    binned = vis.groupby(["gen", "bin"]).agg(t=("step", "mean"), m=("m_all", "mean")).reset_index()
    reference = {tuple(gens.iloc[g]): {"t": [round(float(x), 1) for x in b["t"]],
                                       "m": [float(f"{x:.4g}") for x in b["m"]]} for g, b in binned.groupby("gen")}
    assert curves == {(v, t, s, int(r)): c for (v, t, s, r), c in reference.items()}
    assert len(curves[("base", "t", "a", 0)]["t"]) == 64 and len(curves[("base", "t", "b", 0)]["t"]) == 5


def test_thumbnails_are_read_from_the_run_not_reloaded(tmp_path: Path) -> None:
    """The runner writes thumbnails.json; the report embeds them and never re-loads the task."""
    task = get_registry().resolve(["swatch_recall"])[0]
    samples = task.load("test", 2, None)
    recs = [record(v, s.id, 1.0, task="swatch_recall") for s in samples for v in ("base", "pvm")]
    config = {"tasks": ["swatch_recall"], "split": "test", "limit": 2}
    run = write_records(tmp_path / "ok", recs, config=config)
    write_thumbnails(run, [(task, samples)], {"swatch_recall": task.fingerprint(samples)})
    payload = build_browser_data(load_run(run))
    images = [g["images"] for g in payload["groups"]]
    assert [len(i) for i in images] == [1, 1]
    assert all(i[0].startswith("data:image/png;base64,") for i in images)
    assert not any("Images" in n for n in payload["notes"])

    older = write_records(tmp_path / "older", recs, config=config)  # a run made before thumbnails.json
    payload = build_browser_data(load_run(older))
    assert all(g["images"] == [] for g in payload["groups"])
    assert any("no thumbnails.json" in n for n in payload["notes"])


def test_thumbnails_file_with_a_foreign_uri_is_not_embedded(tmp_path: Path) -> None:
    run = write_records(tmp_path / "evil", [record("base", "q1", 1.0, task="t")], config={"tasks": ["t"]})
    (run / "thumbnails.json").write_text(json.dumps({"format": "pvm-bench-thumbnails", "version": 1, "tasks": {
        "t": {"images": {"q1": ["javascript:alert(1)"]}}}}))
    payload = build_browser_data(load_run(run))
    assert payload["groups"][0]["images"] == []
    assert any("not a base64 PNG/JPEG data URI" in n for n in payload["notes"])


def test_thumbnails_of_hub_tasks_without_data_dir_are_omitted_with_a_note(tmp_path: Path) -> None:
    task = get_registry().resolve(["mmstar"])[0]
    run = write_records(tmp_path / "hub", [record("base", "q1", 1.0, task="mmstar")], config={"tasks": ["mmstar"]})
    write_thumbnails(run, [(task, [])], {})
    payload = build_browser_data(load_run(run))
    assert payload["groups"][0]["images"] == []
    assert any("mmstar" in n and "hub" in n for n in payload["notes"])


def test_render_escapes_names_and_embeds_every_record(tmp_path: Path) -> None:
    recs = [record("base", f'<b id="x">{i}</b>', float(i % 2), output=f"</script>{i}") for i in range(30)]
    html = str(render_browser(load_run(write_records(tmp_path / "run", recs, variants=("base",))), thumbnails=False))
    assert "<b id=" not in html and "</script>0" not in html
    assert html.count("<script") == 2
    payload = _payload_from_page(html)
    assert sum(len(g["records"]) for g in payload["groups"]) == 30


def test_report_command_embeds_more_records_than_the_old_cap(tmp_path: Path) -> None:
    from pvm_bench.cli.main import app

    recs = [record(v, f"s{i}", float((i + (v == "pvm")) % 2), task=t)
            for t in ("a", "b") for i in range(550) for v in ("base", "pvm")]
    run = write_records(tmp_path / "big", recs)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    payload = _payload_from_page((run / "report.html").read_text(encoding="utf-8"))
    assert payload["n_records"] == 2200 and len(payload["groups"]) == 1100
    assert sum(len(g["records"]) for g in payload["groups"]) == 2200
    assert all(g["disagree"] for g in payload["groups"])
    assert not math.isnan(payload["groups"][0]["records"][0]["score"])


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def test_thumbnails_of_a_hub_task_come_from_the_runs_data_dir(tmp_path: Path) -> None:
    task = get_registry().resolve(["mmmu"])[0]
    samples = task.load(None, None, FIXTURES)
    recs = [record("base", s.id, 0.0, task="mmmu") for s in samples]
    run = write_records(tmp_path / "mmmu", recs, config={"tasks": ["mmmu"], "data_dir": str(FIXTURES)})
    write_thumbnails(run, [(task, samples)], {"mmmu": task.fingerprint(samples)}, data_dir=FIXTURES)
    payload = build_browser_data(load_run(run))
    counts = {g["id"]: len(g["images"]) for g in payload["groups"]}
    assert counts == {s.id: len(s.images) for s in samples} and max(counts.values()) == 2
    assert payload["notes"] == ["No visual-mass curves: attention.parquet is missing or has no visual_mass rows."]

    corrupt = FIXTURES / "corrupt"
    bad = task.load(None, None, corrupt)
    run = write_records(tmp_path / "corrupt", [record("base", s.id, 0.0, task="mmmu") for s in bad],
                        config={"tasks": ["mmmu"], "data_dir": str(corrupt)})
    write_thumbnails(run, [(task, bad)], {}, data_dir=corrupt)
    payload = build_browser_data(load_run(run))
    assert payload["groups"][0]["images"] == []
    assert "1 sample(s) of task 'mmmu' have images that cannot be decoded." in payload["notes"]


def test_empty_and_single_variant_runs(tmp_path: Path) -> None:
    empty = str(render_browser(load_run(write_records(tmp_path / "empty", [])), thumbnails=False))
    assert "No sample records written yet." in empty and "<script" not in empty
    single = str(render_browser(load_run(write_records(tmp_path / "one", [record("base", "a", 1.0)],
                                                       variants=("base",))), thumbnails=False))
    assert '<label hidden><input type="checkbox" id="pb-disagree">' in single


def test_side_files_hold_every_record_and_the_page_an_index(tmp_path: Path) -> None:
    from pvm_bench.report import browser

    recs = [
        record(v, f"s{i}", float(i % 2), output=f"{v} says {i} </script>") for i in range(7) for v in ("base", "pvm")
    ]
    data = load_run(write_records(tmp_path / "run", recs))
    full = build_browser_data(data, thumbnails=False)
    html = str(render_browser(data, thumbnails=False, single_file=False))
    files = sorted((tmp_path / "run" / browser.SIDE_DIR).glob("chunk-*.js"))
    assert (
        [f.name for f in files] == ["chunk-00000.js"] and "says" not in html and "report_samples/ next to this" in html
    )
    text = files[0].read_text()
    assert text.startswith("pvmBenchSamples(0, ") and text.endswith(");\n")
    assert json.loads(json.loads(text[len("pvmBenchSamples(0, "):-3])) == json.loads(json.dumps(full["groups"]))
    index = json.loads(html.split('id="pb-data">')[1].split("</script>")[0])
    assert index["chunks"] == {"dir": "report_samples", "size": browser.CHUNK_GROUPS, "n": 1}
    assert index["groups"][0]["records"] == [{"variant": "base", "score": 0.0, "caveats": []},
                                             {"variant": "pvm", "score": 0.0, "caveats": []}]
    # small runs stay one file by default, and an embedded report removes stale side files
    assert "pvm says 6" in str(render_browser(data, thumbnails=False)).replace("\\u003c", "<")
    assert not (tmp_path / "run" / browser.SIDE_DIR).exists()


def test_report_browser_shows_a_run_that_has_only_rank_shards(tmp_path: Path) -> None:
    """A crashed multi-GPU run never merged samples.rank*.jsonl into samples.jsonl: the browser shows
    the shards' records (read as the runner reads them, pvm_bench.results.read_samples)."""
    from pvm_bench.cli import app

    recs = [record(v, f"s{i}", float(i % 2), task="a") for i in range(6) for v in ("base", "pvm")]
    run = write_records(tmp_path / "crashed", recs)
    lines = (run / "samples.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    for rank in (0, 1):
        (run / f"samples.rank{rank}.jsonl").write_text("".join(lines[rank::2]), encoding="utf-8")
    (run / "samples.jsonl").unlink()
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    payload = _payload_from_page((run / "report.html").read_text(encoding="utf-8"))
    assert payload["n_records"] == 12 and [g["id"] for g in payload["groups"]] == [f"s{i}" for i in range(6)]
    assert all([r["variant"] for r in g["records"]] == ["base", "pvm"] for g in payload["groups"])


def test_significant_digits_equal_the_formatted_value() -> None:
    from pvm_bench.report.browser_media import significant

    rng = np.random.default_rng(0)
    x = rng.random(20000) * 10.0 ** rng.integers(-6, 6, 20000)
    assert significant(x).tolist() == [float(f"{v:.4g}") for v in x]
