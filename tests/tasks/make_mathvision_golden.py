"""Regenerate tests/tasks/mathvision_golden.json: lmms-eval 0.7.3's MathVision scores for a corpus.

lmms-eval's ``tasks/mathvision/utils.py`` imports its verifier stack at module level, so this
script loads only what scoring needs from an unpacked lmms-eval 0.7.3 wheel: ``eval_utils.py``
(imported from its file; needs ``latex2sympy2`` and ``tqdm``) and the source of
``mathvision_process_results`` cut out of ``utils.py`` with ``ast`` and run in a namespace holding
``find_math_answer``/``is_equal``/``is_number``, exactly as utils.py imports them (line 11-15)::

    pip download --no-deps lmms-eval==0.7.3 && unzip lmms_eval-0.7.3-py3-none-any.whl -d /tmp/lmms
    python tests/tasks/make_mathvision_golden.py /tmp/lmms/lmms_eval

Outputs are strings written for this corpus (never model text from elsewhere): lmms-eval's
``eval`` runs on latex2sympy2's rendering of them.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

DOCS: list[dict] = [
    {"id": "mc", "options": ["red", "green", "blue", "yellow"], "answer": "B"},
    {"id": "int", "options": [], "answer": "3"},
    {"id": "frac", "options": [], "answer": "\\frac{1}{2}"},
    {"id": "tuple", "options": [], "answer": "(1,2)"},
    {"id": "sqrt", "options": [], "answer": "2\\sqrt{3}"},
    {"id": "dec", "options": [], "answer": "0.5"},
    {"id": "deg", "options": [], "answer": "60"},
]

OUTPUTS = [
    "{A}", "\\boxed{{{A}}}", "$\\boxed{{{A}}}$", "The answer is {A}.", "the answer is {A}.", "The final answer is $\\boxed{{{A}}}$.",
    "So the answer is \\boxed{{{A}}} units.", "We get x = {A}, so \\boxed{{{A}}}", "\\boxed{{4}}", "\\boxed{{3.0}}",
    "\\boxed{{0.5}}", "\\boxed{{\\frac{{1}}{{2}}}}", "\\boxed{{1/2}}", "\\boxed{{(1, 2)}}", "\\boxed{{(1,3)}}", "\\boxed{{[1, 2]}}",
    "\\boxed{{2\\sqrt{{3}}}}", "\\boxed{{3.46}}", "\\boxed{{\\sqrt{{12}}}}", "\\boxed{{60^\\circ}}", "\\boxed{{60°}}", "\\boxed{{\\pi/3}}",
    "\\boxed{{B}}", "\\boxed{{(B)}}", "\\boxed{{green}}", "\\boxed{{C}}", "The answer is B.", "(B) green", "B\nbecause", "Answer: B",
    "First \\boxed{{2}} then \\boxed{{{A}}}", "\\boxed{{{A}}} wait no \\boxed{{5}}", "The answer should be {A}", "x \\approx {A}",
    "\\boxed{{\\text{{{A}}}}}", "\\boxed{{}}", "", "I don't know.", "<think>hmm</think>\\boxed{{{A}}}", "\\boxed{{\\dfrac{{1}}{{2}}}}",
    "\\boxed{{x=3}}", "\\boxed{{3\\text{{ cm}}}}", "\\boxed{{50\\%}}", "\\boxed{{-3}}",
]


def cases() -> list[tuple[int, str]]:
    return [(i, t.format(A=d["answer"])) for i, d in enumerate(DOCS) for t in OUTPUTS]


def lmms_process(lmms_root: Path):
    """lmms-eval 0.7.3's ``mathvision_process_results`` bound to its own eval_utils."""
    spec = importlib.util.spec_from_file_location("lmms_mathvision_eval_utils", lmms_root / "tasks/mathvision/eval_utils.py")
    eval_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eval_utils)
    tree = ast.parse((lmms_root / "tasks/mathvision/utils.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "mathvision_process_results")
    namespace = {"find_math_answer": eval_utils.find_math_answer, "is_equal": eval_utils.is_equal,
                 "is_number": eval_utils.is_number}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "utils.py", "exec"), namespace)
    return namespace["mathvision_process_results"], eval_utils


def main() -> None:
    root = Path(sys.argv[1])
    process, eval_utils = lmms_process(root)
    strip = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]
    sys.path.insert(0, str(HERE.parents[1]))
    from pvm_bench.scoring import strip_reasoning_tags  # lmms-eval's own, ported verbatim (api/reasoning.py)

    rows = []
    for i, output in cases():
        text = strip_reasoning_tags(output, strip)
        value = process(DOCS[i], [text])["mathvision_standard_eval"]["scores"][0]
        rows.append({"doc": i, "output": output, "value": float(value)})
    pairs = [[a, b, bool(eval_utils.is_equal(a, b))] for a in ("3", "3.0", "0.5", "\\frac{1}{2}", "(1,2)", "(1, 2)", "1/2",
                                                               "2\\sqrt{3}", "\\sqrt{12}", "60", "\\pi", "x+1", "[1,2]",
                                                               "10\\%", "0.1", "-3", "")
             for b in ("3", "0.5", "(1,2)", "2\\sqrt{3}", "60", "0.1", "[1, 2]")]
    out = {"lmms_eval_version": "0.7.3", "n": len(rows), "cases": rows, "is_equal": pairs}
    (HERE / "mathvision_golden.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} cases, {len(pairs)} is_equal pairs")


if __name__ == "__main__":
    main()
