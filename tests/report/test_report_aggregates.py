"""The report reads attention through DuckDB aggregates, never a pandas frame of every row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pvm_bench.report import build_report, rundata
from pvm_bench.report.rundata import load_run


def test_report_never_loads_every_attention_row(
    make_run: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = make_run(n_samples=6, max_len=60, tasks=("colour",))

    def refuse(*args: object, **kwargs: object) -> pd.DataFrame:
        raise AssertionError("the report read every attention row into pandas")

    monkeypatch.setattr(rundata, "read_attention", refuse)
    build_report(run)
    table = pd.read_csv(run / "summary.csv")
    assert table["fit_all_a"].notna().all() and (run / "plots" / "heatmap.png").exists()


def test_aggregates_are_the_per_step_band_means(make_run: Callable[..., Path]) -> None:
    """``steps`` holds, per generation and step, the mean over each band's layers, as the pandas
    code computed it from the rows (float32 means, equal to one float32 rounding)."""
    run = make_run(n_samples=5, max_len=50, tasks=("colour",), n_layers=6)
    data = load_run(run)
    agg = data.agg
    assert agg is not None and agg.bands["early"] == [0, 1] and agg.bands["late"] == [4, 5]
    rows = pd.read_parquet(run / "attention.parquet")
    n_steps = len(rows.drop_duplicates(["variant", "task", "sample_id", "repeat", "step"]))
    assert len(agg.steps) == n_steps and len(agg.gens) == 10  # one row per (generation, step), not per layer
    early = rows[rows["layer"].isin([0, 1])].groupby(["variant", "task", "sample_id", "repeat", "step"])[
        "visual_mass"].mean().to_numpy(dtype=float)
    assert np.allclose(agg.steps["m_early"].to_numpy(dtype=float), early, rtol=2e-7, atol=0)
    # per (generation, layer) probe sums over generated steps: the visual_mass_norm mean of one scope
    vis = rows[rows["step"] >= 1]
    by_layer = agg.by_layer[agg.by_layer["layer"].notna()]
    assert by_layer["visual_mass_norm|vsum"].sum() / by_layer["visual_mass_norm|vn"].sum() == pytest.approx(
        float(vis["visual_mass_norm"].astype(float).mean()), rel=1e-12)
