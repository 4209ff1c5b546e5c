"""build_report on synthetic runs: files, summary contract, partial / single-variant / no-attention."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_synth import TRUE_A, TRUE_B, TRUE_C

from pvm_bench.report import build_report
from pvm_bench.report.attention_engine import ReportIncompleteError
from pvm_bench.report.summary import build_summary, layer_bands, load_run


def test_build_report_writes_everything(make_run: Callable[..., Path]) -> None:
    """Every report file and column. Speed is measured by `pvm-bench bench report` (ratios in one run),
    not by a time limit here: cold imports alone put a small report at the edge of any fixed budget."""
    run = make_run(n_samples=12, max_len=200)
    html = build_report(run)
    assert html == run / "report.html" and html.exists()
    for name in ("summary.csv", "summary.md", "plots/decay.png", "plots/heatmap.png",
                 "plots/accuracy_vs_length.png", "plots/accuracy_by_task.png"):
        assert (run / name).stat().st_size > 0, name
    table = pd.read_csv(run / "summary.csv")
    assert list(table["task"].unique()) == ["colour", "count", "ALL", "MACRO"]
    for col in (
        "accuracy",
        "acc_ci_low",
        "acc_ci_high",
        "diff_vs_base",
        "p_value",
        "truncation_rate",
        "tokens_per_s",
        "acc_len_0_31",
        "acc_len_64_127",
        "acc_len_4096_plus",
        "fit_all_a",
        "fit_early_r2",
        "fit_late_c",
        "half_life_all_fit",
        "half_life_all_obs",
        "mass_all_t64",
        "mass_all_t1024",
        "entropy_early",
        "entropy_late",
        "hesitation_rate",
    ):
        assert col in table.columns, col
    base = table[(table["task"] == "ALL") & (table["variant"] == "base")].iloc[0]
    assert np.isnan(base["diff_vs_base"]) and np.isnan(base["mass_all_t1024"])  # t=1024 not reached
    md = (run / "summary.md").read_text()
    assert "## Metrics" in md and "PARTIAL" not in md
    assert (run / "metrics.csv").stat().st_size > 0


def test_summary_recovers_the_synthetic_decay(make_run: Callable[..., Path]) -> None:
    run = make_run(n_samples=10, max_len=400, tasks=("colour",), entropy=False)
    summary = build_summary(load_run(run))
    t = summary.table.set_index("variant")
    # generated with a layer-dependent scale 1 + 0.1 (L - l)/L, averaged over 6 layers: 1.0583
    scale = np.mean([1 + 0.1 * (6 - layer) / 6 for layer in range(6)])
    for variant in ("base", "pvm"):
        assert t.loc[variant, "fit_all_a"] == pytest.approx(TRUE_A[variant] * scale, rel=0.05)
        assert t.loc[variant, "fit_all_b"] == pytest.approx(TRUE_B * scale, rel=0.05)
        assert t.loc[variant, "fit_all_c"] == pytest.approx(TRUE_C, rel=0.05)
    assert t.loc["pvm", "mass_all_t256"] > t.loc["base", "mass_all_t256"]
    assert "entropy_early" not in summary.table.columns


def test_layer_bands_are_thirds() -> None:
    assert layer_bands(range(7)) == {"all": list(range(7)), "early": [0, 1, 2], "middle": [3, 4], "late": [5, 6]}
    assert layer_bands([4]) == {"all": [4], "early": [4]}
    assert layer_bands([]) == {}


def test_single_variant_without_attention(make_run: Callable[..., Path]) -> None:
    run = make_run(variants=("base",), attention=False, n_samples=6, tasks=("colour",))
    html = build_report(run).read_text()
    table = pd.read_csv(run / "summary.csv")
    assert len(table) == 1 and "fit_all_a" not in table.columns
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["accuracy_by_task.png", "accuracy_vs_length.png"]
    assert "accuracy-table" in html


def test_partial_run_and_step_only_rows(make_run: Callable[..., Path]) -> None:
    run = make_run(status="running", n_samples=6, max_len=60, tasks=("colour",))
    # a killed writer leaves half a line; the runner also merges step-only rows (no layer)
    with open(run / "samples.jsonl", "a") as fh:
        fh.write('{"variant": "base", "task": "col')
    attn = pd.read_parquet(run / "attention.parquet")
    extra = attn[attn["layer"] == 0].assign(layer=np.nan, visual_mass=np.nan)
    pd.concat([attn, extra]).to_parquet(run / "attention.parquet", index=False)
    html = build_report(run).read_text()
    assert "partial-banner" in html and "status: running" in html
    assert "PARTIAL RUN" in (run / "summary.md").read_text()
    table = pd.read_csv(run / "summary.csv")
    assert table["fit_all_r2"].notna().all()


def test_empty_run_dir_reports(tmp_path: Path) -> None:
    from pvm_bench.results import RunRecord

    run = tmp_path / "fresh"
    run.mkdir()
    RunRecord(run_id="fresh").save(run)
    html = build_report(run).read_text()
    assert "No samples or attention records yet" in html and "partial-banner" in html


def test_unreadable_attention_is_a_warning(make_run: Callable[..., Path]) -> None:
    run = make_run(attention=False, n_samples=4, tasks=("colour",))
    (run / "attention.parquet").write_bytes(b"PAR1 torn write")
    with pytest.raises(ReportIncompleteError, match="attention.parquet unreadable"):  # not silently without it
        build_report(run)
    html = build_report(run, allow_partial=True).read_text()
    assert "attention.parquet unreadable" in html
    assert "attention.parquet unreadable" in (run / "summary.md").read_text()


def test_score_flags_are_reported_per_task_and_variant(make_run: Callable[..., Path]) -> None:
    """Boolean score details (e.g. filler_ok) become flag_<name> rates in summary.csv/md/html."""
    import json

    run = make_run(n_samples=10, max_len=100, attention=False, tasks=("colour",))
    path = run / "samples.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for i, r in enumerate(records):
        ok = r["variant"] == "base" or i % 2 == 0  # base all true; every other pvm record false
        r["metadata"] = {"score": {"filler_ok": ok, "extractor": "text, not a flag"}}
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    expected = {
        v: np.mean([r["metadata"]["score"]["filler_ok"] for r in records if r["variant"] == v]) for v in ("base", "pvm")
    }
    build_report(run)
    table = pd.read_csv(run / "summary.csv").set_index(["task", "variant"])
    assert table.loc[("colour", "base"), "flag_filler_ok"] == 1.0
    assert table.loc[("colour", "pvm"), "flag_filler_ok"] == pytest.approx(expected["pvm"])
    assert expected["pvm"] < 1.0 and "flag_extractor" not in table.columns
    md = (run / "summary.md").read_text()
    assert "## Score flags" in md and "| colour | pvm | " + f"{expected['pvm']:.3f}" in md
    assert "Score flags" in (run / "report.html").read_text()
