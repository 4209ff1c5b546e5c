"""``blind:after=K`` on tiny models of every family (issue 15, item 1).

With a PVM branch attached (gate 0.5, so it changes the outputs):
- at every step >= K the attention probe's visual_mass is exactly 0 in every layer and row, and
  the PVM branch is not evaluated (its observers see no call);
- steps < K are bit-identical to the un-ablated ``pvm`` variant (logits, tokens, probe records);
- ``blind:after=`` beyond max_new_tokens is bit-identical to ``pvm`` altogether;
- ``base+blind:after=K`` composes (PVM stays off everywhere).
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers import GenerationConfig

from pvm_bench.attention_store import read_store
from pvm_bench.fixes.blind import ablated_name
from pvm_bench.instrument import instrument_for
from pvm_bench.models.generation import Request, encode, generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.pvm.attach import attach_pvm
from pvm_bench.testing import TINY_RECIPES
from pvm_bench.variants import VariantError, resolve_variants

FAMILIES = sorted(TINY_RECIPES)
N = 8


def _requests() -> list[Request]:
    out = []
    for text, size, colour in (("Colour?", (32, 32), (200, 30, 30)),
                               ("Describe the picture in detail, please.", (64, 48), (20, 30, 200))):
        parts = [{"type": "image"}, {"type": "text", "text": text}]
        out.append(Request(messages=[{"role": "user", "content": parts}], images=[Image.new("RGB", size, colour)]))
    return out


@pytest.fixture(scope="module", params=FAMILIES)
def family_lm(request, tiny_model):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tiny_model(request.param, seed=1, init_std=0.2, name=request.param)  # the probe tests' models
    lm = load_model(str(path))
    tc = lm.hf_model.config.get_text_config()
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    attach_pvm(lm, layers=[0, 1], hidden_size=2 * head_dim, seed=3, gate=0.5)
    probe = AttentionProbe()
    probe.install(lm)
    yield request.param, lm, probe
    probe.uninstall()
    torch.set_num_threads(before)


def _run(lm, probe, spec: str):
    """(logits [steps, B, V], generations with probe records, PVM-branch steps seen) under ``spec``."""
    (variant,) = resolve_variants([spec])
    state = instrument_for(lm).state
    branch_steps: list[int] = []
    remove = lm.pvm.add_observer(lambda layer, h, out: branch_steps.append(state.step) if out is not None else None)
    try:
        with variant.active(lm):
            enc, _ = encode(lm, _requests())
            config = GenerationConfig(max_new_tokens=N, do_sample=False, num_beams=1, eos_token_id=None,
                                      pad_token_id=lm.tokenizer.pad_token_id,
                                      suppress_tokens=lm.suppress_token_ids() or None)
            with torch.inference_mode():
                out = lm.hf_model.generate(**enc, generation_config=config, output_logits=True,
                                           return_dict_in_generate=True)
            gens = generate(lm, _requests(), max_new_tokens=N, probes=[probe])
    finally:
        remove()
    assert lm.pvm.enabled  # the variant left the branch as it found it
    return torch.stack(out.logits), gens, branch_steps


def _records(gens, below: int | None = None, at_least: int | None = None):
    out = []
    for g in gens:
        for r in g.probe_records["attention"]:
            if (below is None or r["step"] < below) and (at_least is None or r["step"] >= at_least):
                out.append({k: (None if v != v else v) for k, v in r.items()})  # NaN == NaN here
    return out


@pytest.mark.parametrize("after", [0, 3])
def test_blind_after_k(family_lm, after):
    family, lm, probe = family_lm
    ref_logits, ref_gens, ref_branch = _run(lm, probe, "pvm")
    assert ref_branch and max(ref_branch) == N - 1  # the branch works at every step un-ablated
    logits, gens, branch = _run(lm, probe, ablated_name("pvm", after))
    # steps < K: bit-identical
    assert torch.equal(logits[:after], ref_logits[:after]), family
    for g, r in zip(gens, ref_gens):
        assert g.token_ids[:after] == r.token_ids[:after], family
    assert _records(gens, below=after) == _records(ref_gens, below=after)
    # steps >= K: no image at all
    blind = _records(gens, at_least=after)
    assert blind and all(r["visual_mass"] == 0.0 for r in blind), family
    assert _records(ref_gens, at_least=after) and any(r["visual_mass"] > 0 for r in _records(ref_gens, at_least=after))
    assert all(step < after for step in branch), (family, branch)
    assert not torch.equal(logits, ref_logits)  # the ablation changes something


def test_blind_beyond_the_output_is_identical_and_base_composes(family_lm):
    family, lm, probe = family_lm
    ref_logits, ref_gens, _ = _run(lm, probe, "pvm")
    logits, gens, branch = _run(lm, probe, ablated_name("pvm", N))
    assert torch.equal(logits, ref_logits), family
    assert [g.token_ids for g in gens] == [g.token_ids for g in ref_gens]
    assert _records(gens) == _records(ref_gens)
    assert branch and max(branch) == N - 1
    base_logits, _, _ = _run(lm, probe, "base")
    b_logits, b_gens, b_branch = _run(lm, probe, "base+blind:after=2")
    assert b_branch == [] and torch.equal(b_logits[:2], base_logits[:2])
    assert all(r["visual_mass"] == 0.0 for r in _records(b_gens, at_least=2))


def test_names_and_parameters():
    assert ablated_name("pai:alpha=0.2", 0) == "pai:alpha=0.2+blind:after=0"
    (v,) = resolve_variants(["blind"])
    assert v.name == "blind" and "text-only" in v.description
    with pytest.raises(VariantError, match="after must be >= 0"):
        resolve_variants(["blind:after=-1"])
    with pytest.raises(VariantError, match="unknown variant 'nope'"):
        resolve_variants(["pvm+nope"])
    (c,) = resolve_variants(["pvm+blind:after=2"])
    assert c.requires_pvm and c.name == "pvm+blind:after=2"


def test_cli_ablate_after_adds_blind_variants_and_per_image(tiny_qwen3_vl, fixture_data, tmp_path):
    import json

    from typer.testing import CliRunner

    from pvm_bench.cli.main import app
    from pvm_bench.results import read_jsonl

    result = CliRunner().invoke(app, [
        "run", "--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--data-dir", str(fixture_data),
        "--ablate-after", "0,4", "--per-image", "--limit", "2", "--max-new-tokens", "6", "--quiet",
        "--out", str(tmp_path), "--run-id", "ab",
    ])
    assert result.exit_code == 0, result.output
    run = tmp_path / "ab"
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["ablate_after"] == [0, 4] and config["per_image"] is True
    variants = {r["variant"] for r in read_jsonl(run / "samples.jsonl")}
    assert variants == {"base", "base+blind:after=0", "base+blind:after=4"}
    attn = read_store(run)
    assert "visual_mass_img0" in attn.columns
    blind = attn[(attn["variant"] == "base+blind:after=4") & (attn["step"] >= 4)]
    assert len(blind) and (blind["visual_mass"] == 0).all() and (blind["visual_mass_img0"] == 0).all()
    assert "## Visual dependence" in (run / "summary.md").read_text()
    bad = CliRunner().invoke(app, ["run", "--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--data-dir",
                                   str(fixture_data), "--ablate-after", "0,x", "--out", str(tmp_path)])
    assert bad.exit_code == 2
    errors = [line for line in bad.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--ablate-after" in errors[0], bad.output


def test_ablate_after_blinds_every_variant_not_already_blinded_by_its_parts():
    """A plugin fix whose name merely contains "blind" is still ablated; a blinded composition is not."""
    from pvm_bench.config import RunConfig

    config = RunConfig(model="m", tasks=["t"], variants=["base", "unblinder", "base+blind:after=2"], ablate_after=[4])
    assert config.resolved_variants() == [
        "base", "unblinder", "base+blind:after=2", "base+blind:after=4", "unblinder+blind:after=4",
    ]


@pytest.mark.parametrize(("variant", "prefix"), [("blind:after=1", "blind:after=1: "), ("pai", "PAI: ")])
def test_no_attention_site_is_one_variant_error_line(variant, prefix, monkeypatch, tmp_path):
    """On the organism, a model whose text decoder does not dispatch through AttentionInterface:
    ``blind:after``, like ``pai``, stops with one line naming the variant and why, exit 2."""
    from transformers import Qwen3VLForConditionalGeneration
    from typer.testing import CliRunner

    from pvm_bench.cli import app

    monkeypatch.setattr(Qwen3VLForConditionalGeneration, "_can_set_attn_implementation", classmethod(lambda cls: False))
    result = CliRunner().invoke(app, ["run", "--variants", variant, "--limit", "1", "--max-new-tokens", "2",
                                      "--probes", "", "--maps", "0", "--no-report", "--quiet",
                                      "--out", str(tmp_path), "--run-id", "r"])
    assert result.exit_code == 2, result.output
    assert [line for line in result.output.splitlines() if line.strip()] == [
        f"error: {prefix}Qwen3-VL: Qwen3VLForConditionalGeneration does not dispatch attention through transformers' "
        "AttentionInterface, so the attention site cannot be installed"]
