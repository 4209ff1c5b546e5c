"""A variant is a resolved composition over the PVM branch state (issue 23 item 1, issue 20 variant names).

End to end on the model organism WITH its shipped PVM adapter (the default ``pvm-bench run``
job): a bare fix is base + fix, so every zero-strength fix equals ``base`` bit for bit (outputs
and the attention probe's visual mass), ``blind:after=K`` equals base before step K, and ``pai``
differs from ``pvm+pai``. Before this change a bare fix ran on the model as loaded (PVM on).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pvm_bench.attention_store import read_store
from pvm_bench.results import read_jsonl
from pvm_bench.variants import VariantError, resolve_composition, resolve_variants

ZERO_STRENGTH = ("pai:alpha=0:gamma=1", "memvr:ratio=0", "reinject:strength=0")
BLIND_AFTER = 4
NEW_TOKENS = 6
VARIANTS = ("base", "pvm", "pai", "pvm+pai", *ZERO_STRENGTH, f"blind:after={BLIND_AFTER}")


@pytest.fixture(scope="module")
def organism_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``pvm-bench run`` of the organism job (adapter loaded: ``--pvm`` is the default)."""
    from pvm_bench.cli.main import app

    out = tmp_path_factory.mktemp("semantics")
    result = CliRunner().invoke(app, [
        "run", "--variants", ",".join(VARIANTS), "--limit", "1", "--max-new-tokens", str(NEW_TOKENS),
        "--probes", "attention", "--no-report", "--quiet", "--out", str(out), "--run-id", "sem",
    ])
    assert result.exit_code == 0, result.output
    return out / "sem"


def _outputs(run: Path) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for row in read_jsonl(run / "samples.jsonl"):
        by.setdefault(row["variant"], []).append(row["output"])
    return by


def _mass(run: Path, variant: str) -> pd.DataFrame:
    frame = read_store(run)
    frame = frame[frame["variant"] == variant].sort_values(["sample_id", "step", "layer"])
    return frame[["sample_id", "step", "layer", "visual_mass"]].reset_index(drop=True)


def test_zero_strength_fixes_equal_base_with_the_adapter_loaded(organism_run):
    outputs = _outputs(organism_run)
    base = _mass(organism_run, "base")
    assert not base.empty
    # The adapter matters on this sample (else the test would not tell base from pvm).
    assert outputs["pvm"] != outputs["base"]
    assert not _mass(organism_run, "pvm")["visual_mass"].equals(base["visual_mass"])
    for spec in ZERO_STRENGTH:
        assert outputs[spec] == outputs["base"], spec
        pd.testing.assert_frame_equal(_mass(organism_run, spec), base, check_exact=True, obj=spec)


def test_blind_equals_base_before_its_step(organism_run):
    base = _mass(organism_run, "base")
    blind = _mass(organism_run, f"blind:after={BLIND_AFTER}")
    before = base["step"] < BLIND_AFTER
    pd.testing.assert_frame_equal(blind[before], base[before], check_exact=True)
    assert (blind[~before]["visual_mass"] == 0).all() and (base[~before]["visual_mass"] > 0).all()


def test_bare_pai_is_base_plus_pai_not_pvm_plus_pai(organism_run):
    outputs = _outputs(organism_run)
    assert outputs["pai"] != outputs["pvm+pai"]
    assert outputs["pvm+pai"] == outputs["pvm"]  # on this sample PAI does not move PVM's greedy tokens
    assert not _mass(organism_run, "pai")["visual_mass"].equals(_mass(organism_run, "pvm+pai")["visual_mass"])


def test_compositions_are_recorded_in_run_json_and_every_record(organism_run):
    run = json.loads((organism_run / "run.json").read_text())
    comps = run["variant_compositions"]
    assert set(comps) == set(VARIANTS)
    assert comps["pai"]["canonical"].startswith("base+pai(alpha=0.2,start_layer=2,")
    assert comps["pvm+pai"]["canonical"].startswith("pvm+pai(alpha=0.2,")
    assert comps["pai"]["fixes"][0]["effective"]["prefill_boosted"] is False  # gamma 1.1: official schedule
    assert comps["memvr:ratio=0"]["fixes"][0]["effective"]["recipe"] == "qwen"  # the organism is a Qwen3-VL
    assert comps["base"] == {"canonical": "base", "branch": "base", "fixes": []}
    for row in read_jsonl(organism_run / "samples.jsonl"):
        assert row["composition"] == comps[row["variant"]]["canonical"]


