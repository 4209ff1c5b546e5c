"""Training-free baselines (PAI, MemVR, periodic re-injection) as run variants.

PAI's guidance and MemVR's algorithm are checked against the reference formulas in
test_pai.py and test_memvr.py; this module checks what all fixes share.

Zero strength must be bit-identical to base (logits and greedy tokens) on a left-padded batch
with different image sizes; default/forced strength must move visual_mass / outputs in the
intended direction (numbers are printed: run with ``-s`` to see them).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import GenerationConfig
from typer.testing import CliRunner

from pvm_bench.models.generation import Request, encode, generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.results import read_jsonl
from pvm_bench.variants import VariantError, resolve_variants

NEW_TOKENS = 8


def _request(text: str, sizes: list[tuple[int, int]]) -> Request:
    images = [Image.new("RGB", s, (40 * i + 30, 200 - 50 * i, 90)) for i, s in enumerate(sizes)]
    parts = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
    return Request(messages=[{"role": "user", "content": parts}], images=images)


def batch() -> list[Request]:
    """Different prompt lengths (left padding) and image sizes."""
    return [
        _request("Colour?", [(32, 32)]),
        _request("Describe the picture in detail, please.", [(96, 64)]),
        _request("Which one is brighter?", [(48, 48)]),
    ]


@pytest.fixture(scope="module")
def small_dir(tiny_model):
    """4 decoder layers, so PAI's default start_layer=2 leaves layers 0-1 untouched (test_pai.py's model)."""
    return tiny_model("qwen3_vl", seed=1, size="small", init_std=0.2, name="small")


@pytest.fixture(scope="module")
def lm(small_dir):
    return load_model(str(small_dir))


def hf_generate(lm) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy ``(sequences, logits [steps, B, V])`` straight from transformers."""
    enc, _ = encode(lm, batch())
    config = GenerationConfig(
        max_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1, eos_token_id=None,
        pad_token_id=lm.tokenizer.pad_token_id, suppress_tokens=lm.suppress_token_ids() or None,
    )
    with torch.inference_mode():
        out = lm.hf_model.generate(**enc, generation_config=config, output_logits=True, return_dict_in_generate=True)
    return out.sequences, torch.stack(out.logits)


def variant_run(lm, spec: str, probe: AttentionProbe | None = None):
    (variant,) = resolve_variants([spec])
    with variant.active(lm):
        seqs, logits = hf_generate(lm)
        gens = generate(lm, batch(), max_new_tokens=NEW_TOKENS, probes=[probe] if probe else [])
    return seqs, logits, gens


def mass_by_layer(gens) -> dict[int, float]:
    by: dict[int, list[float]] = {}
    for g in gens:
        for r in g.probe_records["attention"]:
            by.setdefault(r["layer"], []).append(r["visual_mass"])
    return {layer: float(np.mean(v)) for layer, v in sorted(by.items())}


def hook_counts(lm) -> tuple[int, int]:
    mods = list(lm.hf_model.modules())
    return sum(len(m._forward_pre_hooks) for m in mods), sum(len(m._forward_hooks) for m in mods)


@pytest.fixture(scope="module")
def probed(lm):
    """The attention probe installed as the runner does (variants are entered inside it)."""
    probe = AttentionProbe()
    probe.install(lm)
    yield probe
    probe.uninstall()


@pytest.fixture(scope="module")
def base_run(lm, probed):
    return variant_run(lm, "base", probed)


@pytest.mark.parametrize(
    "spec",
    ["pai:alpha=0:gamma=1", "memvr:ratio=0:threshold=0", "memvr:threshold=1.5:start=0:end=3",
     "reinject:strength=0:every=1"],
)
def test_zero_strength_is_bit_identical_to_base(lm, probed, base_run, spec):
    seqs, logits, gens = variant_run(lm, spec, probed)
    b_seqs, b_logits, b_gens = base_run
    assert torch.equal(seqs, b_seqs)
    assert torch.equal(logits, b_logits)
    assert [g.token_ids for g in gens] == [g.token_ids for g in b_gens]
    assert mass_by_layer(gens) == mass_by_layer(b_gens)


def test_pai_raises_visual_mass_at_layers_from_2_and_composes_with_probe(lm, probed, base_run):
    hooks = hook_counts(lm)
    impl = lm.text_config._attn_implementation
    _, logits, gens = variant_run(lm, "pai:gamma=1", probed)
    base = mass_by_layer(base_run[2])
    pai = mass_by_layer(gens)
    print(f"\nvisual_mass base {base}\nvisual_mass pai  {pai}")
    for layer in base:
        if layer < 2:
            assert pai[layer] == base[layer]
        else:
            assert pai[layer] > base[layer] * 1.1  # alpha 0.2: +14% and +16% on this model
    assert not torch.equal(logits, base_run[1])  # the model output sees the boost, not only the probe
    # Same intervention without the probe (plain sdpa path) gives the same logits.
    probed.uninstall()
    try:
        _, logits_plain, _ = variant_run(lm, "pai:gamma=1")
    finally:
        probed.install(lm)
    torch.testing.assert_close(logits_plain, logits, rtol=1e-5, atol=1e-5)
    assert hook_counts(lm) == hooks and lm.text_config._attn_implementation == impl


