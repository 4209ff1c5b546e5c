"""Report loose ends: fixed-cohort decay rows, per-layer PVM signals, small-n marks, and a run
without samples (through the CLI where there is one)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from pvm_bench.report.curves import sample_curves, suggest_cohort_t
from pvm_bench.report.rundata import load_run
from pvm_bench.report.summary import build_summary
from pvm_bench.report.views import SMALL_N_MARK, length_view, metrics_view
from pvm_bench.results import RunRecord

runner = CliRunner()


def _lengths(run: Path) -> dict[tuple[str, str, int], int]:
    """(variant|task, sample_id, repeat) -> n_generated, from samples.jsonl."""
    out = {}
    for line in (run / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[(r["variant"], r["sample_id"], r["repeat"])] = int(r["n_generated"])
    return out


def _survivor_attention(run: Path, n_layers: int = 2) -> None:
    """Attention where every sample's visual mass is constant over its steps and grows with its
    length (0.01 + 1e-4 * length): the all-sample mean curve rises with t only because the short
    samples drop out; a fixed cohort's curve is flat."""
    frames = []
    for (variant, sid, rep), n in _lengths(run).items():
        steps = np.arange(0, n + 1)
        for layer in range(n_layers):
            frames.append(pd.DataFrame({
                "variant": variant, "task": "colour", "sample_id": sid, "repeat": rep, "step": steps, "layer": layer,
                "visual_mass": np.full(steps.size, 0.01 + 1e-4 * n), "visual_mass_norm": 1.0, "sink_mass": 0.1,
                "n_keys": 100 + steps, "n_visual": 25,
            }))
    pd.concat(frames, ignore_index=True).to_parquet(run / "attention.parquet", index=False)


