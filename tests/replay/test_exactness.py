"""Replayed attention == decode-time attention, at every (step, layer), on every tiny family.

The reference is the decode-time streaming probe (itself tested against eager
``output_attentions`` in tests/probes/test_attention.py) on the same model and outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from pvm_bench.models.generation import generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.probes.lens import LensProbe
from pvm_bench.replay.forward import Output, chunk_cuts, teacher_force
from pvm_bench.replay.probe import ReplayAttentionProbe

from .conftest import FAMILIES, padded, single

TOL = 1e-5
NEW_TOKENS = 10


def decoded_and_replayed(lm, requests, *, chunk: int, per_image: bool = False, boundaries=()):
    probe, lens = AttentionProbe(per_head=True, per_image=per_image), LensProbe()
    probe.install(lm)
    lens.install(lm)
    try:
        gens = generate(lm, requests, max_new_tokens=NEW_TOKENS, probes=[probe, lens])
    finally:
        probe.uninstall()
    replay = ReplayAttentionProbe(per_head=True, per_image=per_image)
    replay.install(lm)
    try:  # the lens probe is the decode-time one: replay hands it each step's processed scores
        outs = [Output(g.text, g.token_ids, g.finish_reason) for g in gens]
        reps = teacher_force(lm, requests, outs, probes=[replay, lens], chunk=chunk, boundaries=boundaries)
    finally:
        replay.uninstall()
        lens.uninstall()
    return gens, reps


def max_diff(gens, reps) -> float:
    """Largest |decode - replay| over every record's masses and lens entropy/margin (counts must be equal)."""
    worst = 0.0
    for g, r in zip(gens, reps):
        a, b = g.probe_records["attention"], r.probe_records["attention"]
        assert [(x["step"], x["layer"]) for x in a] == [(y["step"], y["layer"]) for y in b]
        for x, y in zip(a, b):
            assert (x["n_keys"], x["n_visual"]) == (y["n_keys"], y["n_visual"]), (x, y)
            for key in x:
                if key.startswith(("visual_mass", "sink_mass")) and key != "visual_mass_norm":
                    diff = np.abs(np.asarray(x[key], dtype=float) - np.asarray(y[key], dtype=float))
                    worst = max(worst, float(np.nanmax(diff)))
        a, b = g.probe_records["lens"], r.probe_records["lens"]
        assert [x["step"] for x in a] == [y["step"] for y in b] == list(range(g.n_generated))
        for x, y in zip(a, b):
            worst = max(worst, abs(x["entropy"] - y["entropy"]), abs(x["margin"] - y["margin"]))
    return worst


@pytest.mark.parametrize("family", FAMILIES)
def test_replay_equals_decode_time_probe(family, replay_tiny_dirs):
    lm = load_model(str(replay_tiny_dirs[family]))
    for requests in (single(), padded()):
        gens, reps = decoded_and_replayed(lm, requests, chunk=3)
        assert [r.token_ids for r in reps] == [g.token_ids for g in gens]
        assert max_diff(gens, reps) < TOL, family


def test_per_image_and_one_chunk(replay_tiny_dirs):
    """--per-image columns replay too; one chunk holding the whole output gives the same rows."""
    lm = load_model(str(replay_tiny_dirs["qwen3_vl"]))
    gens, reps = decoded_and_replayed(lm, padded(), chunk=4096, per_image=True)
    assert any("visual_mass_img1" in rec for rec in reps[2].probe_records["attention"])
    assert max_diff(gens, reps) < TOL


def test_chunk_cuts_split_at_blind_step():
    # Prompt of 10 positions, 7 fed output tokens at positions 10..16; step K's row is 9 + K.
    assert chunk_cuts(10, 7, 4) == [10, 14, 17]
    assert chunk_cuts(10, 7, 4, boundaries=[3]) == [10, 12, 14, 17]
    assert chunk_cuts(10, 7, 4, boundaries=[0, 1, 50]) == [10, 14, 17]  # K = 0/1 start at the prefill / first chunk
    assert chunk_cuts(10, 0, 4) == []
    # A score budget of 200 rows x keys: rows shrink as keys grow, never below MIN_ROWS (16).
    cuts = chunk_cuts(10, 200, 64, score_rows=2000)
    assert cuts[0] == 10 and cuts[-1] == 210
    sizes = [b - a for a, b in zip(cuts, cuts[1:])]
    assert sizes[0] == 27 and min(sizes[:-1]) == 16 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("variant", ["pvm", "pvm+blind:after=3", "blind:after=0"])