def test_memvr_retraces_when_triggered(lm, probed, base_run):
    from pvm_bench.fixes.memvr import MemVRConfig, memvr_active

    base = mass_by_layer(base_run[2])
    hooks = hook_counts(lm)
    with memvr_active(lm, MemVRConfig()):
        gens_default = generate(lm, batch(), max_new_tokens=NEW_TOKENS, probes=[probed])
    with memvr_active(lm, MemVRConfig(threshold=0.0, start=0, end=3)) as stats:
        _, logits = hf_generate(lm)
        gens = generate(lm, batch(), max_new_tokens=NEW_TOKENS, probes=[probed])
    assert hook_counts(lm) == hooks
    forced = mass_by_layer(gens)
    print(f"\nvisual_mass base            {base}\nvisual_mass memvr (default) {mass_by_layer(gens_default)}"
          f"\nvisual_mass memvr (forced)  {forced}\nretraced {stats.retraced}/{stats.forwards} row-forwards "
          f"by layer {stats.by_layer}; max |dlogit| {float((logits - base_run[1]).abs().max()):.4f}")
    assert stats.retraced == stats.forwards > 0  # threshold 0: every row-forward retraces once
    assert set(stats.by_layer) == {2}  # first trigger layer is 1 (0 < L), so layer 2's FFN retraces
    assert not torch.equal(logits, base_run[1])
    assert forced != base


def test_reinject_changes_outputs_every_k_tokens(lm, probed, base_run):
    from pvm_bench.fixes.reinject import ReinjectConfig, reinject_active

    with reinject_active(lm, ReinjectConfig(strength=0.5, every=3)) as stats:
        _, logits = hf_generate(lm)
        gens = generate(lm, batch(), max_new_tokens=NEW_TOKENS, probes=[probed])
    base = mass_by_layer(base_run[2])
    print(f"\nvisual_mass base     {base}\nvisual_mass reinject {mass_by_layer(gens)}; injections {stats.injected}")
    # Logits of step t come from the forward feeding token t-1... the first injection is at
    # decode step 3, so logits of steps 0..2 are untouched and step 3 changes.
    assert torch.equal(logits[:3], base_run[1][:3])
    assert not torch.equal(logits[3], base_run[1][3])
    assert stats.injected == 2 * 3 * 2  # steps 3 and 6, 3 rows, two generate calls


def test_hooks_removed_on_exception(lm):
    hooks = hook_counts(lm)
    impl = lm.text_config._attn_implementation
    for spec in ("pai", "memvr", "reinject"):
        (variant,) = resolve_variants([spec])
        with pytest.raises(RuntimeError, match="boom"), variant.active(lm):
            raise RuntimeError("boom")
        assert hook_counts(lm) == hooks
        assert lm.text_config._attn_implementation == impl


def test_variant_parameters_are_parsed_and_validated():
    (v,) = resolve_variants(["pai:alpha=0.2:start_layer=1"])
    assert v.name == "pai:alpha=0.2:start_layer=1"
    bad_specs = (
        "pai:beta=1", "pai:alpha=x", "base:alpha=1", "pai:alpha", "pai:alpha=-0.1", "pai:alpha=nan",
        "pai:gamma=inf", "pai:gamma=0.5", "pai:cutoff=0", "pai:cutoff=1.5", "pai:start_layer=-1",
        "pai:start_layer=3:end_layer=3", "memvr:ratio=2", "memvr:ratio=nan", "memvr:ratio=-0.1",
        "memvr:threshold=-1", "memvr:threshold=inf", "memvr:start=3:end=4", "memvr:start=-2", "memvr:alpha=0.1",
    )
    for bad in bad_specs:
        with pytest.raises(VariantError) as exc:
            resolve_variants([bad])
        assert "\n" not in str(exc.value)
    with pytest.raises(VariantError, match=r"'pai'.*alpha='nan' is not a plain decimal number"):
        resolve_variants(["pai:alpha=nan"])
    with pytest.raises(VariantError, match=r"'pai'.*alpha must be a finite number >= 0 \(got inf\)"):
        resolve_variants(["pai:alpha=1e309"])  # a plain decimal that overflows to inf
    with pytest.raises(VariantError, match=r"'memvr'.*ratio must be in \[0, 1\] \(got 2.0\)"):
        resolve_variants(["memvr:ratio=2"])


