"""Typed metrics and honest aggregation: pooled/macro rows keyed by (task, sample_id, repeat),
task-declared metrics, check gating on tasks and the macro average, NaN refusal, compare pairing,
killed-run attention parts, and the full-checkpoint baseline note."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import typer
from report_synth import describe_tasks
from typer.testing import CliRunner

from pvm_bench.report import build_report
from pvm_bench.report.check import check, write_baseline
from pvm_bench.report.compare import compare_runs
from pvm_bench.report.summary import build_summary, load_run
from pvm_bench.results import JsonlAppender, RunRecord, SampleRecord

runner = CliRunner()


def write_scores(run_dir: Path, scores: dict[tuple[str, str], list[float]], *, model: dict | None = None,
                 adapter: dict | None = None, metadata: Callable[[str, int], dict] | None = None) -> Path:
    """A run whose (task, variant) records have the given scores; sample ids are "0", "1", ...
    in every task (so tasks share ids)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    variants = list(dict.fromkeys(v for _, v in scores))
    rec = RunRecord(run_id=run_dir.name, status="completed", variants=variants,
                    model=model or {"source": "/models/tiny-qwen3-vl", "fingerprint": "aaaa"}, adapter=adapter,
                    config={"tasks": sorted({t for t, _ in scores}), "seed": 0, "probes": []})
    rec.ended_at = rec.started_at
    rec.save(run_dir)
    with JsonlAppender(run_dir / "samples.jsonl") as out:
        for (task, variant), values in scores.items():
            for i, v in enumerate(values):
                out.append(SampleRecord(variant=variant, task=task, sample_id=str(i), seed=0, prompt="p", output="o",
                                        score=v, n_generated=10, metadata=metadata(task, i) if metadata else {}))
    return run_dir


def _row(summary, task: str, variant: str, metric: str) -> dict:
    r = summary.rows
    hit = r[(r["task"] == task) & (r["variant"] == variant) & (r["metric"] == metric) & (r["band"] == "")
            & r["kind"].isin(["task", "pooled", "macro"])]
    assert len(hit) == 1, (task, variant, metric)
    return hit.iloc[0].to_dict()


def test_pooled_row_keys_by_task_and_macro_average(tmp_path: Path, app: typer.Typer) -> None:
    run = write_scores(tmp_path / "shared-ids", {
        ("a", "base"): [1.0] * 100, ("b", "base"): [0.0] * 10,
        ("a", "pvm"): [1.0] * 100, ("b", "pvm"): [0.0] * 10,
    })
    summary = build_summary(load_run(run))
    pooled = _row(summary, "ALL", "base", "accuracy")
    assert pooled["n"] == 110 and pooled["value"] == pytest.approx(100 / 110)  # 0.909, not 0.95 n=100
    macro = _row(summary, "MACRO", "base", "macro_average")
    assert macro["value"] == pytest.approx(0.5) and macro["n"] == 110
    # constant tasks: the CI does not collapse (per-task Wilson half-widths, root sum of squares)
    assert 0.4 < macro["ci_low"] < 0.5 < macro["ci_high"] < 0.6
    assert pooled["ci_low"] < pooled["value"] < pooled["ci_high"]
    build_report(run)
    md = (run / "summary.md").read_text()
    assert "| ALL | base | accuracy | 110 | 0.909" in md and "| MACRO | base | macro_average | 110 | 0.500" in md

    # check gates per task and on the macro average: task a of pvm drops to 60%
    baseline = write_baseline(run, tmp_path / "b.json")
    worse = write_scores(tmp_path / "worse", {
        ("a", "base"): [1.0] * 100, ("b", "base"): [0.0] * 10,
        ("a", "pvm"): [1.0] * 60 + [0.0] * 40, ("b", "pvm"): [0.0] * 10,
    })
    result = check(worse, baseline)
    failed = set(zip(result.failures["task"], result.failures["variant"], result.failures["stat"]))
    assert {("a", "pvm", "value"), ("ALL", "pvm", "value"), ("MACRO", "pvm", "value")} <= failed
    assert ("b", "pvm", "value") not in failed and not result.passed
    macro_row = result.table[(result.table["task"] == "MACRO") & (result.table["variant"] == "pvm")
                             & (result.table["stat"] == "value")].iloc[0]
    assert macro_row["current"] == pytest.approx(0.3) and macro_row["p_value"] < 0.001
    res = runner.invoke(app, ["check", str(worse), "--baseline", str(baseline)])
    assert res.exit_code == 1 and "MACRO" in res.output
    assert check(run, baseline).passed


