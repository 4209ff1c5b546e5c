"""Plots that do not mislead (issue 21 item 3): the heatmap fits an 800 px page, a one-record length
bucket is not joined to its neighbours, the cohort legend leaves the points visible."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from pvm_bench.report.plots import _ci_points
from pvm_bench.report.plots_attention import plot_heatmap
from pvm_bench.report.rundata import load_run
from pvm_bench.report.stats import accuracy_ci


def test_heatmap_stacks_panels_so_an_800px_page_shows_it_unshrunk(make_run: Callable[..., Path], tmp_path: Path):
    two = load_run(make_run("two", variants=("base", "pvm"), n_samples=6, max_len=60))
    one = load_run(make_run("one", variants=("base",), n_samples=6, max_len=60))
    with Image.open(plot_heatmap(two, two.variants, tmp_path / "two.png")) as a, \
            Image.open(plot_heatmap(one, one.variants, tmp_path / "one.png")) as b:
        assert a.size[0] <= 800 and b.size[0] <= 800  # 2024 px side by side before
        assert a.size[1] / b.size[1] > 2.0  # base, pvm and pvm − base, one per row


def test_a_one_record_bucket_is_a_lone_point_not_a_jump():
    fig, ax = plt.subplots()
    cis = [accuracy_ci(np.array([1.0, 0.0] * 20)), accuracy_ci(np.array([0.0] * 30)), accuracy_ci(np.array([1.0]))]
    _ci_points(ax, np.arange(3.0), cis, "C0", "pvm")
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "pvm")
    y = np.asarray(line.get_ydata(), dtype=float)
    assert y[:2].tolist() == [0.5, 0.0] and np.isnan(y[2])  # the n = 1 bucket is not joined
    plt.close(fig)


def test_cohort_legend_is_below_the_axes(make_run: Callable[..., Path], tmp_path: Path):
    from pvm_bench.report.plots_attention import plot_decay_cohort

    run = load_run(make_run("c", tasks=("colour",), n_samples=12, max_len=150))
    captured = {}
    real_save = plt.Figure.savefig

    def spy(fig, *a, **k):
        fig.canvas.draw()
        ax = fig.axes[0]
        captured["legend_top"] = ax.get_legend().get_window_extent().y1
        captured["axes_bottom"] = ax.get_window_extent().y0
        return real_save(fig, *a, **k)

    plt.Figure.savefig = spy  # type: ignore[method-assign]
    try:
        assert plot_decay_cohort(run, run.variants, tmp_path / "c.png", cohort_t=64) is not None
    finally:
        plt.Figure.savefig = real_save  # type: ignore[method-assign]
    assert captured["legend_top"] < captured["axes_bottom"]


def test_per_image_band_is_a_95pct_interval_over_samples():
    import pandas as pd

    from pvm_bench.report.plots_per_image import binned_with_ci

    d = pd.DataFrame({"sample_id": ["a", "a", "b", "b", "c"], "repeat": 0, "step": [1, 2, 1, 2, 9],
                      "mass": [0.1, 0.3, 0.5, 0.7, 0.4]})
    b = binned_with_ci(d, np.array([1, 4, 16]))
    # bin [1, 4): sample means 0.2 and 0.6 -> mean 0.4, sd 0.2828, half 1.96 * sd / sqrt(2); bin [4, 16): one sample
    assert b["mass"].to_numpy() == pytest.approx([0.4, 0.4]) and b["n"].tolist() == [2, 1]
    assert b["half"].iloc[0] == pytest.approx(0.392) and b["half"].iloc[1] == 0  # 1.96 * 0.2828 / 1.4142
