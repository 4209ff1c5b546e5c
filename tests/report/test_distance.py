"""Accuracy by a task's declared distance (issue 17 item 5): rows, tables and the shared binning."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from report_synth import write_distance_plugin
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.report import build_summary, load_run
from pvm_bench.report.distance import band_of, distance_keys, distance_table

# Hand-computed 95% intervals for 10 records: Wilson 10/10 = [10/(10 + 1.96²), 1] and 0/10 =
# [0, 1.96²/(10 + 1.96²)]; Newcombe's paired interval for 10 pairs all 0 -> 1:
# 1 - sqrt(2 * 0.27753²) = 0.60751 (psi = 0: no concordant pairs).
WILSON_10_OF_10_LOW = 0.722467
WILSON_0_OF_10_HIGH = 0.277533
NEWCOMBE_ALL_FLIP_LOW = 0.607509


def _run(make_run: Callable[..., Path], tmp_path: Path, name: str = "run", **kw: object) -> Path:
    """40 samples of "colour"; base right on even samples, pvm always right; N = 4 * (i % 4)
    unless ``metadata`` is given: bins N=0 and N=8 all right for both, N=4 and N=12 base all wrong."""
    kw.setdefault("metadata", lambda task, i: {"n_filler": 4 * (i % 4)})
    plugins = write_distance_plugin(tmp_path)
    return make_run(name, tasks=("colour",), n_samples=40, attention=False, include_paths=[str(plugins)],
                    score_of=lambda variant, task, i: 1.0 if variant == "pvm" or i % 2 == 0 else 0.0, **kw)


def _dist(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["kind"] == "distance"].set_index(["variant", "band"])


def test_distance_rows_values_cis_and_paired_difference(make_run: Callable[..., Path], tmp_path: Path) -> None:
    data = load_run(_run(make_run, tmp_path))
    assert distance_keys(data) == {"colour": ("n_filler", "N (filler numbers)")}
    d = _dist(build_summary(data).rows)
    assert sorted(d.index.get_level_values("band").unique()) == ["dist:0", "dist:12", "dist:4", "dist:8"]
    assert set(d["metric"]) == {"accuracy"} and set(d["task"]) == {"colour"} and set(d["n"]) == {10}
    assert set(d["flags"]) == {"small_n"}  # 10 records < 30
    assert d["higher_is_better"].isna().all()  # descriptive, like the length rows: never gated by check
    right, wrong = d.loc[("base", "dist:0")], d.loc[("base", "dist:4")]
    assert right["value"] == 1.0 and right["ci_low"] == pytest.approx(WILSON_10_OF_10_LOW, abs=1e-6)
    assert right["ci_high"] == 1.0
    assert wrong["value"] == 0.0 and wrong["ci_low"] == 0.0
    assert wrong["ci_high"] == pytest.approx(WILSON_0_OF_10_HIGH, abs=1e-6)
    assert math.isnan(right["diff"]) and right["n_pairs"] == 0  # base has no difference vs itself
    flip, same = d.loc[("pvm", "dist:4")], d.loc[("pvm", "dist:8")]
    assert flip["value"] == 1.0 and flip["diff"] == 1.0 and flip["n_pairs"] == 10
    assert flip["diff_ci_low"] == pytest.approx(NEWCOMBE_ALL_FLIP_LOW, abs=1e-5) and flip["diff_ci_high"] == 1.0
    assert flip["p_method"] == "mcnemar-exact" and flip["p_value"] == pytest.approx(2 / 2**10)  # 10 discordant
    assert same["diff"] == 0.0 and same["diff_ci_low"] == pytest.approx(-WILSON_0_OF_10_HIGH, abs=1e-6)
    assert same["p_value"] == 1.0


def test_many_values_use_the_plot_bins(make_run: Callable[..., Path], tmp_path: Path) -> None:
    data = load_run(_run(make_run, tmp_path, metadata=lambda task, i: {"n_filler": i}))
    d = _dist(build_summary(data).rows)
    bands = list(dict.fromkeys(d.xs("base", level="variant").index))
    # 40 distinct values -> 8 (nearest-quantile) equal-count bins, labelled by the values seen in each
    assert bands == ["dist:0_4", "dist:5_9", "dist:10_14", "dist:15_19", "dist:20_23", "dist:24_28", "dist:29_33",
                     "dist:34_39"]
    assert d.xs("base", level="variant")["n"].tolist() == [5, 5, 5, 5, 4, 5, 5, 6]
    assert d.loc[("base", "dist:10_14"), "value"] == pytest.approx(3 / 5)  # 10, 12, 14 right
    assert d.loc[("base", "dist:20_23"), "value"] == pytest.approx(2 / 4)  # 20, 22
    # the plot's table bins the same records the same way (one binning function)
    s = data.samples
    plotted = distance_table(s[s["task"] == "colour"], "n_filler")
    assert sorted(set(plotted["band"])) == sorted(bands)
    assert {band_of(lab) for lab in plotted["label"]} == set(bands)


def test_no_declared_distance_no_rows(make_run: Callable[..., Path]) -> None:
    data = load_run(make_run("plain", tasks=("colour",), n_samples=6, attention=False,
                             metadata=lambda task, i: {"n_filler": i}))
    assert (build_summary(data).rows["kind"] != "distance").all()  # built-in registry: no "colour" task


def test_report_cli_writes_distance_rows_and_tables(make_run: Callable[..., Path], tmp_path: Path) -> None:
    run = _run(make_run, tmp_path)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(run / "metrics.csv")
    d = _dist(rows)
    assert d.loc[("pvm", "dist:12"), "diff"] == 1.0 and d.loc[("base", "dist:12"), "value"] == 0.0
    md = (run / "summary.md").read_text()
    section = md.split("## Accuracy by N (filler numbers)\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| task | variant | 0 | 4 | 8 | 12 |"  # bins in numeric order
    assert lines[1] == ("| colour | base | 1.000 [0.722, 1.000] (10†) | 0.000 [0.000, 0.278] (10†) "
                        "| 1.000 [0.722, 1.000] (10†) | 0.000 [0.000, 0.278] (10†) |")
    assert lines[3].startswith(
        "| colour | Δ pvm − base | +0.000 [-0.278, +0.278] (10†) | +1.000 [+0.608, +1.000] (10†)"
    )
    # the Metrics intro states the intervals the rows really carry
    metrics = md.split("## Metrics\n", 1)[1].split("\n## ", 1)[0]
    assert "95% bootstrap CI" not in metrics and "Wilson score interval for 0/1 units" in metrics
    assert "Newcombe's paired interval for 0/1 pairs" in metrics
    page = (run / "report.html").read_text()
    assert "Accuracy by N (filler numbers)" in page and 'id="distance-table-0"' in page
    assert "95% bootstrap CI over the metric" not in page and "Wilson score interval for 0/1 units" in page
    assert (run / "plots" / "accuracy_vs_distance.png").is_file()
