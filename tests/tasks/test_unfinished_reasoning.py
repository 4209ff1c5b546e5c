"""Outputs cut inside an unclosed ``<think>`` (issue 23 item 6).

lmms-eval 0.7.3 leaves an unclosed opening tag in place (``api/reasoning.py`` lines 15-18 and
21-35 of the wheel) and parses the remaining text, which can give credit. pvm-bench's default scores
such an output 0 as truncated (no answer was given); ``--protocol lmms-eval`` parses it exactly as
lmms-eval does. ``unfinished_golden.json`` holds lmms-eval's own values (``make_unfinished_golden.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pvm_bench.scoring import apply_unfinished_policy, is_unfinished, unfinished_policy_for
from pvm_bench.tasks import get_registry

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import unfinished_cases as uc  # noqa: E402

GOLDEN = json.loads((HERE / "unfinished_golden.json").read_text(encoding="utf-8"))
REG = get_registry(entry_points=False)


def _samples() -> dict[tuple[str, str], object]:
    img = {"bytes": b"-", "path": None}
    out = {("mmbench_en", ""): REG.tasks["mmbench_en"].sample_from_row({**uc.MMBENCH_DOC, "image": img}, 0),
           ("mmstar", ""): REG.tasks["mmstar"].sample_from_row({**uc.MMSTAR_DOC, "image": img}, 0)}
    for key, doc in uc.HALLUSION_DOCS.items():
        out[("hallusionbench", key)] = REG.tasks["hallusionbench"].sample_from_row({**doc, "image": None}, 0)
    return out


@pytest.fixture
def policy():
    """Set the tasks' policy like a run does, and put the default back afterwards."""
    tasks = [REG.tasks[n] for n in ("mmbench_en", "mmstar", "hallusionbench", "mmmu", "mathvista_lmms")]
    yield lambda protocol: apply_unfinished_policy(tasks, protocol)
    apply_unfinished_policy(tasks, "default")


def test_golden_is_current_and_mixed() -> None:
    assert [(c["task"], c["doc"], c["output"]) for c in GOLDEN["cases"]] == [tuple(c) for c in uc.CASES]
    assert GOLDEN["lmms_eval_version"] == "0.7.3"
    assert all(is_unfinished(c["output"]) for c in GOLDEN["cases"])
    assert 0 < sum(c["value"] for c in GOLDEN["cases"]) < len(GOLDEN["cases"])  # lmms-eval credits some


@pytest.mark.parametrize("cut", [False, True])
def test_lmms_eval_protocol_reproduces_lmms_eval_exactly(policy, cut: bool) -> None:
    """Also when the generation hit the token limit (``truncated=True``), as such outputs usually do."""
    assert policy("lmms-eval") == "parse"
    samples = _samples()
    got = [REG.tasks[c["task"]].score(samples[(c["task"], c["doc"])], c["output"], truncated=cut).value
           for c in GOLDEN["cases"]]
    assert got == [c["value"] for c in GOLDEN["cases"]]


def test_default_protocol_scores_every_unfinished_output_zero_as_truncated(policy) -> None:
    assert policy("default") == "zero"
    samples = _samples()
    for c in GOLDEN["cases"]:
        score = REG.tasks[c["task"]].score(samples[(c["task"], c["doc"])], c["output"])
        assert (score.value, score.truncated) == (0.0, True), c


def test_policy_follows_the_protocol_and_leaves_finished_outputs_alone(policy) -> None:
    assert [unfinished_policy_for(p) for p in ("default", "lmms-eval")] == ["zero", "parse"]
    samples = _samples()
    for protocol in ("default", "lmms-eval"):
        policy(protocol)
        assert REG.tasks["mmstar"].score(samples[("mmstar", "")], "<think>cat</think>C").value == 1.0
    assert not is_unfinished("<think>a</think>B") and not is_unfinished(None)


THINKING_PROMPT = "<|im_start|>user\nWhich animal is shown?<|im_end|>\n<|im_start|>assistant\n<think>\n"


def _record(output: str, prompt: str = THINKING_PROMPT):
    from pvm_bench.models.generation import Generation
    from pvm_bench.runner.workload import WorkItem, sample_record

    gen = Generation(key=0, prompt=prompt, text=output, token_ids=[], n_generated=8, finish_reason="length",
                     prefill_s=0.0, decode_s=0.0, batch_size=1)
    return sample_record("base", WorkItem(REG.tasks["mmstar"], _samples()[("mmstar", "")], 0), gen, 0, 8)


def test_a_reasoning_block_opened_by_the_prompt_is_unfinished_too(policy) -> None:
    """A thinking model's chat template opens ``<think>`` in the prompt (Qwen3-VL Thinking), so an
    output cut while reasoning holds no tag: it is unfinished all the same (default: 0; lmms-eval
    parses the completion alone, as it sees it), and counted in the report's share."""
    cut = "The animal has whiskers, so the answer is (C"
    assert is_unfinished(cut, prompt=THINKING_PROMPT) and not is_unfinished(cut)
    assert not is_unfinished("It has whiskers.</think> C", prompt=THINKING_PROMPT)
    policy("default")
    assert _record(cut).score == 0.0
    assert _record("It has whiskers.</think> C").score == 1.0
    assert _record(cut, prompt=THINKING_PROMPT.replace("<think>\n", "")).score == 1.0  # no block opened
    policy("lmms-eval")
    assert _record(cut).score == REG.tasks["mmstar"].score(_samples()[("mmstar", "")], cut).value == 1.0
