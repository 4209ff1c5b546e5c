"""A training-free fix written outside pvm-bench: one module + one entry point, run through the CLI.

``ImageBoost`` is a complete fix in a few lines on the public API: a frozen config with a
zero-strength default, a writer of the instrument's attention site (a constant logit bonus on
image keys of the last query), ``fix_variant`` for typed ``name:key=value`` parameters. It is
found through the ``pvm_bench.variants`` entry-point group, as a third-party distribution would
declare it, and run next to ``base`` by ``pvm-bench run``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from pvm_bench.attention_store import read_store
from pvm_bench.fixes.base import capture_visual, fix_variant
from pvm_bench.instrument import instrument_for
from pvm_bench.results import read_jsonl
from pvm_bench.variants import VARIANTS


@dataclass(frozen=True)
class ImageBoostConfig:
    bonus: float = 0.0  # logit bonus on image keys; 0 = bit-identical to base


class _Writer:
    def __init__(self, bonus: float) -> None:
        self.bonus = bonus

    def attention_bias(self, layer, query, key, scaling, softcap, state) -> torch.Tensor | None:
        if self.bonus == 0 or state.image_mask is None:
            return None
        img = state.key_image_mask(key.shape[2]).to(query.device)  # [B, n]
        return (self.bonus * img)[:, None, :].expand(query.shape[0], query.shape[1], -1)


@contextlib.contextmanager
def image_boost_active(lm: Any, config: ImageBoostConfig) -> Iterator[None]:
    with capture_visual(lm):
        detach = instrument_for(lm).attention.subscribe(_Writer(config.bonus), write=True)
        try:
            yield
        finally:
            detach()


VARIANT = fix_variant("image_boost", ImageBoostConfig(), lambda c: f"image keys +{c.bonus} logits", image_boost_active)


@pytest.fixture
def entry_point(monkeypatch):
    ep = metadata.EntryPoint(name="image_boost", value=f"{__name__}:VARIANT", group="pvm_bench.variants")
    real = metadata.entry_points

    def entry_points(**kwargs: Any) -> Any:
        return [ep] if kwargs.get("group") == "pvm_bench.variants" else real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    monkeypatch.setattr(VARIANTS, "_entry_points_loaded", False)
    yield
    VARIANTS.unregister("image_boost")


def test_entry_point_fix_runs_through_the_cli(entry_point, tiny_qwen3_vl, fixture_data, tmp_path):
    from pvm_bench.cli.main import app

    result = CliRunner().invoke(app, [
        "run", "--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--data-dir", str(fixture_data),
        "--variants", "base,image_boost,image_boost:bonus=4", "--limit", "2", "--max-new-tokens", "4", "--quiet",
        "--no-report", "--probes", "attention", "--out", str(tmp_path), "--run-id", "plugin",
    ])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "plugin" / "samples.jsonl")
    outputs: dict[str, dict[str, str]] = {}
    for row in rows:
        outputs.setdefault(row["variant"], {})[row["sample_id"]] = row["output"]
    assert set(outputs) == {"base", "image_boost", "image_boost:bonus=4"}
    assert outputs["image_boost"] == outputs["base"]  # zero strength: identical
    mass = read_store(tmp_path / "plugin").groupby("variant")["visual_mass"].mean()
    assert mass["image_boost"] == pytest.approx(mass["base"], abs=1e-6)
    assert mass["image_boost:bonus=4"] > mass["base"] + 0.05  # the bonus reaches the model and the probe