@pytest.mark.parametrize(("specs", "message"), [
    (["base+pvm"], "'base' and 'pvm' contradict"),
    (["pvm+base"], "'pvm' and 'base' contradict"),
    (["pvm+pvm"], "'pvm' is given twice"),
    (["pai+pai:alpha=0.1"], "fix 'pai' is given twice"),
    (["blind:after=3", "blind:after=03"], "'blind:after=3' and 'blind:after=03' are the same configuration"),
    (["pai", "pai:alpha=0.2:gamma=1.10"], "are the same configuration (base+pai(alpha=0.2,"),
    (["pai", "base+pai"], "are the same configuration"),
    (["blind:after=٣"], "after='٣' is not an integer"),
    (["pai:alpha=0:alpha=5"], "parameter 'alpha' is given twice"),
    (["pai:alpha=1_0"], "alpha='1_0' is not a plain decimal number"),
    (["blind:after=1e12"], "after='1e12' is not an integer"),
    (["pai:prefill=sometimes"], "is not one of official, boost"),
    (["memvr:recipe=glm"], "is not one of auto, llava, qwen"),
    (["pai+"], "empty part"),
])
def test_contradictions_and_duplicates_are_refused_by_resolved_configuration(specs, message):
    with pytest.raises(VariantError) as exc:
        resolve_variants(specs)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_canonical_forms():
    assert resolve_composition("blind:after=03").canonical() == "base+blind(after=3)"
    assert resolve_composition("blind").canonical() == "base+blind(after=0)"
    assert resolve_composition("pvm").canonical() == "pvm"
    assert resolve_composition("memvr+pvm").canonical().startswith("pvm+memvr(")  # the branch is a state, not a step
    assert resolve_composition("pai:alpha=0.50:gamma=1.1").key == resolve_composition("pai:alpha=0.5").key
    (v,) = resolve_variants(["pvm+blind:after=16"])
    assert v.requires_pvm and v.name == "pvm+blind:after=16"
    (bare,) = resolve_variants(["pai"])
    assert not bare.requires_pvm and bare.composition.branch == "base"


def test_cli_refuses_a_duplicate_configuration_with_one_line(tmp_path):
    from pvm_bench.cli.main import app

    result = CliRunner().invoke(app, [
        "run", "--variants", "base,blind:after=3,blind:after=03", "--limit", "1", "--max-new-tokens", "2",
        "--no-report", "--quiet", "--out", str(tmp_path), "--run-id", "dup",
    ])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert len(errors) == 1 and "same configuration (base+blind(after=3))" in errors[0], result.output
    assert not (tmp_path / "dup").exists()


def test_resume_refuses_a_changed_composition(organism_run, tmp_path):
    """A run whose variant meant another composition (e.g. made when a bare fix ran with PVM on)
    is not silently continued under the new meaning."""
    import shutil

    from pvm_bench.cli.main import app

    run = tmp_path / "sem"
    shutil.copytree(organism_run, run)
    record = json.loads((run / "run.json").read_text())
    record["variant_compositions"]["pai"]["canonical"] = "pvm+pai(alpha=0.2)"  # as the old meaning of 'pai'
    (run / "run.json").write_text(json.dumps(record))
    before = (run / "samples.jsonl").read_bytes()
    result = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet", "--no-report"])
    assert result.exit_code == 2, result.output
    assert "variant 'pai' (pvm+pai(alpha=0.2) -> base+pai(alpha=0.2," in result.output
    assert (run / "samples.jsonl").read_bytes() == before


def test_resume_refuses_a_run_recorded_before_compositions(organism_run, tmp_path):
    """A run.json written before compositions were recorded, with the adapter loaded: its bare 'pai'
    ran as pvm + PAI, so continuing it as base + PAI would mix two interventions under one name."""
    import shutil

    from pvm_bench.cli.main import app

    run = tmp_path / "sem"
    shutil.copytree(organism_run, run)
    record = json.loads((run / "run.json").read_text())
    del record["variant_compositions"]
    (run / "run.json").write_text(json.dumps(record))
    before = (run / "samples.jsonl").read_bytes()
    result = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet", "--no-report"])
    assert result.exit_code == 2, result.output
    assert "variant 'pai' (recorded before variant compositions" in result.output
    assert "variant 'pvm+pai'" not in result.output and "variant 'base'" not in result.output
    assert (run / "samples.jsonl").read_bytes() == before


def test_summary_and_report_say_what_each_variant_ran(organism_run, tmp_path):
    """A row labelled 'pai' is read in summary.md/report.html, not run.json: both headers name every
    variant's composition and the decoding (greedy, one generation per sample here)."""
    import html
    import shutil

    from pvm_bench.cli.main import app

    run = tmp_path / "sem"
    shutil.copytree(organism_run, run)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    summary = (run / "summary.md").read_text()
    page = html.unescape((run / "report.html").read_text())
    for text in (summary, page):
        assert "pai = base+pai(alpha=0.2," in text and "pai:alpha=0:gamma=1 = base+pai(alpha=0.0," in text
        assert "protocol default; greedy; 1 generation per sample" in text
    assert "- **variant compositions**: " in summary


def test_compare_flags_a_variant_name_that_ran_another_composition(organism_run, tmp_path):
    """compare pairs variants by name: a run whose 'pai' was pvm + PAI (an older pvm-bench) against one
    where it is base + PAI is flagged, not shown as the same row."""
    import shutil

    from pvm_bench.cli.main import app

    old = tmp_path / "old"
    shutil.copytree(organism_run, old)
    record = json.loads((old / "run.json").read_text())
    del record["variant_compositions"]
    (old / "run.json").write_text(json.dumps(record))
    out = tmp_path / "cmp.md"
    result = CliRunner().invoke(app, ["compare", str(organism_run), str(old), "--output", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "Not the same configuration: variant &#39;pai&#39;" in (tmp_path / "cmp.html").read_text()
    assert "not the same configuration**: variant 'pai': A ran base+pai(alpha=0.2," in text
    assert "B ran 'pai' as an unrecorded composition" in text
    assert "variant 'base'" not in text and "variant 'pvm':" not in text
