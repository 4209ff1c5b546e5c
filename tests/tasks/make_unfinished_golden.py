"""Regenerate tests/tasks/unfinished_golden.json: lmms-eval 0.7.3's scores for ``unfinished_cases.py``.

Run with lmms-eval 0.7.3's scoring importable (its wheel unpacked on PYTHONPATH, or an lmms venv)::

    python tests/tasks/make_unfinished_golden.py

Per output, what lmms-eval does with a response (wheel lmms_eval-0.7.3): ``strip_reasoning_tags``
with the CLI default tags (``evaluator.py`` lines 303-310, ``__main__.py`` lines 319-323; an
unclosed opening tag stays, ``api/reasoning.py`` lines 15-18), then
* MMBench static evaluation of one row: ``MMBench_Evaluator.prefetch_answer`` (``can_infer``),
  else ``extract_mcq_answer`` over the row's choices (``mmbench_evals.py`` lines 206-234);
* MMStar: ``exact_match`` (``mmstar/utils.py`` lines 74-80);
* HallusionBench (rule path): ``"1" if "yes" in prediction.lower() else "0"`` compared with
  ``gt_answer`` (``evaluate_hb.py`` lines 93-97).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import unfinished_cases as uc  # noqa: E402

TAGS = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]


def main() -> None:
    from importlib.metadata import version

    import pandas as pd
    from lmms_eval.api.reasoning import strip_reasoning_tags
    from lmms_eval.tasks._task_utils.mcq_extract import extract_mcq_answer
    from lmms_eval.tasks.mmbench.mmbench_evals import MMBench_Evaluator
    from lmms_eval.tasks.mmstar.utils import exact_match

    evaluator = MMBench_Evaluator()
    rows = []
    for task, key, output in uc.CASES:
        text = strip_reasoning_tags(output, TAGS)
        if task == "mmbench_en":
            item = pd.Series({**uc.MMBENCH_DOC, "prediction": text})
            pred = evaluator.prefetch_answer(item)
            if not pred:
                pred = extract_mcq_answer(text, choices=sorted(evaluator.build_choices(item)))
            value = float(bool(pred) and pred == uc.MMBENCH_DOC["answer"])
        elif task == "mmstar":
            value = exact_match(text, uc.MMSTAR_DOC["answer"])
        else:
            ans = "1" if text.lower().find("yes") != -1 else "0"
            value = float(ans == uc.HALLUSION_DOCS[key]["gt_answer"])
        rows.append({"task": task, "doc": key, "output": output, "value": value})
    out = {"lmms_eval_version": version("lmms_eval"), "n": len(rows), "cases": rows}
    (HERE / "unfinished_golden.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} cases; credited {sum(r['value'] for r in rows):.0f}")


if __name__ == "__main__":
    main()
