"""A fix entered through the library API as a registry part (``session.variant(VARIANTS["pai"])``)
is base + fix, as its spec ``pai`` is: the PVM branch is off inside it (issue 23 item 1's rule, at
the session, where it used to run the fix on the model as loaded, adapter on)."""

from __future__ import annotations

import pytest

from pvm_bench.organism import default_run_options
from pvm_bench.session import GenerationSession
from pvm_bench.variants import VARIANTS


@pytest.fixture(scope="module")
def organism_with_adapter():
    from pvm_bench import load_model

    opts = default_run_options()
    lm = load_model(opts["model"], pvm=opts["pvm"], dtype="float32", device="cpu")
    assert lm.pvm is not None and lm.pvm.enabled
    return lm


@pytest.mark.parametrize("part", ["reinject", "blind", "base"])
def test_a_bare_registry_part_runs_with_the_branch_off(organism_with_adapter, part):
    lm = organism_with_adapter
    with GenerationSession(lm) as session, session.variant(VARIANTS[part]) as variant:
        assert not lm.pvm.enabled
        assert variant.composition is not None and variant.composition.branch == "base"
        assert session.composition == variant.composition.canonical()
        assert session.composition.split("+")[0] == "base" and session.composition.count(part) == 1
    assert lm.pvm.enabled


def test_the_pvm_part_keeps_the_branch_on(organism_with_adapter):
    lm = organism_with_adapter
    with GenerationSession(lm) as session, session.variant(VARIANTS["pvm"]):
        assert lm.pvm.enabled and session.composition == "pvm"
