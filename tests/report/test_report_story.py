"""The report reads top-down (issue 21 items 1 and 3; issue 25 "compute each view once"), on synthetic
runs through the CLI: findings first with the run's own numbers, one view model for both outputs,
and views that do not mislead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import report_synth
from typer.testing import CliRunner

from pvm_bench.cli import app
from pvm_bench.report.views import fmt_ci


def _report(run, *args: str) -> None:
    result = CliRunner().invoke(app, ["report", str(run), *args])
    assert result.exit_code == 0, result.output


def test_findings_come_first_with_the_runs_numbers_and_each_view_is_computed_once(make_run, monkeypatch):
    from pvm_bench.report import viewmodel

    calls = []
    real = viewmodel.metrics_view
    monkeypatch.setattr(viewmodel, "metrics_view", lambda *a, **k: calls.append(1) or real(*a, **k))
    run = make_run(tasks=("colour",), n_samples=30, max_len=200)
    _report(run)
    assert len(calls) == 1  # one view model, rendered to summary.md and report.html
    rows = pd.read_csv(run / "metrics.csv")
    pvm = rows[(rows["kind"] == "task") & (rows["variant"] == "pvm") & rows["headline"]].iloc[0]
    md = (run / "summary.md").read_text()
    findings = md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert md.index("## Findings") < md.index("## Metrics") < md.index("## Run\n")
    expected = (f"pvm {fmt_ci(pvm['value'], pvm['ci_low'], pvm['ci_high'])} (Δ vs base "
                f"{fmt_ci(pvm['diff'], pvm['diff_ci_low'], pvm['diff_ci_high'], sign=True)}")
    assert expected in findings and f"paired n = {int(pvm['n_pairs'])}" in findings
    # the fixed-cohort ratio: each sample's late/early mass, recomputed here from attention.parquet
    ratio = rows[(rows["metric"] == "mass_ratio") & (rows["variant"] == "base")].iloc[0]
    t_c = int(str(ratio["band"]).removeprefix("cohort@"))
    w = t_c // 8
    attn = pd.read_parquet(run / "attention.parquet")
    a = attn[(attn["variant"] == "base") & (attn["step"] >= 1)]
    per_step = a.groupby(["sample_id", "step"])["visual_mass"].mean().reset_index()
    reached = per_step.groupby("sample_id")["step"].max()
    keep = per_step[per_step["sample_id"].isin(reached[reached >= t_c].index) & (per_step["step"] <= t_c)]
    early = keep[keep["step"] <= w].groupby("sample_id")["visual_mass"].mean()
    late = keep[keep["step"] > t_c - w].groupby("sample_id")["visual_mass"].mean()
    assert ratio["value"] == pytest.approx((late / early).mean(), rel=1e-4) and ratio["n"] == len(early)
    assert f"ratio {fmt_ci(ratio['value'], ratio['ci_low'], ratio['ci_high'], digits=2)}" in findings
    page = (run / "report.html").read_text()
    assert page.index('id="findings"') < page.index("<figure") < page.index('id="accuracy-table"') \
        < page.index('id="run-metadata"')
    assert page.index('<details id="run-details">') < page.index('id="run-metadata"')


def test_decay_table_shows_only_reached_positions_and_says_why(make_run):
    run = make_run(tasks=("colour",), n_samples=30, max_len=120)
    _report(run)
    md = (run / "summary.md").read_text()
    decay = md.split("## Visual-attention decay", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in decay.splitlines() if line.startswith("| task |"))
    assert "mass@64" in header and "mass@256" not in header and "mass@4096" not in header
    longest = int(pd.read_json(run / "samples.jsonl", lines=True)["n_generated"].max())
    assert f"mass@256, mass@1024, mass@4096 not shown: no sample reached t = 256 (longest output: {longest}" in decay


def test_blind_variants_have_no_decay_rows_and_dependence_follows_the_headline(make_run, monkeypatch):
    monkeypatch.setitem(report_synth.ACCURACY, "base+blind:after=0", 0.0)
    run = make_run(variants=("base", "base+blind:after=0"), tasks=("colour",), n_samples=30, max_len=120)
    _report(run)
    md = (run / "summary.md").read_text()
    assert md.index("## Metrics") < md.index("## Visual dependence") < md.index("## Visual-attention decay")
    decay = md.split("## Visual-attention decay", 1)[1].split("\n## ", 1)[0]
    assert "| colour | base+blind:after=0 |" not in decay
    assert "Ablated variants (base+blind:after=0) are left out" in decay
    rows = pd.read_csv(run / "metrics.csv")  # the rows themselves stay in metrics.csv
    assert len(rows[(rows["kind"] == "decay") & (rows["variant"] == "base+blind:after=0")])


def test_dependence_k_at_small_n_is_not_resolved_and_ablated_delta_is_vs_its_own_variant(make_run, monkeypatch):
    # base 3/10 right, blind from token 0: 0/10 (McNemar p = 0.25): the issue's own case
    def score(variant, task, i):
        if variant.endswith("after=0"):
            return 0.0
        return float(i < 6) if variant.startswith("pvm") else float(i < 3)

    run = make_run(variants=("base", "pvm", "pvm+blind:after=0"), tasks=("colour",), n_samples=10, attention=False,
                   score_of=score)
    _report(run)
    rows = pd.read_csv(run / "metrics.csv")
    dep = rows[rows["kind"] == "dependence"]
    k0 = dep[(dep["t"] == 0) & (dep["metric"] == "accuracy")].iloc[0]
    assert k0["diff"] == pytest.approx(-0.6) and k0["p_value"] < 0.05  # 6/10 -> 0/10 is significant
    run2 = make_run("small", variants=("base", "base+blind:after=0", "base+blind:after=8"), tasks=("colour",),
                    n_samples=10, attention=False, score_of=score)
    _report(run2)
    rows2 = pd.read_csv(run2 / "metrics.csv")
    k = rows2[(rows2["kind"] == "dependence") & (rows2["metric"] == "dependence_k")].iloc[0]
    assert math.isnan(k["value"]) and k["flags"] == "not_resolved"
    md2 = (run2 / "summary.md").read_text()
    assert "dependence K is not resolved at this n" in md2.split("## Findings", 1)[1].split("\n## ", 1)[0]
    line = next(x for x in md2.split("## Visual dependence", 1)[1].splitlines() if x.startswith("| colour | base |"))
    assert line.rstrip().endswith("| not resolved at this n |")
    # the metrics table: pvm+blind's Δ is the paired difference vs pvm (the dependence row), not vs base
    md = (run / "summary.md").read_text()
    metrics = md.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    blind = next(x for x in metrics.splitlines() if x.startswith("| colour | pvm+blind:after=0 |"))
    assert f"{fmt_ci(k0['diff'], k0['diff_ci_low'], k0['diff_ci_high'], sign=True)} (vs pvm, n=10)" in blind


def test_per_image_small_n_is_marked_and_one_sample_has_no_interval(make_run):
    run = make_run(variants=("base",), tasks=("colour",), n_samples=4, max_len=60, entropy=False)
    attn = pd.read_parquet(run / "attention.parquet")
    one = attn["sample_id"] == "colour-0"  # only one sample holds a second image
    attn["visual_mass_img0"] = attn["visual_mass"]
    attn["visual_mass_img1"] = np.where(one, 0.5 * attn["visual_mass"], np.nan)
    attn.to_parquet(run / "attention.parquet", index=False)
    _report(run)
    md = (run / "summary.md").read_text()
    table = md.split("## Visual mass per image", 1)[1].split("\n## ", 1)[0]
    img1 = next(x for x in table.splitlines() if x.startswith("| colour | base | 1 |"))
    assert "(n=1†, no CI)" in img1 and "[" not in img1
    img0 = next(x for x in table.splitlines() if x.startswith("| colour | base | 0 |"))
    assert "(n=4†)" in img0


def test_compare_warns_on_different_samples_and_an_empty_rank_column(make_run, tmp_path):
    a = make_run("a", tasks=("colour",), n_samples=24, max_len=150, seed=1)
    b = make_run("b", tasks=("colour",), n_samples=10, max_len=150, seed=2)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--rank-by", "mass@1024", "-o", str(out)])
    assert result.exit_code == 0, result.output
    md = (out / "compare.md").read_text()
    assert "colour/base: A has 24 samples, B has 10, 10 in both" in md
    assert "--rank-by mass@1024: no run has a value in this column (no sample of any run reached t = 1024)" in md
    table = pd.read_csv(out / "compare.csv")
    later = table[(table["run"] == "B") & (table["task"] == "colour")]
    assert set(later["n_pairs"]) == {10}
    for line in md.split("| task | variant | metric |", 1)[1].splitlines()[2:]:
        if line.startswith("| colour |") and "accuracy" in line:
            assert "(paired n=10)" in line
    board = pd.read_csv(out / "compare_leaderboard.csv")  # the half-life ranked is the fixed cohort's
    from pvm_bench.report.rundata import load_run
    from pvm_bench.report.summary import build_summary

    rows = build_summary(load_run(a)).rows
    hl = rows[(rows["variant"] == "pvm") & (rows["metric"] == "half_life_fit")
              & rows["band"].astype(str).str.startswith("cohort@")].iloc[0]
    line = board[(board["run"] == "A") & (board["variant"] == "pvm")].iloc[0]
    expected = hl["value"] if math.isfinite(hl["value"]) else math.inf  # inf: the cohort fit never halves
    assert line["half_life"] == pytest.approx(expected) and line["half_life_cohort_t"] == int(hl["band"][7:])
    assert line["half_life_ci_low"] == pytest.approx(hl["ci_low"])
    page = (out / "compare.html").read_text()
    assert 'id="plot-leaderboard"' in page and "Warning: " in page
    assert '<code class="flag">--rank-by</code>' in page


def test_browser_rows_show_target_and_the_prompts_distance_once(make_run, tmp_path):
    from report_synth import write_distance_plugin

    from pvm_bench.report.browser import _record, build_browser_data
    from pvm_bench.report.rundata import load_run
    from pvm_bench.results import SampleRecord, ScoreDetail

    plugins = write_distance_plugin(tmp_path)
    run = make_run(tasks=("colour",), n_samples=4, attention=False, include_paths=[str(plugins)],
                   metadata=lambda task, i: {"n_filler": 4 * i})
    groups = build_browser_data(load_run(run), thumbnails=False)["groups"]
    assert [g["distance"] for g in groups] == [f"N (filler numbers) = {4 * i}" for i in range(4)]
    assert all(g["target"] == "red" for g in groups)
    # a score detail copied from the sample's metadata is the prompt's, not the output's: not per variant
    rec = SampleRecord(variant="pvm", task="colour", sample_id="s", repeat=0, seed=0, prompt="p", output="o",
                       parsed="x", target="x", score=1.0, n_generated=18, max_new_tokens=64,
                       metadata={"distance": 244}, score_detail=ScoreDetail(details={"distance": 244, "hits": 3}))
    assert _record(rec, None)["details"] == {"hits": 3}


def test_parameters_line_separates_the_adapter_from_the_model():
    from pathlib import Path

    import pvm_bench
    from pvm_bench.report.runinfo import parameters_line

    adapter = {"path": str(Path(pvm_bench.__file__).parent / "organism" / "weights" / "pvm"), "format": "adapter"}
    # run.json's model.n_params of the organism's default job (counted with the adapter attached)
    assert parameters_line({"n_params": 1_171_683}, adapter) == \
        "949,920 (model) + 221,763 (PVM adapter) = 1,171,683 as loaded"
    assert parameters_line({"n_params": 10}, None) == "10" and parameters_line({}, None) == "–"


def test_many_tasks_are_summarised_by_a_tally_not_one_sentence_each():
    from pvm_bench.report.findings import MAX_TASK_SENTENCES, headline_findings
    from pvm_bench.report.rows import row, rows_frame

    tasks = [f"t{k}" for k in range(MAX_TASK_SENTENCES + 2)]
    rows = []
    for k, t in enumerate(tasks):
        rows.append(row(t, "base", "accuracy", 0.5, n=40, headline=True))
        # pvm: significantly better on t0, t1; significantly worse on t2; no difference elsewhere
        diff, p = (0.2, 0.01) if k < 2 else (-0.2, 0.02) if k == 2 else (0.0, 0.9)
        rows.append(row(t, "pvm", "accuracy", 0.5 + diff, n=40, headline=True, diff=diff, p_value=p, n_pairs=40))
    rows.append(row("MACRO", "pvm", "macro_average", 0.53, kind="macro", headline=True, n=len(tasks)))
    found = headline_findings(rows_frame(rows), ["base", "pvm"])
    heads = [f.text.split(":")[0] for f in found]
    assert heads == ["MACRO (mean of the tasks' headlines)", "pvm vs base, task by task"]
    assert (
        f"significantly better in 2, significantly worse in 1, no significant difference in {len(tasks) - 3} "
        f"of {len(tasks)} tasks"
    ) in found[1].text
