"""Plots: which figures are drawn from which data, and the numbers behind them."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_synth import describe_tasks, write_distance_plugin

from pvm_bench.report import build_summary, load_run
from pvm_bench.report.distance import distance_groups as _distance_groups
from pvm_bench.report.fit import DecayFit, fit_decay
from pvm_bench.report.plots import distance_keys, make_plots, plot_accuracy_vs_distance
from pvm_bench.report.plots_attention import _fit_label, law_text, plot_heatmap


def _with_signals(run: Path) -> None:
    """Add branch-probe columns (pvm rows only) to the run's attention.parquet."""
    a = pd.read_parquet(run / "attention.parquet")
    is_pvm = (a["variant"] == "pvm") & (a["layer"] % 3 == 1)
    a["pvm_ratio"] = np.where(is_pvm, 0.2 + 0.01 * a["layer"], np.nan).astype("float32")
    a["pvm_gate"] = np.where(is_pvm, 0.5, np.nan).astype("float32")
    a.to_parquet(run / "attention.parquet", index=False)


def test_make_plots_writes_every_plot_the_data_support(make_run: Callable[..., Path], tmp_path: Path) -> None:
    run = make_run(n_samples=12, max_len=120)
    _with_signals(run)
    data = load_run(run)
    s = data.samples  # per-record distance metadata, in memory
    s["metadata"] = [{"n_filler": int(sid.split("-")[1]) % 12} for sid in s["sample_id"]]
    summary = build_summary(data)
    plots = make_plots(data, summary, tmp_path / "p", distance={"colour": ("n_filler", "N")})
    assert set(plots) == {
        "decay",
        "decay_cohort",
        "heatmap",
        "pvm_signals",
        "accuracy_vs_length",
        "accuracy_vs_distance",
        "accuracy_by_task",
    }
    for path in plots.values():
        with Image.open(path) as im:
            assert im.size[0] > 500 and im.size[1] > 300
    # without branch-probe columns or declared distances those two plots are left out
    plain = load_run(make_run("plain", n_samples=4, max_len=40))
    assert set(make_plots(plain, build_summary(plain), tmp_path / "q", distance={})) == {
        "decay", "decay_cohort", "heatmap", "accuracy_vs_length", "accuracy_by_task"}


def test_heatmap_adds_a_difference_panel_per_variant(make_run: Callable[..., Path], tmp_path: Path) -> None:
    two = load_run(make_run("two", variants=("base", "pvm"), n_samples=6, max_len=60))
    one = load_run(make_run("one", variants=("base",), n_samples=6, max_len=60))
    with Image.open(plot_heatmap(two, two.variants, tmp_path / "two.png")) as a, \
            Image.open(plot_heatmap(one, one.variants, tmp_path / "one.png")) as b:
        # base, pvm, pvm - base vs base alone: three panels stacked (800 px wide, issue 21)
        assert a.size[1] / b.size[1] > 2.0 and a.size[0] == b.size[0]


def test_distance_groups_values_or_equal_count_bins() -> None:
    few = pd.Series([0, 4, 4, 16, np.nan])
    group, labels = _distance_groups(few)
    assert group.tolist()[:4] == [0, 1, 1, 2] and math.isnan(group.iloc[4])
    assert labels == {0: "0", 1: "4", 2: "16"}
    many = pd.Series(np.arange(64, dtype=float))
    group, labels = _distance_groups(many)
    counts = group.value_counts().sort_index()
    assert len(counts) == 8 and counts.min() >= 7 and counts.max() <= 9  # equal-count bins
    assert labels[0].startswith("0–") and labels[max(labels)].endswith("–63")


def test_distance_keys_come_from_the_task_declaration(make_run: Callable[..., Path], tmp_path: Path) -> None:
    plugins = write_distance_plugin(tmp_path)
    run = make_run(tasks=("colour",), n_samples=6, max_len=60)
    describe_tasks(run, [str(plugins)], {"colour": {f"colour-{i}": {} for i in range(6)}})
    data = load_run(run)
    assert distance_keys(data) == {"colour": ("n_filler", "N (filler numbers)")}
    (run / "tasks.json").unlink()
    assert distance_keys(data) == {}  # the built-in "colour" name does not exist: no distance, no error
    assert plot_accuracy_vs_distance(data, data.variants, tmp_path / "d.png") is None