def test_macro_paired_difference_vs_base(tmp_path: Path) -> None:
    run = write_scores(tmp_path / "r", {
        ("a", "base"): [0.0] * 20 + [1.0] * 20, ("b", "base"): [0.0] * 40,
        ("a", "pvm"): [1.0] * 40, ("b", "pvm"): [1.0] * 10 + [0.0] * 30,
    })
    s = build_summary(load_run(run))
    macro = _row(s, "MACRO", "pvm", "macro_average")
    assert macro["value"] == pytest.approx((1.0 + 0.25) / 2)
    assert macro["diff"] == pytest.approx(((1.0 - 0.5) + 0.25) / 2) and macro["p_value"] < 0.001
    assert macro["diff_ci_low"] > 0 and macro["p_method"] == "sign-flip-mc" and macro["n_pairs"] == 80


def test_task_metrics_circular_eval_and_hallusionbench_groups(tmp_path: Path) -> None:
    """Task-declared metrics from the registry: MMBench CircularEval (index % 1e6, main row
    required), HallusionBench qAcc/fAcc; units are what the bootstrap resamples."""
    mm_index = [0, 1, 2, 1000000, 1000001, 1000002]
    hb = [("VD", "chart", "0", "0", "0"), ("VD", "chart", "0", "1", "0"), ("VD", "chart", "0", "0", "1"),
          ("VD", "chart", "0", "1", "1")]

    def meta(task: str, i: int) -> dict:
        if task == "mmbench_en":
            return {"index": mm_index[i], "score": {"extractor": "mmbench_static" if i != 5 else "none"}}
        c, sc, s, f, q = hb[i]
        return {"category": c, "subcategory": sc, "set_id": s, "figure_id": f, "question_id": q,
                "score": {"extractor": "yes_no_rule"}}

    run = write_scores(tmp_path / "bench", {
        ("mmbench_en", "base"): [1, 1, 1, 1, 0, 1.0], ("hallusionbench", "base"): [1, 1, 1, 0.0],
    }, metadata=meta)
    s = build_summary(load_run(run))
    circ = _row(s, "mmbench_en", "base", "circular_accuracy")
    assert circ["headline"] and circ["value"] == pytest.approx(2 / 3) and circ["n"] == 3  # question 1 fails
    assert _row(s, "mmbench_en", "base", "accuracy")["value"] == pytest.approx(5 / 6)
    assert _row(s, "hallusionbench", "base", "aAcc")["value"] == pytest.approx(0.75)
    assert _row(s, "hallusionbench", "base", "qAcc")["value"] == pytest.approx(0.5)  # q1 wrong on figure 1
    assert _row(s, "hallusionbench", "base", "fAcc")["value"] == pytest.approx(0.5)  # figure 1 has a wrong answer
    r = s.rows
    unparsed = r[(r["task"] == "mmbench_en") & (r["metric"] == "unparsed_rate")]["value"].iloc[0]
    assert unparsed == pytest.approx(1 / 6)
    macro = _row(s, "MACRO", "base", "macro_average")
    assert macro["value"] == pytest.approx((2 / 3 + 0.75) / 2)  # HallusionBench headline is aAcc
    build_report(run)
    md = (run / "summary.md").read_text()
    assert "circular_accuracy *" in md and "qAcc" in md and "fAcc" in md and "| unparsed |" in md
    html = (run / "report.html").read_text()
    assert "circular_accuracy" in html and "qAcc" in html


@pytest.mark.parametrize("bad", ["NaN", '"abc"', "Infinity"])
def test_check_refuses_nan_and_non_numeric_baseline_values(tmp_path: Path, app: typer.Typer, bad: str) -> None:
    run = write_scores(tmp_path / "r", {("a", "base"): [1.0, 0.0] * 10})
    path = write_baseline(run, tmp_path / "b.json")
    doc = json.loads(path.read_text())
    doc["metrics"][0]["value"] = "__BAD__"
    path.write_text(json.dumps(doc).replace('"__BAD__"', bad))
    before = path.read_bytes()
    res = runner.invoke(app, ["check", str(run), "--baseline", str(path)])
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1, res.output
    assert "must be a finite number" in res.output and "metrics[0]" in res.output
    assert path.read_bytes() == before


@pytest.mark.parametrize("tol", ["nan", "inf", "-0.1"])
def test_check_refuses_nan_tolerance(tmp_path: Path, app: typer.Typer, tol: str) -> None:
    run = write_scores(tmp_path / "r", {("a", "base"): [1.0, 0.0] * 10})
    path = write_baseline(run, tmp_path / "b.json")
    res = runner.invoke(app, ["check", str(run), "--baseline", str(path), "--tolerance", tol])
    assert res.exit_code == 2 and "tolerance" in res.output and "finite number >= 0" in res.output, res.output