def _rows(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv", keep_default_na=False, na_values=[""])


def test_report_cohort_flag_gives_fixed_cohort_rows(app: typer.Typer, make_run: Callable[..., Path]) -> None:
    run = make_run(tasks=("colour",), n_samples=40, max_len=400, attention=False)
    _survivor_attention(run)
    res = runner.invoke(app, ["report", str(run), "--cohort", "256"])
    assert res.exit_code == 0, res.output
    rows = _rows(run)
    cohort = rows[(rows["kind"] == "decay") & (rows["band"] == "cohort@256")]
    assert set(cohort["variant"]) == {"base", "pvm"}
    lengths = _lengths(run)
    for variant in ("base", "pvm"):
        c = cohort[cohort["variant"] == variant].set_index(["metric", "t"], drop=False)
        reached = [n for (v, _, _), n in lengths.items() if v == variant and n >= 256]
        assert 2 <= len(reached) < 40
        # n = the samples that reached T; the same samples behind every position up to T
        assert int(c.loc[c["metric"] == "decay_a", "n"].iloc[0]) == len(reached)
        m64 = c[(c["metric"] == "visual_mass") & (c["t"] == 64.0)].iloc[0]
        m256 = c[(c["metric"] == "visual_mass") & (c["t"] == 256.0)].iloc[0]
        assert int(m64["n"]) == int(m256["n"]) == len(reached)
        # flat within the cohort: each sample's constant level, averaged over the same samples
        expected = float(np.mean([0.01 + 1e-4 * n for n in reached]))
        assert m64["value"] == pytest.approx(expected, rel=1e-6)
        assert m256["value"] == pytest.approx(expected, rel=1e-6)
        assert not (c["t"] > 256).any()  # nothing beyond T
        # the all-sample curve rises only through survivors: mass@256 > mass@64
        a = rows[(rows["kind"] == "decay") & (rows["band"] == "all") & (rows["variant"] == variant)
                 & (rows["metric"] == "visual_mass")].set_index("t")["value"]
        assert a[256.0] > a[64.0] + 0.005
        assert a[256.0] == pytest.approx(expected, rel=0.05)  # ~ the survivors at 256
    md = (run / "summary.md").read_text()
    line = next(x for x in md.splitlines() if "| base | cohort@256" in x)
    n_base = sum(1 for (v, _, _), n in lengths.items() if v == "base" and n >= 256)
    assert f"samples that reached t=256, steps 1..256) | {n_base}" in line
    assert "cohort@256" in (run / "report.html").read_text()
    assert "cohort_t" in pd.read_csv(run / "summary.csv").columns


def test_default_cohort_is_the_shared_suggestion(make_run: Callable[..., Path]) -> None:
    run = make_run(tasks=("colour",), n_samples=30, max_len=300)
    data = load_run(run)
    summary = build_summary(data)
    cohort = summary.rows[summary.rows["band"].astype(str).str.startswith("cohort@")]
    vis = data.attention
    everyone = sample_curves(vis.assign(task=vis["variant"] + "|" + vis["task"]))
    t = suggest_cohort_t(everyone)
    assert t is not None and set(cohort["band"]) == {f"cohort@{t}"}
    assert set(cohort["variant"]) == {"base", "pvm"}
    assert ("colour", "base", "cohort") in summary.fits
    # a cohort nobody reached: no rows, one note naming the flag
    summary = build_summary(load_run(run), cohort_t=100_000)
    assert not summary.rows["band"].astype(str).str.startswith("cohort@").any()
    data = load_run(run)
    build_summary(data, cohort_t=100_000)
    assert any("--cohort 100000: no sample of colour reached" in w for w in data.warnings)


def test_bad_cohort_is_one_error_line(app: typer.Typer, make_run: Callable[..., Path]) -> None:
    run = make_run(tasks=("colour",), n_samples=4, max_len=60, attention=False)
    res = runner.invoke(app, ["report", str(run), "--cohort", "0"])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error:") and "--cohort 0" in res.output
    assert not (run / "summary.md").exists()


def test_pvm_gate_is_shown_per_layer(make_run: Callable[..., Path]) -> None:
    run = make_run(tasks=("colour",), n_samples=6, max_len=80, n_layers=4)
    attn = pd.read_parquet(run / "attention.parquet")
    is_pvm = attn["variant"] == "pvm"
    gates = {1: 1.66, 2: -1.60, 3: 1.57}
    attn["pvm_gate"] = np.where(is_pvm & attn["layer"].isin(gates), attn["layer"].map(gates), np.nan)
    attn["pvm_ratio"] = np.where(is_pvm & attn["layer"].isin(gates), 0.1 * attn["layer"], np.nan)
    attn.to_parquet(run / "attention.parquet", index=False)
    from pvm_bench.report import build_report

    html = build_report(run).read_text()
    rows = _rows(run)
    probe = rows[rows["kind"] == "probe"]
    per_layer = probe[probe["band"].astype(str).str.startswith("layer:")]
    got = {(r.metric, r.band): r.value for r in per_layer.itertuples()}
    for layer, gate in gates.items():
        assert got[("pvm_gate", f"layer:{layer}")] == pytest.approx(gate)
        assert got[("pvm_ratio", f"layer:{layer}")] == pytest.approx(0.1 * layer)
    assert set(per_layer["variant"]) == {"pvm"}
    # no mean of signed gates over layers (it was 0.54 for these three); the ratio keeps its mean
    overall = probe[probe["band"].isna() | (probe["band"] == "")]
    assert "pvm_gate" not in set(overall["metric"])
    assert overall.loc[(overall["metric"] == "pvm_ratio") & (overall["variant"] == "pvm"), "value"].iloc[0] \
        == pytest.approx(0.2, rel=1e-5)
    md = (run / "summary.md").read_text()
    assert "## Probe signals per layer" in md
    assert "| colour | pvm | 2 | -1.6000 | 0.2000 |" in md
    assert "0.54" not in md.split("## Probe signals (mean")[1].split("##")[0]
    assert 'id="probe-layer-table"' in html and "-1.6000" in html


def test_small_n_cells_are_marked(make_run: Callable[..., Path]) -> None:
    run = make_run(tasks=("colour",), n_samples=12, max_len=80)
    from pvm_bench.report import build_report

    html = build_report(run).read_text()
    data = load_run(run)
    summary = build_summary(data)
    mv = metrics_view(summary.rows, data.variants)
    assert mv["n"].tolist() == ["12 (small n)", "12 (small n)"]
    assert all(v.endswith(SMALL_N_MARK) for v in mv["value [95% CI]"])
    assert mv["Δ vs base [95% CI]"].iloc[1].endswith(SMALL_N_MARK)
    lv = length_view(summary.rows, data.variants)
    cells = [c for c in lv.drop(columns=["task", "variant"]).to_numpy().ravel() if c != "–"]
    assert cells and all(c.endswith(f"{SMALL_N_MARK})") for c in cells)
    assert all("[" in c for c in cells)  # accuracy CI in every length cell
    md = (run / "summary.md").read_text()
    decay_lines = [x for x in md.splitlines() if "| all (0–5)" in x]
    assert len(decay_lines) == 2 and all(f"| all (0–5) | 12{SMALL_N_MARK} |" in x for x in decay_lines)
    n64 = int(summary.rows.query("kind == 'decay' and band == 'all' and t == 64.0")["n"].iloc[0])
    assert 0 < n64 < 12 and all(f"(n={n64}{SMALL_N_MARK})" in x for x in decay_lines)
    assert "† = small n" in md and SMALL_N_MARK in html
    # 40 samples: no mark on the headline
    big = make_run("big", tasks=("colour",), n_samples=40, max_len=60, attention=False)
    d2 = load_run(big)
    mv2 = metrics_view(build_summary(d2).rows, d2.variants)
    assert mv2["n"].tolist() == ["40", "40"] and not any(SMALL_N_MARK in v for v in mv2["value [95% CI]"])


@pytest.mark.parametrize("status", ["interrupted", "failed"])
def test_report_without_samples_is_one_error(app: typer.Typer, tmp_path: Path, status: str) -> None:
    run = tmp_path / "r1"
    run.mkdir()
    RunRecord(run_id="r1", status=status, error="ValueError: no such task 'x'" if status == "failed" else None).save(
        run
    )
    (run / "samples.jsonl").write_text("")
    before = sorted(p.name for p in run.iterdir())
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 2
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "has no samples" in lines[0]
    if status == "failed":
        assert "failed before its first sample" in lines[0] and "no such task" in lines[0]
    else:
        assert f"pvm-bench run --resume {run}" in lines[0]
    assert sorted(p.name for p in run.iterdir()) == before  # no empty summary or report written


def test_report_cohort_reaches_the_cohort_plot(make_run: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import pvm_bench.report.plots as plots
    from pvm_bench.report import build_report

    seen: list[int | None] = []
    monkeypatch.setattr(plots, "plot_decay_cohort", lambda data, variants, out, cohort_t=None: seen.append(cohort_t))
    run = make_run(tasks=("colour",), n_samples=6, max_len=120, n_layers=2)
    build_report(run, cohort_t=32)
    build_report(run)
    assert seen == [32, None]  # None: the plot takes the same suggestion as the summary rows
