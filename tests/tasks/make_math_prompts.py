"""Regenerate tests/tasks/math_prompts.json: lmms-eval 0.7.3's own prompts for the math fixtures.

lmms-eval's math task modules import its judge/verifier stack at module level, so this script cuts
the pure prompt builders out of an unpacked lmms-eval 0.7.3 wheel with ``ast`` and runs them as
they are: ``MathVistaEvaluator.create_one_query`` (mathvista_evals.py line 350, with the module's
``shot_examples``), ``MathVerseEvaluator.create_one_query`` (mathverse_evals.py line 122) and
``mathvision_doc_to_text`` (mathvision/utils.py line 49), with the YAML's
``lmms_eval_specific_kwargs`` (format-prompt / step-by-step / solution; query_wo; mc_prompt)::

    python tests/tasks/make_math_prompts.py /tmp/lmms/lmms_eval
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "tests" / "fixtures" / "data"


def _function(path: Path, name: str, cls: str | None = None, extra: tuple[str, ...] = ()) -> object:
    tree = ast.parse(path.read_text())
    body = tree.body
    if cls:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == cls).body
    fn = next(n for n in body if isinstance(n, ast.FunctionDef) and n.name == name)
    assigns = [
        n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") in extra for t in n.targets)
    ]
    namespace: dict = {}
    exec(compile(ast.Module(body=[*assigns, fn], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def _rows(task: str, split: str) -> list[dict]:
    return pd.read_parquet(FIXTURES / task / f"{split}.parquet").to_dict("records")


def _clean(value):  # parquet -> the python values datasets gives lmms-eval
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and value != value:
        return None
    return value


def main() -> None:
    root = Path(sys.argv[1]) / "tasks"
    vista = _function(
        root / "mathvista/mathvista_evals.py", "create_one_query", "MathVistaEvaluator", ("shot_examples",)
    )
    verse = _function(root / "mathverse/mathverse_evals.py", "create_one_query", "MathVerseEvaluator")
    vision = _function(root / "mathvision/utils.py", "mathvision_doc_to_text")
    out: dict[str, list[str]] = {}
    for shot in ("format-prompt", "step-by-step", "solution"):
        prompts = []
        for row in _rows("mathvista", "testmini"):
            doc = {k: _clean(v) for k, v in row.items()}
            problem = {
                "question_type": doc["question_type"],
                "answer_type": doc["answer_type"],
                "question": doc["question"],
                "unit": doc.get("unit") or "",
                "caption": "",
                "ocr": "",
                "choices": doc["choices"],
                "answer": doc.get("answer"),
                "precision": doc.get("precision", 0),
            }
            prompts.append(vista(None, problem, shot_num=0, shot_type=shot, use_caption=False, use_ocr=False))
        out[f"mathvista:{shot}"] = prompts
    for split in ("testmini", "vision_only", "text_dominant"):
        out[f"mathverse:{split}"] = [
            verse(
                None,
                {k: _clean(v) for k, v in row.items()},
                shot_type="format-prompt",
                hint=None,
                query_type="query_wo",
            )
            for row in _rows("mathverse", split)
        ]
    kwargs = {"mc_prompt": "Answer the question with the option's letter from the given choices directly."}
    out["mathvision:testmini"] = [
        vision({k: _clean(v) for k, v in row.items()}, kwargs) for row in _rows("mathvision", "testmini")
    ]
    (HERE / "math_prompts.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {sum(len(v) for v in out.values())} prompts")


if __name__ == "__main__":
    main()
