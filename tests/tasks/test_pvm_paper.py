"""``pvm-paper`` as the PVM paper's Table 1 (issue 23 item 8): the benchmark versions its superscripts
name, ``--protocol pvm-paper`` (lmms-eval inputs, temperature 0.7, 4 repeats), and the published
rows beside the run's in summary.md and report.html, through the CLI on the fixtures."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.models.families import FAMILIES
from pvm_bench.models.protocol import resolve_protocol
from pvm_bench.paper_table import paper_tasks, protocol_run_defaults, published
from pvm_bench.scoring import unfinished_policy_for
from pvm_bench.tasks import get_registry

runner = CliRunner()


def test_published_rows_are_the_table_and_name_the_group_tasks() -> None:
    table = published()
    reg = get_registry(entry_points=False)
    assert paper_tasks() == [t.name for t in reg.resolve(["pvm-paper"])]
    rows = {r["model"]: r for r in table["rows"]}
    assert rows["PVM-8B (SFT+GRPO)"]["values"] == [67.3, 91.2, 89.4, 71.6, 58.3, 59.8, 51.3, 82.8]
    assert rows["Qwen3-VL-8B-Instruct"]["average"] == 66.7
    for r in table["rows"]:  # eight values each, and the printed average is their mean (to the table's rounding)
        assert len(r["values"]) == 8
        assert sum(r["values"]) / 8 == pytest.approx(r["average"], abs=0.051), r["model"]


def test_group_runs_the_papers_versions() -> None:
    tasks = get_registry(entry_points=False).tasks
    lite = tasks["mmbench_en_lite"]
    assert (lite.hub_id, lite.hub_configs) == ("lmms-lab-encoder/LMMs-Eval-Lite", ("mmbench_en_dev",))
    assert lite.default_split == "lite"
    assert (tasks["ai2d_lite"].hub_configs, tasks["ai2d_lite"].default_split) == (("ai2d",), "lite")
    assert tasks["mmmu_dev_qwen3vl"].default_split == "dev" and tasks["mmmu_dev_qwen3vl"].prompt == "qwen3_vl"
    assert tasks["mathverse_vision"].generation["max_new_tokens"] == 1024
    assert tasks["mmt_emo"].category == "emotion"


def test_protocol_defaults_and_preset() -> None:
    filled = protocol_run_defaults({"protocol": "pvm-paper"})
    assert filled == {"protocol": "pvm-paper", "temperature": 0.7, "repeats": 4}
    assert protocol_run_defaults({"protocol": "pvm-paper", "temperature": 0.2})["temperature"] == 0.2  # explicit wins
    assert protocol_run_defaults({"protocol": "lmms-eval"}) == {"protocol": "lmms-eval"}
    paper, _ = resolve_protocol(FAMILIES["qwen3_vl"], "pvm-paper")
    lmms, _ = resolve_protocol(FAMILIES["qwen3_vl"], "lmms-eval")
    for field in ("system_prompt", "min_pixels", "max_pixels"):
        assert getattr(paper, field) == getattr(lmms, field), field
    assert paper.sources["system_prompt"] == "pvm-paper"
    assert unfinished_policy_for("pvm-paper") == "parse"


@pytest.mark.slow
def test_pvm_paper_protocol_end_to_end(tiny_qwen3_vl, fixture_data, tmp_path):
    out = tmp_path / "runs"
    res = runner.invoke(app, [
        "run", "--quiet", "--model", str(tiny_qwen3_vl), "--tasks", "pvm-paper", "--protocol", "pvm-paper",
        "--data-dir", str(fixture_data), "--out", str(out), "--run-id", "paper", "--max-new-tokens", "2",
        "--limit", "1", "--probes", "", "--variants", "base",
    ])
    assert res.exit_code == 0, res.output
    run = out / "paper"
    config = json.loads((run / "run.json").read_text())["config"]
    assert (config["temperature"], config["repeats"], config["protocol"]) == (0.7, 4, "pvm-paper")
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {r["task"] for r in records} == set(paper_tasks())
    assert sorted({r["repeat"] for r in records}) == [0, 1, 2, 3]
    md = (run / "summary.md").read_text()
    assert "PVM paper Table 1 (published) beside this run" in md
    assert "published: PVM-8B (SFT+GRPO)" in md and "71.5" in md and "this run: base" in md
    assert "--limit 1 (paper: every sample)" in md and "temperature" not in md.split("This run:")[1].split(".")[0]
    html = (run / "report.html").read_text()
    assert 'id="paper-table"' in html and "published: Qwen3-VL-4B-Instruct" in html


def test_the_library_config_applies_the_paper_protocol_defaults() -> None:
    """``RunConfig(protocol="pvm-paper")`` (the API, the lmms-eval bridge) samples as the paper does,
    not greedily once: the defaults live in the config, not only in the CLI."""
    from pvm_bench.config import RunConfig

    need = {"model": "m", "tasks": ["mmstar_qwen3vl"]}
    paper = RunConfig(**need, protocol="pvm-paper")
    assert (paper.temperature, paper.repeats) == (0.7, 4)
    assert RunConfig(**need, protocol="pvm-paper", repeats=2, temperature=0.0).repeats == 2
    assert (RunConfig(**need).temperature, RunConfig(**need).repeats) == (0.0, 1)
    # a run.json written by such a run reloads with its own values
    assert RunConfig.model_validate(paper.model_dump()) == paper


def test_paper_note_names_every_option_that_overrides_the_protocol() -> None:
    """'--protocol pvm-paper --max-pixels 100000 --max-new-tokens 32' sends other inputs than the
    paper: the note must not call them 'the same ... inputs as the paper'."""
    from types import SimpleNamespace

    from pvm_bench.report.paper import paper_note

    paper = {"protocol": "pvm-paper", "temperature": 0.7, "repeats": 4}
    assert "the same temperature, repeats and inputs" in paper_note(SimpleNamespace(run=SimpleNamespace(config=paper)))
    note = paper_note(SimpleNamespace(run=SimpleNamespace(config={**paper, "max_pixels": 100000, "max_new_tokens": 32,
                                                                 "system_prompt": ""})))
    assert "the same temperature" not in note
    assert "--max-pixels 100000" in note and "--max-new-tokens 32" in note and "--system-prompt ''" in note


def test_the_run_header_says_the_values_are_the_4_run_average() -> None:
    from pvm_bench.report.runinfo import decoding_line

    assert decoding_line({"protocol": "pvm-paper", "temperature": 0.7, "repeats": 4}) == (
        "protocol pvm-paper; sampled at temperature 0.7; 4 repeats per sample (each value is the mean over the repeats)"
    )