def test_fit_labels_carry_flags_and_extrapolation() -> None:
    t = np.arange(1, 60)
    slow = fit_decay(t, 0.01 + 5.0 / (80.0 + t))
    label = _fit_label("pvm", slow)
    assert "(extrapolated)" in label and label.startswith("pvm: 0.010 + 5.000/(t + 80.0)")
    neg = DecayFit(-0.02, 1.0, -0.5, 0.3, 10, 100, True, c_bounds=(-0.999, 1000.0))
    assert law_text(neg) == "-0.020 + 1.000/(t − 0.5)"
    assert "⚑ a_negative, r2_low" in _fit_label("base", neg)


def test_pvm_signals_absent_without_rows(make_run: Callable[..., Path], tmp_path: Path) -> None:
    from pvm_bench.report.plots_attention import plot_pvm_signals

    run = make_run(n_samples=4, max_len=40)
    a = pd.read_parquet(run / "attention.parquet")
    a.assign(pvm_ratio=np.full(len(a), np.nan, dtype="float32")).to_parquet(run / "attention.parquet", index=False)
    data = load_run(run)
    assert plot_pvm_signals(data, data.variants, tmp_path / "s.png") is None


def test_cohort_plot_uses_one_t_for_every_variant(make_run: Callable[..., Path], tmp_path: Path) -> None:
    from pvm_bench.report.curves import sample_curves, suggest_cohort_t
    from pvm_bench.report.plots_attention import plot_decay_cohort

    data = load_run(make_run(n_samples=6, max_len=100))
    vis = data.attention
    assert suggest_cohort_t(sample_curves(vis[vis["variant"] == "base"])) == 32  # lengths 20..99
    assert plot_decay_cohort(data, data.variants, tmp_path / "c.png") is not None
    assert plot_decay_cohort(data, data.variants, tmp_path / "none.png", cohort_t=10_000) is not None  # empty cohort


def test_heatmap_difference_is_paired_by_sample(make_run: Callable[..., Path]) -> None:
    """pvm = base + 0.01 on every sample, but pvm stops the high-level sample early: the paired
    difference is exactly +0.01 everywhere, a difference of unpaired means would not be. The bins
    are the fixed HEATMAP_EDGES (up to the longest output), whatever the run."""
    from pvm_bench.report.attention_agg import HEATMAP_EDGES

    frames = []
    for variant, offset, lengths in (("base", 0.0, (40, 40)), ("pvm", 0.01, (40, 10))):
        for i, (level, n) in enumerate(zip((0.1, 0.5), lengths)):
            steps = np.arange(1, n + 1)
            frames.append(pd.DataFrame({"variant": variant, "task": "t", "sample_id": f"s{i}", "repeat": 0,
                                        "step": steps, "layer": 0, "visual_mass": level + offset}))
    run = make_run("paired", tasks=("t",), n_samples=2, max_len=60, attention=False)
    pd.concat(frames, ignore_index=True).to_parquet(run / "attention.parquet", index=False)
    heat = load_run(run).agg.heatmap  # type: ignore[union-attr]
    assert heat is not None and heat.layers == [0]
    assert np.array_equal(heat.edges, HEATMAP_EDGES[: len(heat.edges)]) and heat.edges[-2] <= 40 < heat.edges[-1]
    paired = heat.diffs["pvm"]
    assert np.isfinite(paired).sum() == len(heat.edges) - 1 and np.nanmax(np.abs(paired - 0.01)) < 1e-12
    unpaired = heat.grids["pvm"] - heat.grids["base"]
    assert np.nanmin(unpaired) < -0.1  # the tail lost the high sample


def test_accuracy_vs_length_has_one_panel_per_task(make_run: Callable[..., Path], tmp_path: Path) -> None:
    from pvm_bench.report.plots import plot_accuracy_vs_length

    three = load_run(make_run("three", tasks=("a", "b", "c"), n_samples=6, max_len=60, attention=False))
    one = load_run(make_run("one", tasks=("a",), n_samples=6, max_len=60, attention=False))
    with Image.open(plot_accuracy_vs_length(three, three.variants, tmp_path / "3.png")) as a, \
            Image.open(plot_accuracy_vs_length(one, one.variants, tmp_path / "1.png")) as b:
        assert a.size[0] == pytest.approx(3 * b.size[0], rel=0.02)  # tasks are not pooled