def test_pvm_and_blind_variants_replay_exactly(replay_tiny_dirs, variant):
    """A live PVM branch (attention and branch probe) and blinding from step K, on a left-padded batch."""
    from pvm_bench.probes.branch import BranchProbe
    from pvm_bench.pvm.attach import attach_pvm
    from pvm_bench.replay.branch import ReplayBranchProbe
    from pvm_bench.replay.plan import plan_for
    from pvm_bench.session import GenerationSession

    lm = load_model(str(replay_tiny_dirs["qwen3_vl"]))
    attach_pvm(lm, layers=[1], hidden_size=32, seed=3, gate=0.5)
    plan = plan_for(variant)
    with GenerationSession(lm, [AttentionProbe(), BranchProbe()]) as session, session.variant(variant):
        gens = session.generate(padded(), max_new_tokens=NEW_TOKENS)
    replay = [ReplayAttentionProbe(), ReplayBranchProbe()]
    with GenerationSession(lm, replay) as session, session.variant(variant):
        outs = [Output(g.text, g.token_ids, g.finish_reason) for g in gens]
        reps = teacher_force(lm, padded(), outs, probes=replay, chunk=4, boundaries=plan.boundaries)
    for g, r in zip(gens, reps):
        for x, y in zip(g.probe_records["attention"], r.probe_records["attention"]):
            assert (x["step"], x["layer"], x["n_keys"]) == (y["step"], y["layer"], y["n_keys"])
            assert abs(x["visual_mass"] - y["visual_mass"]) < TOL and abs(x["sink_mass"] - y["sink_mass"]) < TOL
        a, b = g.probe_records["branch"], r.probe_records["branch"]
        assert [(x["step"], x["layer"]) for x in a] == [(y["step"], y["layer"]) for y in b]
        assert a or variant == "blind:after=0"  # blind from the prefill: the branch never runs
        assert max((abs(x["pvm_ratio"] - y["pvm_ratio"]) for x, y in zip(a, b)), default=0.0) < TOL
    if "blind" in variant:  # blinded steps see no image at all
        after = plan.boundaries[0]
        assert all(rec["visual_mass"] == 0.0 for rep in reps for rec in rep.probe_records["attention"]
                   if rec["step"] >= after)


@pytest.mark.parametrize("variant", ["pai:start_layer=0", "memvr:start=-1:end=2", "reinject:every=2"])
def test_last_row_variants_replay_one_row_per_forward(replay_tiny_dirs, variant):
    """PAI / MemVR / reinject act on the last row of each forward: replayed one row per forward, exactly."""
    from pvm_bench.replay.plan import plan_for
    from pvm_bench.session import GenerationSession

    lm = load_model(str(replay_tiny_dirs["qwen3_vl"]))
    plan = plan_for(variant)
    assert plan.one_row
    with GenerationSession(lm, [AttentionProbe()]) as session, session.variant(variant):
        gens = session.generate(padded(), max_new_tokens=NEW_TOKENS)
    replay = ReplayAttentionProbe()
    with GenerationSession(lm, [replay]) as session, session.variant(variant):
        outs = [Output(g.text, g.token_ids, g.finish_reason) for g in gens]
        reps = teacher_force(lm, padded(), outs, probes=[replay], chunk=1, boundaries=plan.boundaries)
    for g, r in zip(gens, reps):
        a, b = g.probe_records["attention"], r.probe_records["attention"]
        assert [(x["step"], x["layer"]) for x in a] == [(y["step"], y["layer"]) for y in b]
        assert max(abs(x["visual_mass"] - y["visual_mass"]) for x, y in zip(a, b)) < TOL
