"""A held-out corpus for the math final-answer scorer (issue 23 item 4), with a person's verdict.

Written and committed before any of these outputs was scored, so its first measurement is a blind
figure. It targets the classes the issue found the default scorer missing:

* ``neg``: negative gold answers, and negative predictions of positive golds ("The answer is -4."
  is wrong against 4; "Answer: -2" is right against -2);
* ``labels``: a list of labelled values in which the asked quantity is named first
  ("Area: 12\\nPerimeter: 16");
* ``enum``: options enumerated one by one during the reasoning before a closing verdict;
* ``first``: the answer stated in the first sentence, supporting numbers after it;
* ``trail``: a distractor number in a trailing remark after the answer;
* ``negated``: a negated answer ("the answer is not X").

The grading rules are those of ``math_corpus_blind.py``: the final answer counts, units and LaTeX
wrappers are ignored, an option may be named by letter or text. MathVista cases are scored through
the registry task (``PROBLEMS``, testmini schema); MathVerse/MathVision cases through
:func:`pvm_bench.scoring.mathscore.score_free_form` (``DOCS``, as ``mathverse_corpus.py``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from math_corpus_blind import _row  # noqa: E402

PROBLEMS: dict[str, dict[str, Any]] = {
    "slope": _row("h1", "What is the slope of the line?", "-3", "integer"),
    "xint": _row("h2", "At what x does the line cross the x-axis?", "4", "integer"),
    "temp": _row("h3", "What is the lowest temperature shown in the chart?", "-4.5", "float", unit="°C",
                 precision=1.0),
    "change": _row("h4", "What is the change in value from 2010 to 2011?", "-6", "integer"),
    "mcneg": _row("h5", "What is the value of f(0)?", "-1", "text", choices=["-3", "-1", "1", "3"]),
    "roots": _row("h6", "What are the roots of the parabola? List them in increasing order.", "[-1, 2]", "list"),
    "bars": _row("h7", "How many bars have a value above 40?", "3", "integer"),
    "area": _row("h8", "What is the area of the shaded triangle?", "12", "integer"),
    "animal": _row("h9", "Which animal in the food chain is a primary consumer?", "rabbit", "text",
                   choices=["hawk", "snake", "rabbit", "grass"]),
    "rect": _row("h10", "Which of the following is the perimeter of the rectangle?", "16", "text",
                 choices=["12", "14", "16", "18"]),
    "gap": _row("h11", "What is the age gap between these two people in image?", "7", "integer", unit="years"),
}

#: MathVerse/MathVision-style problems: question, gold, multiple choice or not, options (the questions
#: were added after the blind measurement, which scored without them; no verdict changed).
DOCS: dict[str, dict[str, Any]] = {
    "v_neg": {"question": "What is the minimum value of the function?", "answer": "-3", "mc": False, "options": None},
    "v_pos": {"question": "What is the length of AB?", "answer": "5", "mc": False, "options": None},
    "v_negfrac": {"question": "What is the slope of line AB?", "answer": "-\\frac{1}{2}", "mc": False, "options": None},
    "v_mcneg": {"question": "What is the value of f(0)?", "answer": "B", "mc": True, "options": ["-2", "-1", "1", "2"]},
    "v_ang": {"question": "In triangle ABC, find ∠ABC.", "answer": "40", "mc": False, "options": None},
}


@dataclass(frozen=True)
class Case:
    """One output for ``PROBLEMS[problem]`` or ``DOCS[problem]``, its class and the verdict."""

    problem: str
    kind: str
    correct: bool
    output: str


T, F = True, False

CASES: list[Case] = [Case(*row) for row in [
    # ---- negatives (MathVista)
    ("slope", "neg", T, "The answer is -3."),
    ("slope", "neg", T, "Answer: -3"),
    ("slope", "neg", T, "The slope is rise over run = (-6)/2 = -3.\n\nAnswer: -3"),
    ("slope", "neg", F, "Answer: 3"),
    ("slope", "neg", T, "The line goes down 3 units for every 1 unit to the right, so the slope is -3."),
    ("slope", "neg", T, "\\boxed{-3}"),
    ("slope", "neg", T, "The slope is $-3$."),
    ("slope", "neg", T, "Final answer: **-3**"),
    ("slope", "neg", F, "The answer is 3 (the line is decreasing)."),
    ("xint", "neg", F, "The answer is -4."),
    ("xint", "neg", F, "Answer: -4"),
    ("xint", "neg", T, "The x-intercept is where y = 0: 0 = 2x - 8, so x = 4.\n\nAnswer: 4"),
    ("xint", "neg", F, "Final answer: -4"),
    ("xint", "neg", T, "The line crosses the x-axis at x = 4, so the answer is 4."),
    ("temp", "neg", T, "The lowest temperature is -4.5 °C."),
    ("temp", "neg", T, "Answer: -4.5"),
    ("temp", "neg", F, "Answer: 4.5"),
    ("temp", "neg", T, "The minimum of the curve is at about −4.5°C in January.\n\nThe answer is −4.5."),
    ("temp", "neg", F, "The answer is -4.6"),
    ("change", "neg", T, "The value drops from 18 to 12, so the change is 12 - 18 = -6.\n\nAnswer: -6"),
    ("change", "neg", F, "The value drops from 18 to 12, a decrease of 6.\n\nAnswer: 6"),
    ("change", "neg", T, "**Answer:** -6"),
    ("mcneg", "neg", T, "The answer is -1."),
    ("mcneg", "neg", T, "Answer: -1"),
    ("mcneg", "neg", F, "The answer is 1."),
    ("mcneg", "neg", T, "Answer: B"),
    ("mcneg", "neg", T, "The value at x = 0 is -1, which is option B."),
    ("roots", "neg", T, "The roots are x = -1 and x = 2, so the answer is [-1, 2]."),
    ("roots", "neg", F, "Answer: [1, 2]"),
    ("roots", "neg", T, "Answer: [-1, 2]"),
    # ---- labelled values, the asked quantity first
    ("bars", "labels", T, "Bars above 40: 3\nBars below 40: 5\nTotal bars: 8"),
    ("bars", "labels", T, "Above 40: 3 bars (2012, 2014, 2016); below 40: 5 bars; total: 8 bars."),
    ("bars", "labels", F, "Bars above 40: 5\nBars below 40: 3\nTotal bars: 8"),
    ("area", "labels", T, "Area: 12\nPerimeter: 16\nHeight: 4"),
    ("area", "labels", T, "- Area = 12\n- Base = 6\n- Height = 4"),
    ("area", "labels", F, "Area: 24\nBase: 6\nHeight: 4"),
    ("area", "labels", T, "Base = 6, height = 4.\nArea = 1/2 × 6 × 4 = 12\nPerimeter = 6 + 5 + 5 = 16"),
    # ---- options enumerated before a closing verdict
    ("animal", "enum", T, "Let's check each option.\n(A) hawk: it eats snakes, so it is a tertiary consumer.\n"
                          "(B) snake: it eats rabbits, a secondary consumer.\n(C) rabbit: it eats grass, so it is a "
                          "primary consumer.\n(D) grass: a producer.\n\nSo the answer is C."),
    ("animal", "enum", T, "Let's check each option.\n(A) hawk: a top predator.\n(B) snake: eats rabbits.\n"
                          "(C) rabbit: eats grass.\n(D) grass: a producer.\n\nTherefore, the primary consumer is the "
                          "rabbit."),
    ("animal", "enum", T, "A: hawk — no, it is at the top.\nB: snake — no.\nC: rabbit — yes, it eats grass.\n"
                          "D: grass — no, it is a producer.\n\nAnswer: C"),
    ("animal", "enum", F, "A. hawk - a predator.\nB. snake - eats rabbits.\nC. rabbit - eats grass.\n"
                          "D. grass - producer.\nThe primary consumer eats the producer directly, which is the snake.\n"
                          "Answer: B"),
    ("rect", "enum", T, "The rectangle is 5 by 3.\nOption A (12): too small.\nOption B (14): would need sides 4 "
                        "and 3.\nOption C (16): 2 × (5 + 3) = 16, matches.\nOption D (18): too large.\n"
                        "The correct option is C."),
    ("rect", "enum", T, "Checking A: 12 ≠ 16. Checking B: 14 ≠ 16. Checking C: 16 = 16 ✓. "
                        "Checking D: 18 ≠ 16.\nFinal answer: C"),
    ("rect", "enum", F, "Option A: 2 × (5 + 3) = 16? No, that gives 16, not 12.\nOption D: 18 if the sides were "
                        "5 and 4.\nThe sides are 5 and 4, so the answer is D."),
    ("rect", "enum", T, "2 × (5 + 3) = 16. Among the options, 12 and 14 are too small and 18 is too large, "
                        "so the answer is 16."),
    # ---- the answer in the first sentence, supporting numbers after
    ("gap", "first", T, "The age gap is 7 years. The man appears to be about 45 and the woman about 38."),
    ("gap", "first", T, "The age gap is 7 years: the man looks around 45, the woman around 38, and 45 - 38 = 7."),
    ("gap", "first", F, "The age gap is about 10 years. The man appears to be around 48 and the woman around 38."),
    ("bars", "first", T, "There are 3 bars above 40. They are the bars for 2012 (45), 2014 (52) and 2016 (61); "
                         "the other 5 bars are below 40."),
    ("area", "first", T, "The area is 12 square units. The triangle has base 6 and height 4, and the two slanted "
                         "sides are 5 each."),
    ("slope", "first", T, "The slope is -3. Two points on the line are (0, 6) and (2, 0)."),
    ("rect", "first", T, "It is 16. The rectangle has sides 5 and 3."),
    # ---- a distractor number in a trailing remark after the answer
    ("gap", "trail", T, "So the answer is 7.\n\n(Note: age estimates from photos can be off by 5 years or more.)"),
    ("bars", "trail", T, "Answer: 3\n\nNote that the 2010 bar is close to 40 (about 39), so it was not counted."),
    ("area", "trail", T, "The answer is 12. If the height were 5 instead, the area would be 15."),
    ("temp", "trail", T, "The lowest temperature is -4.5 °C, reached in January. The highest, in July, is 21.3 °C."),
    ("area", "trail", F, "Answer: 15\n\nThis uses base 6 and height 5; with height 4 the area would be 12."),
    ("slope", "trail", T, "The slope is -3. For comparison, the other line in the figure has slope 2."),
    ("bars", "trail", T, "The total is 8 bars, of which 3 are above 40."),
    # ---- a negated answer
    ("gap", "negated", F, "The answer is not 7; the man looks about 50 and the woman about 40, so the gap is 10."),
    ("bars", "negated", F, "The answer is not 3. Counting again, 4 bars are above 40."),
    ("rect", "negated", F, "The answer is not 16, it is 14."),
    ("gap", "negated", T, "The gap is not 10 years as it might first seem; it is 7 years."),
    ("slope", "negated", F, "The answer is not -3 but 3, because the line rises to the right."),
    ("slope", "negated", T, "The slope is not 3; the line falls, so the answer is -3."),
    # ---- MathVerse / MathVision (free form and multiple choice)
    ("v_neg", "neg", T, "The answer is -3."),
    ("v_neg", "neg", T, "Answer: -3"),
    ("v_neg", "neg", F, "Answer: 3"),
    ("v_neg", "neg", T, "\\boxed{-3}"),
    ("v_neg", "first", T, "The minimum value of the function is $-3$, reached at x = 1."),
    ("v_neg", "negated", T, "The answer is not 3; the vertex lies below the x-axis, so the minimum is -3."),
    ("v_pos", "neg", F, "The answer is -5."),
    ("v_pos", "neg", F, "Answer: -5"),
    ("v_pos", "neg", T, "The answer is 5."),
    ("v_negfrac", "neg", T, "The slope of AB is -1/2.\n\nAnswer: -1/2"),
    ("v_negfrac", "neg", T, "Answer: $-\\frac{1}{2}$"),
    ("v_negfrac", "neg", F, "Answer: \\frac{1}{2}"),
    ("v_negfrac", "neg", T, "\\boxed{-0.5}"),
    ("v_mcneg", "neg", T, "Answer: -1"),
    ("v_mcneg", "neg", F, "The answer is 1."),
    ("v_mcneg", "enum", T, "Option A: -2, too small. Option B: -1, matches f(0). Option C: 1, wrong sign. "
                           "Option D: 2, too large.\nAnswer: B"),
    ("v_ang", "first", T, "∠ABC = 40°. The other two angles are 60° and 80°."),
    ("v_ang", "trail", T, "Answer: 40\n\nNote: ∠ACB = 80° and ∠BAC = 60°."),
    ("v_ang", "negated", F, "The answer is not 40°; since the triangle is isosceles, ∠ABC = 70°."),
    ("v_ang", "labels", T, "∠ABC: 40°\n∠BCA: 60°\n∠CAB: 80°"),
]]
