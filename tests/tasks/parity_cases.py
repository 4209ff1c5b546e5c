"""The scorer-parity corpus: documents in the hub schemas and >= 200 varied model outputs.

Pure Python (no pvm_bench import) so that ``make_lmms_golden.py`` can run it inside a separate
lmms-eval virtual environment. Each case is ``(family, doc_index, output)``; the random seed for
lmms-eval's guess fallback is :func:`seed_for` of the document id (the same as
``pvm_bench.scoring.extract.seed_for``).
"""

from __future__ import annotations

import hashlib

MMMU_DOCS: list[dict] = [
    {"id": "validation_Art_1", "question": "<image 1> Which colour dominates?", "options": "['red', 'green', 'blue', 'yellow']",
     "answer": "C", "question_type": "multiple-choice"},
    {"id": "validation_Physics_2", "question": "A ball falls for <image 1> 2 s. Which speed is closest?",
     "options": "['9.8 m/s', '19.6 m/s', '29.4 m/s', '4.9 m/s', '0 m/s']", "answer": "B", "question_type": "multiple-choice"},
    {"id": "validation_Economics_3", "question": "<image 1> Which market structure is shown?",
     "options": "['Perfect competition', 'Monopoly', 'Oligopoly', 'Monopolistic competition']", "answer": "D",
     "question_type": "multiple-choice"},
    {"id": "validation_Math_4", "question": "<image 1> What is the area of the triangle?", "options": "[]",
     "answer": "12", "question_type": "open"},
    {"id": "validation_Chemistry_5", "question": "<image 1> Name the gas released.", "options": "[]",
     "answer": "oxygen", "question_type": "open"},
    {"id": "validation_Finance_6", "question": "<image 1> What is the NPV (in dollars)?", "options": "[]",
     "answer": "1,250.5", "question_type": "open"},
    {"id": "validation_Math_7", "question": "<image 1> <image 2> Which letter labels the vertex?", "options": "[]",
     "answer": "B", "question_type": "open"},
    {"id": "validation_Music_8", "question": "<image 1> How many beats?", "options": "['2', '3', '4', '6']",
     "answer": "A", "question_type": "multiple-choice"},
]

MATHVISTA_DOCS: list[dict] = [
    {"pid": "1", "question": "Which shape is largest?", "choices": ["circle", "square", "triangle", "hexagon"],
     "unit": None, "precision": None, "answer": "square", "question_type": "multi_choice", "answer_type": "text"},
    {"pid": "2", "question": "How many apples are there?", "choices": None, "unit": None, "precision": None,
     "answer": "7", "question_type": "free_form", "answer_type": "integer"},
    {"pid": "3", "question": "What is the length of the rod?", "choices": None, "unit": "cm", "precision": 1.0,
     "answer": "3.5", "question_type": "free_form", "answer_type": "float"},
    {"pid": "4", "question": "What is the ratio?", "choices": None, "unit": None, "precision": 2.0,
     "answer": "0.67", "question_type": "free_form", "answer_type": "float"},
    {"pid": "5", "question": "Between which two years was the peak?", "choices": None, "unit": None, "precision": None,
     "answer": "[2007, 2008]", "question_type": "free_form", "answer_type": "list"},
    {"pid": "6", "question": "What is x?", "choices": ["1/2", "3/4", "\\frac{5}{6}", "2"], "unit": None,
     "precision": None, "answer": "3/4", "question_type": "multi_choice", "answer_type": "text"},
    {"pid": "7", "question": "How much does it cost? (Unit: $)", "choices": None, "unit": "$", "precision": None,
     "answer": "13", "question_type": "free_form", "answer_type": "integer"},
]
for _d in MATHVISTA_DOCS:
    _d["query"] = f"Question: {_d['question']}"

GENERIC = [
    "", " ", ".", "I don't know.", "Let me think step by step. First, the",
    "The image shows a diagram with several labelled parts and some",
    "<think>The colours are mixed, I need to look closer", "<think>hmm</think>",
    "<analysis>long analysis</analysis>Final answer below: none",
    "Answer:", "$\\boxed{}$", "[1, 2]", "None of the above.", "Yes", "No",
]

