"""A probe written outside pvm-bench: one class + one registry line, seen end to end through the CLI.

The probe below reads the instrument's ``layers.{i}.ffn_in`` site (the residual stream before the
FFN) and the shared step counter, and records its L2 norm at the current query per step and
layer. Registered through the public registry (and, separately, through an entry point), its
column must reach ``attention.parquet`` and the run's summary (``summary.csv`` and the metric
rows in ``metrics.csv``).
"""

from __future__ import annotations

import math
from importlib import metadata
from typing import Any

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from pvm_bench.attention_store import read_store
from pvm_bench.cli import app
from pvm_bench.instrument import instrument_for
from pvm_bench.probes.base import BatchContext, Probe
from pvm_bench.probes.registry import PROBES, make_probes, register_probe


class ResidNormProbe(Probe):
    """``resid_norm``: ||h|| of the residual before the FFN at the current query, per step and layer."""

    name = "resid_norm"

    def install(self, model: Any) -> None:
        inst = instrument_for(model)
        self.state = inst.state
        self.release = inst.acquire()
        self.handles = [inst.sites.hook(f"layers.{i}.ffn_in", self._hook(i), pre=True) for i in range(inst.num_layers)]

    def _hook(self, layer: int):
        def pre(module: torch.nn.Module, args: tuple) -> None:
            if self.active and not self.state.bypass:
                self.seen.append((self.state.step, layer, args[0][:, -1].float().norm(dim=-1)))

        return pre

    def uninstall(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.release()

    def begin_batch(self, ctx: BatchContext) -> None:
        self.active, self.seen = True, []

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        self.active = False
        return [
            [{"step": s, "layer": la, "resid_norm": float(v[row])} for s, la, v in self.seen if s < n]
            for row, n in enumerate(n_generated)
        ]


def make_resid_norm(per_head: bool = False) -> ResidNormProbe:
    return ResidNormProbe()


@pytest.fixture
def registered():
    register_probe("resid_norm", make_resid_norm)  # the one registry line
    yield
    PROBES.unregister("resid_norm")


def test_registered_probe_reaches_parquet_and_summary(registered, tiny_qwen3_vl, fixture_data, tmp_path):
    result = CliRunner().invoke(app, [
        "run", "--quiet", "--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--data-dir", str(fixture_data),
        "--out", str(tmp_path), "--run-id", "plugin", "--max-new-tokens", "5", "--limit", "2",
        "--probes", "attention,resid_norm",
    ])
    assert result.exit_code == 0, result.output
    run = tmp_path / "plugin"
    frame = read_store(run)
    assert {"visual_mass", "resid_norm"} <= set(frame.columns)
    norms = frame.dropna(subset=["resid_norm"])
    n_layers = int(frame["layer"].max()) + 1
    # one value per (sample, step, layer), on the same rows as the attention probe's records
    assert len(norms) == len(frame.dropna(subset=["visual_mass"])) and len(norms) % n_layers == 0
    assert (norms["resid_norm"] > 0).all() and norms["resid_norm"].map(math.isfinite).all()
    summary = pd.read_csv(run / "summary.csv")
    assert "mean_resid_norm" in summary.columns and (summary["mean_resid_norm"] > 0).all()
    rows = pd.read_csv(run / "metrics.csv")
    probe_rows = rows[(rows["metric"] == "resid_norm") & (rows["kind"] == "probe")]
    assert len(probe_rows) >= 1 and (probe_rows["value"] > 0).all()


def test_entry_point_probe_is_found(monkeypatch):
    """A third-party distribution declares ``[project.entry-points."pvm_bench.probes"]``."""
    ep = metadata.EntryPoint(name="ep_resid_norm", value=f"{__name__}:make_resid_norm", group="pvm_bench.probes")
    real = metadata.entry_points

    def entry_points(**kwargs: Any) -> Any:
        return [ep] if kwargs.get("group") == "pvm_bench.probes" else real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    monkeypatch.setattr(PROBES, "_entry_points_loaded", False)
    try:
        assert "ep_resid_norm" in PROBES
        (probe,) = make_probes(["ep_resid_norm"])
        assert isinstance(probe, ResidNormProbe)
    finally:
        PROBES.unregister("ep_resid_norm")