def test_published_defaults():
    from pvm_bench.fixes.memvr import MemVRConfig
    from pvm_bench.fixes.pai import PAIConfig

    assert PAIConfig() == PAIConfig(alpha=0.2, start_layer=2, end_layer=None, gamma=1.1, cutoff=0.1)
    from pvm_bench.fixes.memvr_recipes import RECIPES

    memvr = MemVRConfig()
    assert (memvr.ratio, memvr.threshold, memvr.recipe) == (None, 0.75, "auto")  # ratio: the recipe's
    llava, qwen = RECIPES["llava"], RECIPES["qwen"]
    assert (llava.start, llava.end, llava.ratio, llava.threshold) == (5, 16, 0.12, 0.75)  # eval_scripts/llava/mme.sh
    assert (qwen.start, qwen.end, qwen.ratio, qwen.threshold) == (9, 16, 0.28, 0.75)  # eval_scripts/qwen/mme.sh
    # The reference windows at 32 layers, scaled by depth (floor start, ceil end, >= one layer between).
    assert [llava.window(d) for d in (32, 36, 28, 64, 4, 2)] == [(5, 16), (5, 18), (4, 14), (10, 32), (0, 2), (0, 2)]
    assert [qwen.window(d) for d in (32, 36, 28, 4)] == [(9, 16), (10, 18), (7, 14), (1, 3)]
    assert list(memvr.resolve("llava", 32).trigger_layers(32)) == list(range(6, 16))
    assert list(memvr.resolve("llava", 4).trigger_layers(4)) == [1]
    assert list(memvr.resolve("qwen3_vl", 36).trigger_layers(36)) == list(range(11, 18))
    assert list(memvr.resolve("llava", 2).trigger_layers(2)) == []  # too shallow: L and L+1 must both fit
    assert list(MemVRConfig(start=-1, end=2).resolve("llava", 2).trigger_layers(2)) == [0]
    assert MemVRConfig(ratio=0.5).resolve("qwen3_vl", 36).ratio == 0.5
    (pai,) = resolve_variants(["pai"])
    assert "alpha=0.2" in pai.description and "gamma=1.1" in pai.description
    (mv,) = resolve_variants(["memvr"])
    assert "scaled by depth" in mv.description and "ratio 0.12" in mv.description and "ratio 0.28" in mv.description


def test_cli_runs_base_and_pai(tiny_qwen3_vl, fixture_data, tmp_path):
    from pvm_bench.cli.main import app

    result = CliRunner().invoke(app, [
        "run", "--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--data-dir", str(fixture_data),
        "--variants", "base,pai,pai:alpha=0:gamma=1,memvr:ratio=0", "--limit", "2", "--max-new-tokens", "8", "--quiet",
        "--no-report", "--out", str(tmp_path), "--run-id", "fx",
    ])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "fx" / "samples.jsonl")
    by_variant: dict[str, dict[str, str]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], {})[row["sample_id"]] = row["output"]
    assert set(by_variant) == {"base", "pai", "pai:alpha=0:gamma=1", "memvr:ratio=0"}
    assert all(len(v) == 2 for v in by_variant.values())
    assert by_variant["pai:alpha=0:gamma=1"] == by_variant["base"]
    assert by_variant["memvr:ratio=0"] == by_variant["base"]


def test_memvr_refuses_a_model_too_shallow_for_its_window(tiny_qwen3_vl):
    from pvm_bench.fixes.memvr import MemVRConfig, memvr_active

    tiny = load_model(str(tiny_qwen3_vl))  # 2 layers: no L with 0 < L < 2 and L + 1 < 2
    with pytest.raises(VariantError, match=r"no layer L with 0 < L < 2 .* memvr:start="):
        with memvr_active(tiny, MemVRConfig()):
            pass
    with memvr_active(tiny, MemVRConfig(start=-1, end=2, threshold=0.0)) as stats:
        generate(tiny, batch()[:1], max_new_tokens=2)
    assert stats.by_layer == {1: 2}  # layer 0 triggers, layer 1's FFN retraces, at both forwards


def test_cli_rejects_bad_fix_parameter(tiny_qwen3_vl, fixture_data, tmp_path):
    from pvm_bench.cli.main import app

    result = CliRunner().invoke(app, [
        "run", "--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--data-dir", str(fixture_data),
        "--variants", "base,pai:gamma=inf", "--limit", "1", "--max-new-tokens", "4", "--quiet",
        "--no-report", "--out", str(tmp_path), "--run-id", "bad",
    ])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gamma='inf' is not a plain decimal number" in errors[0], result.output
    assert not (tmp_path / "bad" / "samples.jsonl").exists()
