"""Regenerate tests/tasks/lmms_golden.json: lmms-eval 0.7.3's own scores for the parity corpus.

Run inside a venv that has lmms-eval's scoring importable (see tests/tasks/README or the
integrator's `lmms` extra), e.g.::

    /work/lmms-venv/bin/python tests/tasks/make_lmms_golden.py

What is computed per case is what lmms-eval does with a model response:
``strip_reasoning_tags`` with the CLI default ``--reasoning_tags``, then
* MMMU: ``mmmu_process_results`` parsing (``parse_multi_choice_response`` with ``random`` seeded
  by ``seed_for(doc id)`` / ``parse_open_response``) and ``eval_multi_choice`` / ``eval_open``;
* MathVista: ``mathvista_process_results`` with ``quick_extract=True`` and no judge
  (``get_chat_response`` returns "", as when lmms-eval's judge API gives nothing back).
"""

from __future__ import annotations

import ast
import json
import os
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import parity_cases as pc  # noqa: E402


def lmms_functions():
    """Import lmms-eval's scoring functions (raises ImportError when unavailable)."""
    from lmms_eval.api.reasoning import strip_reasoning_tags
    from lmms_eval.tasks.mathvista.mathvista_evals import MathVistaEvaluator
    from lmms_eval.tasks.mmmu import utils as mmmu_utils

    evaluator = MathVistaEvaluator(quick_extract=True)
    evaluator.get_chat_response = lambda *a, **k: ""  # no judge: the rule-based path
    return strip_reasoning_tags, mmmu_utils, evaluator


TAGS = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]


def lmms_score(family: str, doc: dict, output: str, fns=None) -> dict:
    """lmms-eval's score of ``output`` for ``doc`` as {"value": 0/1, "parsed": str}."""
    strip, mmmu_utils, evaluator = fns or lmms_functions()
    text = strip(output, TAGS)
    if family == "mmmu":
        if doc["question_type"] == "multiple-choice":
            index2ans, all_choices = mmmu_utils.get_multi_choice_info(ast.literal_eval(doc["options"]))
            random.seed(pc.seed_for(doc["id"]))
            parsed = mmmu_utils.parse_multi_choice_response(text, all_choices, index2ans)
            ok = mmmu_utils.eval_multi_choice(doc["answer"], parsed)
            return {"value": float(ok), "parsed": parsed}
        parsed = mmmu_utils.parse_open_response(text)
        ok = mmmu_utils.eval_open(doc["answer"], parsed)
        return {"value": float(ok), "parsed": sorted(map(str, parsed))}
    prediction = text.strip()
    problem = {k: doc[k] for k in ("question_type", "answer_type", "query", "choices", "answer", "precision")}
    extraction = evaluator.extract_answer(prediction, problem, True)
    norm = evaluator.normalize_extracted_answer(extraction, problem["choices"], problem["question_type"],
                                                problem["answer_type"], problem["precision"])
    ok = evaluator.safe_equal(norm, problem["answer"])
    return {"value": float(ok), "parsed": norm, "extraction": extraction}


def main() -> None:
    from importlib.metadata import version

    import lmms_eval  # noqa: F401

    fns = lmms_functions()
    docs = {"mmmu": pc.MMMU_DOCS, "mathvista": pc.MATHVISTA_DOCS}
    rows = []
    for family, i, output in pc.cases():
        res = lmms_score(family, docs[family][i], output, fns)
        rows.append({"family": family, "doc": i, "output": output, **res})
    out = {"lmms_eval_version": version("lmms_eval"), "n": len(rows), "cases": rows}
    (HERE / "lmms_golden.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} cases")


if __name__ == "__main__":
    main()