MMMU_MC = [
    "{L}", "({L})", "{L}.", "The answer is ({L}).", "The answer is {L}", "Answer: {L}", "{L}. {T}",
    "I think it's {T}.", "The correct option is {T} because the figure clearly shows it in the middle.",
    "A", "B", "C", "D", "E", "(A) or (B)", "A and B are wrong, so {L}", "Option {L} is correct",
    "<think>Maybe A. Or B.</think>{L}", "<think>Let me see</think>\nThe answer is ({W}).", "{W}",
    "The answer is ({W}), not ({L}).", "{l}", "It is {T}", "Therefore the final answer is {L}.",
    "**Answer:** {L}", "\\boxed{{{L}}}", "$\\boxed{{{L}}}$", "Among the options, {T} and {U} are plausible; I pick {U}.",
    "{L}) {T}", "{L}:", "The answer is: {L}",
]
MMMU_OPEN = [
    "{A}", "The answer is {A}.", "so the area is {A}", "Therefore, the answer is {A}", "{A} units",
    "Answer: {A}", "It is approximately {A}.", "x = {A}", "The result is 1,000", "3.14159",
    "The gas is hydrogen.", "The gas released is oxygen gas", "oxygen", "Oxygen.", "B", "The vertex is B",
    "vertex b", "1250.50", "$1,250.50", "1.2505e3", "12.0", "twelve", "-12", "\\frac{{24}}{{2}}",
    "Area = 6 * 4 / 2 = 12", "I think 13. Actually no, 12", "<think>area 6*4/2</think>The area is 12.",
]
MATHVISTA_OUT = [
    "{A}", 'The answer is "{A}".', "The answer is {A}.", "Answer: {A}", "{L}", "({L})", "({L}) {A}",
    "The correct answer is ({L}).", "{W}", "({W})", "3.5", "3.50", "3.46", "3", "7", "7.0", "7 apples",
    "0.67", "0.666", ".67", "[2007, 2008]", "[2007,2008]", "2007, 2008", "13", "$13", "13.00", "circle",
    "square", "Square", "\\frac{{3}}{{4}}", "3/4", 'The answer is "3/4".', "<think>count them</think>7",
    "<think>it is 3.5</think>3.5", "(b)", "b", "E",
]


def seed_for(key: str) -> int:
    """Same as pvm_bench.scoring.extract.seed_for."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)


def _letters(options: list) -> list[str]:
    return [chr(65 + i) for i in range(len(options))]


def cases() -> list[tuple[str, int, str]]:
    """All (family, doc_index, output) parity cases, in a fixed order."""
    import ast

    out: list[tuple[str, int, str]] = []
    for i, doc in enumerate(MMMU_DOCS):
        opts = ast.literal_eval(doc["options"])
        if doc["question_type"] == "multiple-choice":
            letters = _letters(opts)
            gold = doc["answer"]
            wrong = letters[(letters.index(gold) + 1) % len(letters)]
            fmt = {"L": gold, "l": gold.lower(), "W": wrong, "T": opts[letters.index(gold)], "U": opts[letters.index(wrong)]}
            templates = MMMU_MC
        else:
            fmt = {"A": doc["answer"]}
            templates = MMMU_OPEN
        for t in templates + GENERIC:
            out.append(("mmmu", i, t.format(**fmt) if "{" in t and t not in GENERIC else t))
    for i, doc in enumerate(MATHVISTA_DOCS):
        choices = doc["choices"] or ["x"]
        letters = _letters(choices)
        if doc["question_type"] == "multi_choice":
            gold_letter = letters[choices.index(doc["answer"])]
            wrong = letters[(letters.index(gold_letter) + 1) % len(letters)]
        else:
            gold_letter, wrong = "A", "B"
        fmt = {"A": doc["answer"], "L": gold_letter, "W": wrong}
        for t in MATHVISTA_OUT + GENERIC:
            out.append(("mathvista", i, t.format(**fmt) if t not in GENERIC else t))
    return out