def test_check_notes_a_different_model_fingerprint(tmp_path: Path) -> None:
    scores = {("a", "base"): [1.0, 0.0] * 10}
    baseline = write_baseline(write_scores(tmp_path / "r1", scores), tmp_path / "b.json")
    other = write_scores(tmp_path / "r2", scores, model={"source": "/models/tiny-qwen3-vl", "fingerprint": "bbbb"})
    result = check(other, baseline)
    assert result.passed and any("fingerprint differs" in n and "bbbb" in n for n in result.notes)


def test_compare_pairs_samples_across_runs(tmp_path: Path, app: typer.Typer) -> None:
    a = write_scores(tmp_path / "run-2026-12-01-a", {("t", "base"): [0.0] * 30, ("t", "pvm"): [0.0] * 30})
    b = write_scores(tmp_path / "run-2026-12-01-b", {("t", "base"): [0.0] * 30, ("t", "pvm"): [1.0] * 20 + [0.0] * 10},
                     model={"source": "/models/other-model", "fingerprint": "cccc"})
    cmp = compare_runs([a, b])
    t = cmp.table
    row = t[(t["variant"] == "pvm") & (t["run"] == "B")].iloc[0]
    assert row["diff_vs_first"] == pytest.approx(20 / 30) and row["n_pairs"] == 30 and row["p_value"] < 1e-5
    assert row["p_method"] == "mcnemar-exact"
    assert list(cmp.runs["run"]) == ["A", "B"] and list(cmp.runs["model"]) == ["tiny-qwen3-vl", "other-model"]
    # --pair: run A's base against run B's pvm (an instruct-model run vs a PVM checkpoint run)
    paired = compare_runs([a, b], pairs=[("base", "pvm")]).table
    row = paired[(paired["variant"] == "base") & (paired["run"] == "B")].iloc[0]
    assert row["run_variant"] == "pvm" and row["diff_vs_first"] == pytest.approx(20 / 30)
    out = tmp_path / "cmp.md"
    res = runner.invoke(app, ["compare", str(a), str(b), "--pair", "base:pvm", "-o", str(out)])
    assert res.exit_code == 0, res.output
    md = out.read_text()
    assert "| model |  |  | tiny-qwen3-vl | other-model |" in md and "+0.667" in md
    assert pd.read_csv(tmp_path / "cmp.csv")["run"].tolist().count("B") >= 1
    res = runner.invoke(app, ["compare", str(a), str(b), "--pair", "base"])
    assert res.exit_code == 2 and "VARIANT_A:VARIANT_B" in res.output


def test_report_on_a_killed_run_reads_attention_parts(make_run: Callable[..., Path]) -> None:
    run = make_run(n_samples=6, max_len=80, n_layers=3, tasks=("colour",), status="interrupted")
    frame = pd.read_parquet(run / "attention.parquet")
    (run / "attention").mkdir()
    half = frame["sample_id"].isin(sorted(frame["sample_id"].unique())[:3])
    frame[half].to_parquet(run / "attention" / "part-000001.parquet", index=False)
    frame[~half].to_parquet(run / "attention" / "part-000002.parquet", index=False)
    (run / "attention.parquet").unlink()
    data = load_run(run)
    assert data.attention is not None and len(data.attention) == len(frame)
    build_report(run)
    md = (run / "summary.md").read_text()
    assert "Visual-attention decay" in md and "unmerged attention part file(s)" in md
    assert list((run / "attention").glob("part-*.parquet"))  # reading never deletes the parts


def test_report_says_why_the_decay_section_is_missing(make_run: Callable[..., Path]) -> None:
    run = make_run(n_samples=4, max_len=60, tasks=("colour",), attention=False)
    build_report(run)
    assert "no decay section: no attention records were written" in (run / "summary.md").read_text()


def test_summary_names_the_base_of_a_full_checkpoint_run(tmp_path: Path) -> None:
    ckpt = tmp_path / "pvm-ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"text_config": {"pvm_layers": [1], "pvm_hidden_size": 64}}))
    scores = {("a", "base"): [1.0, 0.0] * 5, ("a", "pvm"): [1.0] * 10}
    full = write_scores(tmp_path / "full", scores, model={"source": str(ckpt), "fingerprint": "ffff"},
                        adapter={"path": str(ckpt)})
    build_report(full)
    md = " ".join((full / "summary.md").read_text().split())
    assert "`base` is the full PVM checkpoint pvm-ckpt with its PVM branch switched off" in md
    adapter_dir = tmp_path / "adapter"
    adapter_dir.mkdir()
    (adapter_dir / "pvm_config.json").write_text("{}")
    plain = write_scores(tmp_path / "plain", scores, adapter={"path": str(adapter_dir)})
    build_report(plain)
    assert "full PVM checkpoint" not in (plain / "summary.md").read_text()
    # a hub checkpoint passed as both --model and --pvm
    hub = write_scores(tmp_path / "hub", scores, model={"source": "org/pvm-8b", "fingerprint": "eeee"},
                       adapter={"path": "org/pvm-8b"})
    build_report(hub)
    assert "`base` is the full PVM checkpoint org/pvm-8b" in " ".join((hub / "summary.md").read_text().split())


