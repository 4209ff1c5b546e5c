"""Outputs that stop inside an unclosed ``<think>`` (the token limit hit mid-reasoning), for MMBench,
MMStar and HallusionBench, with the docs they answer. ``make_unfinished_golden.py`` scores them with
lmms-eval 0.7.3's own functions into ``unfinished_golden.json``; ``test_unfinished_reasoning.py``
checks that ``--protocol lmms-eval`` (policy "parse") reproduces those values exactly and that the
default (policy "zero") scores every one 0 as truncated.
"""

from __future__ import annotations

MMBENCH_DOC = {"index": 7, "question": "What colour is the car?", "hint": "nan", "A": "red", "B": "blue",
               "C": "green", "D": "yellow", "answer": "B", "category": "attribute_recognition",
               "L2-category": "finegrained_perception (instance-level)", "source": "fixture", "split": "dev"}
MMSTAR_DOC = {"index": 3, "question": "Which animal is shown?\nOptions: A: dog, B: horse, C: cat, D: bird",
              "answer": "C", "category": "coarse perception", "l2_category": "image scene and topic"}
HALLUSION_DOCS = {
    "1": {"category": "VD", "subcategory": "chart", "set_id": "0", "figure_id": "0", "question_id": "0",
          "question": "Does the line go up from 2010 to 2015?", "gt_answer": "1", "gt_answer_details": "yes"},
    "0": {"category": "VS", "subcategory": "chart", "set_id": "1", "figure_id": "0", "question_id": "1",
          "question": "Does the chart show an increase?", "gt_answer": "0", "gt_answer_details": "no"},
}

#: (task, doc key, output): doc key "" for MMBench/MMStar, the gold answer for HallusionBench.
CASES: list[tuple[str, str, str]] = [
    ("mmbench_en", "", "<think>The car in the image is blue, so the answer is B"),
    ("mmbench_en", "", "<think>Let me look. The sky is blue. Option B says blue. So B"),
    ("mmbench_en", "", "<think>Options: A. red B. blue C. green D. yellow. The car looks"),
    ("mmbench_en", "", "<think>I think it's blue"),
    ("mmbench_en", "", "<think>It could be A or B, let me check the"),
    ("mmbench_en", "", "<think>\nThe answer is A"),
    ("mmbench_en", "", "<think>B"),
    ("mmstar", "", "<think>The object is a cat, option C"),
    ("mmstar", "", "<think>Looking at the picture, the animal has whiskers. So the answer is (C)"),
    ("mmstar", "", "<think>Let me compare A, B, C and D one by one. A is"),
    ("mmstar", "", "<think>Answer: D"),
    ("mmstar", "", "<think>\nC"),
    ("hallusionbench", "1", "<think>Yes, the line goes up in the figure so the statement is"),
    ("hallusionbench", "0", "<think>Is the line going up? Let me check"),
    ("hallusionbench", "0", "<think>The chart shows no increase, so the answer is no"),
    ("hallusionbench", "0", "<think>Hmm, yes or no? The bar"),
    ("hallusionbench", "1", "<think>Looking at the chart carefully"),
]
