"""Per-sample decay curves: n per step, binned CIs over samples, fixed cohorts, band summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pvm_bench.report.curves import (
    band_decay,
    binned_curve,
    fixed_cohort,
    log_bin_edges,
    sample_curves,
    step_curve,
    suggest_cohort_t,
)
from pvm_bench.report.fit import decay_law


def _rows(lengths: list[int], level: list[float], layers: int = 2, task: str = "t") -> pd.DataFrame:
    """Visual rows for samples with the given lengths; sample i's mass = level[i] + 1/(10 + t),
    layer l adds +-0.01 (so the band mean is exact); step 0 (prompt) rows are included."""
    frames = []
    for i, (n, lv) in enumerate(zip(lengths, level)):
        steps = np.arange(0, n + 1)
        for layer in range(layers):
            frames.append(pd.DataFrame({
                "task": task, "sample_id": f"s{i}", "repeat": 0, "step": steps, "layer": layer,
                "visual_mass": lv + decay_law(np.maximum(steps, 1), 0.0, 1.0, 10.0) + (0.01 if layer else -0.01),
            }))
    return pd.concat(frames, ignore_index=True)


def test_sample_curves_average_layers_and_drop_the_prompt() -> None:
    ps = sample_curves(_rows([5, 3], [0.1, 0.2]))
    assert len(ps) == 8 and ps["step"].min() == 1
    first = ps[(ps["sample_id"] == "s0") & (ps["step"] == 1)]["mass"].item()
    assert first == pytest.approx(0.1 + 1 / 11)
    only_layer1 = sample_curves(_rows([5], [0.1]), layers=[1])
    assert only_layer1["mass"].iloc[0] == pytest.approx(0.1 + 1 / 11 + 0.01)


def test_step_curve_counts_survivors_and_cohort_removes_them() -> None:
    ps = sample_curves(_rows([40, 20, 10], [0.3, 0.2, 0.1]))
    curve = step_curve(ps)
    assert curve.set_index("step")["n"].loc[[1, 10, 11, 20, 21, 40]].tolist() == [3, 3, 2, 2, 1, 1]
    # the mean curve jumps up when the low-level short samples stop: survivor bias in one line
    assert curve.set_index("step")["mass"].loc[11] > curve.set_index("step")["mass"].loc[10]
    cohort = fixed_cohort(ps, 20)
    assert sorted(cohort["sample_id"].unique()) == ["s0", "s1"] and cohort["step"].max() == 20
    assert (step_curve(cohort)["n"] == 2).all()
    assert fixed_cohort(ps, 100).empty
    assert suggest_cohort_t(ps) == 16  # 2 of 3 samples reached 20 -> largest power of two 16


def test_binned_curve_ci_is_over_samples() -> None:
    rng = np.random.default_rng(0)
    lv = list(0.05 + 0.02 * rng.standard_normal(30))
    ps = sample_curves(_rows([64] * 30, lv, layers=1))
    b = binned_curve(ps, edges=np.array([1.0, 9.0, 65.0]))
    assert b["n"].tolist() == [30, 30]
    first = b.iloc[0]
    # per-sample bin means, then mean +- t * sd / sqrt(n) over the 30 samples
    per = ps[ps["step"] < 9].groupby("sample_id")["mass"].mean()
    half = 2.045229642132703 * per.std(ddof=1) / np.sqrt(30)  # t(0.975, 29)
    assert first["mass"] == pytest.approx(per.mean())
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((per.mean() - half, per.mean() + half))
    assert 1 <= first["step"] < 9 and (first["t_lo"], first["t_hi"]) == (1, 8)
    lone = binned_curve(sample_curves(_rows([10], [0.1], layers=1)))
    assert lone["ci_low"].isna().all()  # one sample: no interval, not a zero-width one


def test_band_decay_wide_columns() -> None:
    rng = np.random.default_rng(1)
    lengths = [int(x) for x in rng.integers(80, 300, 40)]
    bd = band_decay(_rows(lengths, [0.05] * 40), layers=[0, 1])
    w = bd.wide("all")
    assert w["fit_all_method"] == "per_sample" and w["fit_all_n_samples"] == 40 and w["fit_all_flags"] == ""
    assert (w["fit_all_a"], w["fit_all_b"], w["fit_all_c"]) == pytest.approx((0.05, 1.0, 10.0), rel=1e-3)
    assert w["n_all_t64"] == 40 and w["mass_all_t64"] == pytest.approx(0.05 + 1 / 74, rel=0.01)
    assert w["n_all_t256"] == sum(n >= 243 for n in lengths) > 0  # reached the +-5% window of 256
    assert w["n_all_t1024"] == 0 and np.isnan(w["mass_all_t1024"])
    assert w["half_life_all_fit_extrapolated"] is False
    assert w["half_life_all_fit_ci_low"] <= w["half_life_all_fit"] <= w["half_life_all_fit_ci_high"]
    assert (
        band_decay(_rows(lengths, [0.05] * 40), layers=None, bootstrap=False).wide("all")["half_life_all_fit_ci_low"]
        != w["half_life_all_fit_ci_low"]
    )  # NaN without the bootstrap
    cohort = band_decay(_rows(lengths, [0.05] * 40), layers=None, cohort_t=64)
    assert cohort.cohort_t == 64 and cohort.fit.t_max == 64 and cohort.fit.n_samples == 40


def test_binned_curve_runs_path_equals_the_groupby_path() -> None:
    """The aggregates' frames (one integer key, sorted runs) take the O(rows) path; the same rows
    keyed by text take pandas' groupby: the curves agree to float precision."""
    rng = np.random.default_rng(5)
    lengths = np.minimum(rng.lognormal(np.log(60), 1.0, 80).astype(int) + 1, 3000)
    gen = np.repeat(np.arange(80) * 2 + 1, lengths).astype(np.int32)
    step = np.concatenate([np.arange(1, k + 1) for k in lengths]).astype(np.int32)
    zeros = np.zeros(step.size, dtype=np.int8)
    fast = pd.DataFrame({"task": gen, "sample_id": zeros, "repeat": zeros, "step": step, "mass": rng.random(step.size)})
    slow = fast.assign(sample_id=gen.astype(str), task="t")
    edges = log_bin_edges(int(step.max()))
    a, b = binned_curve(fast, edges), binned_curve(slow, edges)
    assert len(a) == len(b) > 10
    for col in ("bin", "t_lo", "t_hi", "n"):
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
    for col in ("step", "mass", "ci_low", "ci_high"):
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-12, equal_nan=True)