def test_old_records_with_metadata_score_are_read_as_typed_scores(tmp_path: Path) -> None:
    run = write_scores(
        tmp_path / "old",
        {("a", "base"): [1.0, 0.0, 0.0, 1.0]},
        metadata=lambda t, i: {"score": {"extractor": "none" if i == 2 else "boxed", "filler_ok": i != 1}},
    )
    lines = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    for d in lines:
        d.pop("score_detail")  # as written before the typed score existed
    (run / "samples.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    data = load_run(run)
    assert list(data.samples["extractor"]) == ["boxed", "boxed", "none", "boxed"]
    rows = build_summary(data).rows
    by = {m: v for m, v in zip(rows["metric"], rows["value"]) if not (isinstance(v, float) and math.isnan(v))}
    assert by["unparsed_rate"] == pytest.approx(0.25) and by["flag_filler_ok"] == pytest.approx(0.75)


def test_comparability_note_and_stratified_metric_from_an_include_path_task(tmp_path: Path) -> None:
    """A plugin task's declared metrics and comparability_note reach summary.md and report.html."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "quiz.py").write_text(
        "from pvm_bench.tasks.base import Metric, Task\n"
        "class Quiz(Task):\n"
        "    name = 'quiz'\n"
        "    metric = 'balanced'\n"
        "    comparability_note = 'rule-based scorer; papers use a GPT judge'\n"
        "    def load(self, split=None, limit=None, data_dir=None): return []\n"
        "    def score(self, sample, output, *, truncated=False): raise NotImplementedError\n"
        "    def metrics(self):\n"
        "        return [Metric('balanced', stratum=lambda i: i['kind']), Metric('accuracy')]\n"
        "TASKS = [Quiz()]\n"
    )
    run = write_scores(tmp_path / "r", {("quiz", "base"): [1.0] * 9 + [0.0]},
                       metadata=lambda t, i: {"kind": "rare" if i == 9 else "common"})
    describe_tasks(run, [str(plugins)], {"quiz": {str(i): {"kind": "rare" if i == 9 else "common"} for i in range(10)}})
    shutil.rmtree(plugins)  # the report reads tasks.json: the plugin need not exist any more
    s = build_summary(load_run(run))
    assert _row(s, "quiz", "base", "balanced")["value"] == pytest.approx(0.5)  # (9/9 + 0/1) / 2
    assert _row(s, "quiz", "base", "accuracy")["value"] == pytest.approx(0.9)
    build_report(run)
    md = (run / "summary.md").read_text()
    assert "**not comparable**: quiz: rule-based scorer; papers use a GPT judge" in md and "balanced *" in md
    assert "Not comparable: quiz: rule-based scorer" in (run / "report.html").read_text()
    wide = pd.read_csv(run / "summary.csv").iloc[0]  # headline in `accuracy`, the secondary one prefixed
    assert wide["metric"] == "balanced" and wide["accuracy"] == pytest.approx(0.5)
    assert wide["task_accuracy"] == pytest.approx(0.9)


def test_task_aggregate_uses_the_declared_metrics() -> None:
    """Task.aggregate (Score lists) and the report share one definition: CircularEval skips
    questions whose main row (index < 1e6) is absent, as lmms-eval's eval_result does; MMStar's
    headline is the mean over L2 categories."""
    from pvm_bench.tasks import Score, get_registry

    tasks = get_registry().tasks
    mmb = tasks["mmbench_en"]
    scores = [Score(1.0, details={"index": 0}), Score(0.0, details={"index": 1000000}),
              Score(1.0, details={"index": 1000003}), Score(1.0, details={"index": 2})]
    m = mmb.aggregate(scores)
    assert m["circular_accuracy"] == pytest.approx(0.5)  # questions 0 (shift wrong) and 2; 3 has no main row
    assert m["accuracy"] == pytest.approx(0.75) and m["n"] == 4
    star = tasks["mmstar"]
    s = [Score(1.0, details={"l2_category": "a"})] * 3 + [Score(0.0, details={"l2_category": "b"})]
    assert star.aggregate(s)["average"] == pytest.approx(0.5) and star.aggregate(s)["accuracy"] == pytest.approx(0.75)
