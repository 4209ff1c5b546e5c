"""A blind corpus of realistic VLM outputs on MathVista-style problems, with a person's verdict.

Written without reading the default scorer (pvm_bench/scoring/answers.py, pvm_bench/scoring/mathscore.py) or its
own corpus, as an independent check of issue 13 item 3. Each :class:`Case` is one model output for
one problem of :data:`PROBLEMS` (rows in the AI4Math/MathVista testmini schema: question_type
multi_choice/free_form, answer_type text/integer/float/list, precision, choices, answer, the
step-by-step ``query``), and ``correct`` is what a careful human grader decides about the *final
answer* the output gives:

* the final answer counts, not numbers met on the way (distractors before or after it, answers
  revised at the end, a first ``\\boxed{}`` replaced by a second one);
* an option may be named by its letter (any common wrapping) or by its text;
* an answer equal to the target at the dataset precision counts, units/percent signs/thousands
  separators/LaTeX wrappers are ignored, number words count;
* hedged answers ("B or C", two boxed candidates), refusals, empty outputs, outputs with no answer
  after a reasoning block and outputs cut off (``truncated=True``: the token limit was hit) before
  stating an answer are wrong.

Cases whose grade a careful person could reasonably dispute (3.48 for a one-decimal 3.5, "0.2" for
a percentage, a reversed list of unordered years, a letter that contradicts its own option text)
were left out on purpose: the corpus measures the scorer, not the grader's taste.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MC_HINT = "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
INT_HINT = ("Hint: Please answer the question requiring an integer answer and provide the final value, "
            "e.g., 1, 2, 3, at the end.")
FLOAT_HINTS = {
    1: ("Hint: Please answer the question requiring a floating-point number with one decimal place and "
        "provide the final value, e.g., 1.2, 1.3, 1.4, at the end."),
    2: ("Hint: Please answer the question requiring a floating-point number with two decimal places and "
        "provide the final value, e.g., 1.23, 1.34, 1.45, at the end."),
    3: ("Hint: Please answer the question requiring a floating-point number with three decimal places and "
        "provide the final value, e.g., 1.234, 1.345, 1.456, at the end."),
}
LIST_HINT = ("Hint: Please answer the question requiring a Python list as an answer and provide the final "
             "list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.")


def _row(pid: str, question: str, answer: str, answer_type: str, *, choices: list[str] | None = None,
         unit: str | None = None, precision: float | None = None) -> dict[str, Any]:
    """A MathVista testmini row (without the image fields), with the dataset's ``query``."""
    question_type = "multi_choice" if choices else "free_form"
    if choices:
        hint = MC_HINT
    elif answer_type == "integer":
        hint = INT_HINT
    elif answer_type == "float":
        hint = FLOAT_HINTS[int(precision or 1)]
    else:
        hint = LIST_HINT
    text = f"Question: {question}" + (f" (Unit: {unit})" if unit else "")
    if choices:
        text += "\nChoices:\n" + "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    return {
        "pid": pid, "question": question, "choices": choices, "unit": unit, "precision": precision,
        "answer": answer, "question_type": question_type, "answer_type": answer_type,
        "query": f"{hint}\n{text}",
        "metadata": {"category": "math-targeted-vqa", "language": "english", "source": "blind-corpus"},
    }


PROBLEMS: dict[str, dict[str, Any]] = {
    "angle": _row("b1", "As shown in the figure, AB is the diameter of ⊙O, point C is on ⊙O and ∠BAC = 30°. "
                        "What is the degree of ∠ABC?", "60°", "text", choices=["30°", "45°", "60°", "90°"]),
    "shape": _row("b2", "What is the shape of the shaded region in the middle of the figure?", "square", "text",
                  choices=["circle", "square", "triangle", "hexagon"]),
    "yesno": _row("b3", "Is Dark Orchid the maximum?", "no", "text", choices=["yes", "no"]),
    "digits": _row("b4", "Find x.", "3", "text", choices=["1", "2", "3", "4"]),
    "foodweb": _row("b5", "In the food web shown, what would most likely happen if the number of mice decreased?",
                    "snakes would decrease", "text",
                    choices=["hawks would increase", "grass would decrease", "snakes would decrease",
                             "snakes would increase"]),
    "trend": _row("b6", "Which trend does the line show between 2010 and 2015?", "decrease", "text",
                  choices=["increase", "decrease", "stay the same", "increase then decrease",
                           "decrease then increase"]),
    "age": _row("b7", "What is the age gap between these two people in image?", "7", "integer", unit="years"),
    "count": _row("b8", "Subtract all red balls. Subtract all tiny cylinders. How many objects are left?", "4",
                  "integer"),
    "year": _row("b9", "In which year did the share reach its highest value?", "2014", "integer"),
    "big": _row("b10", "What is the total number of visitors shown in the chart?", "1200", "integer"),
    "pct": _row("b11", "What percentage of the pie chart is blue?", "20", "integer"),
    "neg": _row("b12", "What is the y-intercept of the line?", "-2", "integer"),
    "f1": _row("b13", "What is the length of the red segment?", "3.5", "float", unit="cm", precision=1.0),
    "f1b": _row("b14", "What is the difference between the highest and the lowest value of the dark blue bars?",
                "6.8", "float", precision=1.0),
    "f2": _row("b15", "What is the value of tan θ in the right triangle?", "0.75", "float", precision=2.0),
    "f3": _row("b16", "What is the ratio of the smallest bar to the largest bar?", "0.125", "float", precision=3.0),
    "list": _row("b17", "Which years have a value above 50? List them in increasing order.", "[2007, 2008]",
                 "list"),
    "list2": _row("b18", "What are the coordinates [x, y] of point P?", "[3, -1]", "list"),
}


@dataclass(frozen=True)
class Case:
    """One model output for ``PROBLEMS[problem]`` and a person's verdict on its final answer."""

    problem: str
    correct: bool
    output: str
    note: str = ""
    truncated: bool = False


def c(problem: str, correct: bool, output: str, note: str = "", truncated: bool = False) -> Case:
    return Case(problem, correct, output, note, truncated)


T, F = True, False

CASES: list[Case] = [
    # ---- angle: choices 30° / 45° / 60° / 90°, answer C (60°)
    c("angle", T, "C", "bare letter"),
    c("angle", T, "(C)", "letter in parentheses"),
    c("angle", T, "C. 60°", "letter and option text"),
    c("angle", T, "The answer is C.", "answer marker"),
    c("angle", T, "Since AB is the diameter of ⊙O, the inscribed angle ∠ACB = 90°. In triangle ABC, "
                  "∠BAC = 30°, so ∠ABC = 180° - 90° - 30° = 60°.\n\nTherefore, the answer is C.", "chain of thought"),
    c("angle", T, "**Step 1.** AB is a diameter, so ∠ACB = 90°.\n**Step 2.** ∠ABC = 90° - 30° = 60°.\n\n"
                  "**Answer:** C", "markdown answer"),
    c("angle", T, "Since AB is a diameter, $\\angle ACB = 90^\\circ$. Thus $\\angle ABC = 90^\\circ - 30^\\circ = "
                  "60^\\circ$.\n\n$$\\boxed{60^\\circ}$$", "boxed option text in LaTeX"),
    c("angle", T, "<think>\nAB is the diameter so angle ACB = 90. Then ABC = 180 - 90 - 30 = 60. That is option C.\n"
                  "</think>\n\nC", "reasoning block then letter"),
    c("angle", T, "A careful look at the figure shows that the answer is C.", "article 'A' before the letter"),
    c("angle", T, "The answer is A.\n\nWait, let me re-check. ∠ACB = 90° because AB is a diameter, so "
                  "∠ABC = 90° - 30° = 60°. The correct answer is C.", "revised at the end to the right answer"),
    c("angle", T, "### Solution\nThe angle in a semicircle is a right angle, so ∠ABC = 60°.\n\n### Final Answer\n"
                  "The final answer is **C**.", "markdown headers"),
    c("angle", T, 'The answer is "C".', "lmms-eval quick-extract form"),
    c("angle", T, "答案：C", "Chinese answer marker"),
    c("angle", F, "A", "wrong letter"),
    c("angle", F, "The answer is (A) 30°.", "wrong option"),
    c("angle", F, "∠ACB is 90°, and one might think ∠ABC = 60°, but since OB = OC, triangle OBC is isosceles, "
                  "so ∠ABC = 45°.\n\nAnswer: B", "right value mentioned, wrong final option"),
    c("angle", F, "∠ABC = 60°, so the answer is C.\n\nWait, I mislabelled the points: the 30° angle is at B, so "
                  "∠ABC = 30°. The final answer is A.", "revised at the end to a wrong answer"),
    c("angle", F, "The answer is either B or C.", "hedge"),
    c("angle", F, "答案：B", "Chinese marker, wrong letter"),
    c("angle", F, "I cannot see the figure clearly enough to determine the angle.", "refusal"),
    c("angle", F, "A. 30°\nB. 45°\nC. 60°\nD. 90°", "repeats the choices, no selection"),

    # ---- shape: circle / square / triangle / hexagon, answer B (square)
    c("shape", T, "B", "bare letter"),
    c("shape", T, "The answer is square.", "option text (issue example)"),
    c("shape", T, "The shaded region has four equal sides and four right angles, so it is a square.\n\nAnswer: B",
      "reasoning then letter"),
    c("shape", T, "**B. square**", "bold letter and text"),
    c("shape", T, "Square", "capitalised option text"),
    c("shape", T, "Looking at the middle of the figure, the shaded shape has 4 straight sides, so it is neither a "
                  "circle nor a triangle, and it is not a hexagon either. The answer is B.",
      "other option texts named before the answer"),
    c("shape", F, "The shaded region has six sides, so it is a hexagon. Answer: D", "wrong option"),
    c("shape", F, "triangle", "wrong option text"),
    c("shape", F, "The figure shows a circle inscribed in a square, and the shaded region is the circle. "
                  "So the answer is circle.", "right option text mentioned, wrong final answer"),
    c("shape", F, "Let me look at the shaded region. It has straight edges, so it is not a circle. Counting its "
                  "sides: one, two, three,", "cut off", truncated=True),

    # ---- yesno: yes / no, answer B (no)
    c("yesno", T, "No", "option text"),
    c("yesno", T, "no.", "lower-case option text with period"),
    c("yesno", T, "B", "letter"),
    c("yesno", T, "No, Dark Orchid is not the maximum; Medium Seafoam has the highest values.", "answer first"),
    c("yesno", T, "Comparing the lines, Medium Seafoam reaches about 95 while Dark Orchid stays below 80. So Dark "
                  "Orchid is not the maximum.\n\nThe answer is B.", "chain of thought"),
    c("yesno", T, "<think>\nDark Orchid looks high at first... but Medium Seafoam is above it everywhere, so no.\n"
                  "</think>\nNo", "reasoning block"),
    c("yesno", T, "Based on the chart, I believe the answer is B.", "marker mid-sentence"),
    c("yesno", F, "Yes", "wrong option text"),
    c("yesno", F, "A", "wrong letter"),
    c("yesno", F, "Dark Orchid peaks at 98, higher than every other line. Yes, it is the maximum.\n\nAnswer: A",
      "wrong with reasoning"),
    c("yesno", F, "<think>\nDark Orchid is the highest line.\n</think>\nYes", "reasoning block, wrong"),
    c("yesno", F, "I'm not sure. The answer could be yes or no depending on how the maximum is defined.", "hedge"),

    # ---- digits: choices 1 / 2 / 3 / 4, answer C (3)
    c("digits", T, "C", "letter"),
    c("digits", T, "3", "option text that is a number"),
    c("digits", T, "x = 3", "equation"),
    c("digits", T, "By the Pythagorean theorem, x^2 + 4^2 = 5^2, so x^2 = 9 and x = 3.\n\nAnswer: C",
      "reasoning with numbers, then letter"),
    c("digits", T, "The answer is (C) 3.", "letter and text"),
    c("digits", T, "\\boxed{C}", "boxed letter"),
    c("digits", F, "D", "wrong letter"),
    c("digits", F, "4", "wrong option text (D)"),
    c("digits", F, "By the Pythagorean theorem, 3^2 + 4^2 = x^2 gives x = 5. None of the options match exactly; "
                   "the closest is D.", "contains 3, wrong final"),
    c("digits", F, "At first x = 3 looks right, but the 5 is a leg, not the hypotenuse, so x = √41 ≈ 6.4. "
                   "The closest option is D.", "right value rejected"),

    # ---- foodweb: answer C (snakes would decrease)
    c("foodweb", T, "C", "letter"),
    c("foodweb", T, "If the number of mice decreased, the snakes that eat them would have less food, so the "
                    "snake population would decrease. The answer is C.", "reasoning then letter"),
    c("foodweb", T, "snakes would decrease", "option text"),
    c("foodweb", T, "The correct option is (C) snakes would decrease.", "letter and text"),
    c("foodweb", T, "**Answer: (C)** — with fewer mice, snakes lose their main food source.",
      "bold answer, explanation after"),
    c("foodweb", F, "Snakes would increase.", "near-identical wrong option text"),
    c("foodweb", F, "D", "wrong letter"),
    c("foodweb", F, "With fewer mice to eat, hawks would have to hunt more snakes, so hawks would increase. "
                    "Answer: A", "wrong option"),
    c("foodweb", F, "Grass would decrease, because the remaining animals would eat more of it.", "wrong option text"),

    # ---- trend: five options, answer B (decrease)
    c("trend", T, "B", "letter"),
    c("trend", T, "The line goes down from 2010 to 2015, so the trend is a decrease.\n\nAnswer: B",
      "reasoning then letter"),
    c("trend", T, "decrease", "option text"),
    c("trend", T, "Answer: B (decrease)", "letter then text"),
    c("trend", T, "The values drop steadily: 45 in 2010, 40 in 2011, 36 in 2012, 31 in 2013, 28 in 2014 and 25 "
                  "in 2015. This is a decrease.\n\n最终答案：B", "years as distractors, Chinese marker"),
    c("trend", F, "decrease then increase", "wrong option text that contains the right one"),
    c("trend", F, "The line falls until 2013 and then rises again, so the answer is E.", "wrong letter"),
    c("trend", F, "increase", "wrong option text"),
    c("trend", F, "E", "wrong letter"),

    # ---- age: integer, unit years, answer 7
    c("age", T, "7", "bare number"),
    c("age", T, "The age gap is 7 years.", "sentence with unit"),
    c("age", T, "The man appears to be about 42 years old and the woman about 35 years old, so the age gap is "
                "42 - 35 = 7 years.\n\nThe answer is 7.", "chain of thought"),
    c("age", T, "**Answer:** 7 years", "markdown"),
    c("age", T, "The answer is 7. Note: the caption says the man was born in 1950 and the woman in 1957, and the "
                "photo was taken around 1990.", "distractor numbers after the answer"),
    c("age", T, "男士约 42 岁，女士约 35 岁。\n答案：7", "Chinese"),
    c("age", T, "The age gap between them is seven years.", "number word"),
    c("age", T, "<think>\nThe man looks around 45, the woman 38. 45 - 38 = 7.\n</think>\n\nThe age gap between "
                "them is 7 years.", "reasoning block"),
    c("age", T, "First estimate: \\boxed{9}. On reflection, the woman looks older, about 35, so the gap is "
                "42 - 35 = 7.\n\nFinal answer: \\boxed{7}", "two boxed, last one right"),
    c("age", F, "The man is about 42 and the woman about 35, so 42 - 35 = 7. Hmm, on a second look she is "
                "closer to 30, so the gap is 42 - 30 = 12 years.\n\nAnswer: 12", "right number revised away"),
    c("age", F, "Answer: 5", "wrong"),
    c("age", F, "I'm sorry, but I can't determine people's ages from their appearance in an image.", "refusal"),
    c("age", F, "First estimate: \\boxed{7}. On reflection, the woman looks younger, about 33, so the gap is "
                "42 - 33 = 9.\n\nFinal answer: \\boxed{9}", "two boxed, last one wrong"),
    c("age", F, "To estimate the age gap, I'll look at facial features. The man has grey hair and wrinkles, "
                "suggesting he is in his 60s, maybe 67. The woman looks about 60, so the gap is around 7 years, "
                "but let me refine this estimate by considering", "cut off before a final answer",
      truncated=True),
    c("age", F, "The age gap is 7 or 8 years.", "hedge"),
    c("age", F, "", "empty output"),

    # ---- count: integer, answer 4
    c("count", T, "4", "bare number"),
    c("count", T, "There are 4 objects left.", "sentence"),
    c("count", T, "Four.", "number word"),
    c("count", T, "Initially there are 7 objects: 2 red balls, 1 tiny cylinder, 2 cubes, 1 large cylinder and 1 "
                  "sphere. Subtracting the 2 red balls and the tiny cylinder leaves 7 - 2 - 1 = 4 objects.\n\n"
                  "The answer is 4.", "chain of thought"),
    c("count", T, "Total objects: 7. Red balls: 2. Tiny cylinders: 1. Remaining: 7 - 3 = 4",
      "ends with an equation"),
    c("count", T, "4\n\nExplanation: after removing the 2 red balls and the 1 tiny cylinder, 2 cubes, 1 large "
                  "cylinder and 1 sphere remain.", "answer first, numbers after"),
    c("count", T, "**Final answer: 4**", "bold"),
    c("count", T, "The answer is $4$.", "inline LaTeX"),
    c("count", F, "3", "wrong"),
    c("count", F, "7 - 2 - 1 = 4. Hmm, wait: there are actually 3 red balls, one hidden behind the cube. So "
                  "7 - 3 - 1 = 3.\n\nAnswer: 3", "right number revised away"),
    c("count", F, "There are 5 objects left.", "wrong sentence"),
    c("count", F, "<think>\nCount: 7 objects, remove 2 red balls and 1 tiny cylinder -> 4 left. Let me double "
                  "check the cylinders", "unfinished reasoning block", truncated=True),
    c("count", F, "After subtracting, the number of objects is 4 + 1 = 5.", "right number inside wrong sum"),

    # ---- year: integer, answer 2014
    c("year", T, "2014", "bare"),
    c("year", T, "In 2014.", "short sentence"),
    c("year", T, "The highest value, 78.5%, was reached in 2014.", "value distractor before"),
    c("year", T, "Looking at the line chart, the share rises from 61.2 in 2010 to a peak of 78.5 in 2014, then "
                 "falls to 70.1 in 2016.\n\nAnswer: 2014", "distractors then answer"),
    c("year", T, "The answer is \\boxed{2014}.", "boxed"),
    c("year", T, "Answer: 2014\n\nThe value in 2014 (78.5) exceeds 2013 (77.9) and 2015 (76.2).",
      "distractor years after"),
    c("year", F, "2013", "wrong"),
    c("year", F, "The value rises from 2012 to 2014, but the peak is in 2013 at 79.0.\n\nAnswer: 2013",
      "right year mentioned, wrong final"),
    c("year", F, "The highest value is 78.5.", "answers the value, not the year"),

    # ---- big: integer, answer 1200
    c("big", T, "1200", "bare"),
    c("big", T, "1,200", "thousands separator"),
    c("big", T, "The total is 1,200 visitors.", "separator and unit"),
    c("big", T, "Adding the bars: 300 + 450 + 250 + 200 = 1200.\n\nThe answer is 1200.", "sum"),
    c("big", T, "1200.0", "float form"),
    c("big", F, "Adding the bars: 300 + 450 + 250 + 200 = 1100.", "arithmetic slip"),
    c("big", F, "120", "wrong magnitude"),
    c("big", F, "The first quarter adds up to 300 + 450 + 250 + 200 = 1200; including the second quarter's 350 "
                "the total is 1550.\n\nAnswer: 1550", "right number then wrong final"),

    # ---- pct: integer, answer 20
    c("pct", T, "20", "bare"),
    c("pct", T, "20%", "percent sign"),
    c("pct", T, "The blue sector takes up 20% of the pie chart.", "sentence"),
    c("pct", T, "Blue: 20%, red: 45%, green: 35%. So the percentage of blue is 20.", "distractors before"),
    c("pct", T, "The blue part is 20%; the remaining 80% is split between red (45%) and green (35%).",
      "distractors after"),
    c("pct", T, "答案是 20%。", "Chinese"),
    c("pct", F, "25%", "wrong"),
    c("pct", F, "The blue sector looks like 20% at first, but its angle is 90°, a quarter of the circle, i.e. "
                "25%.\n\nAnswer: 25", "right number revised away"),
    c("pct", F, "The red sector is 45%.", "answers a different sector"),

    # ---- neg: integer, answer -2
    c("neg", T, "-2", "bare negative"),
    c("neg", T, "The y-intercept is -2.", "sentence"),
    c("neg", T, "The line crosses the y-axis at (0, −2), so the y-intercept is −2.", "unicode minus"),
    c("neg", T, "Answer: $-2$", "LaTeX"),
    c("neg", T, "Using the points (2, 4) and (0, -2), the slope is (4 - (-2)) / (2 - 0) = 3, so y = 3x - 2 and "
                "the y-intercept is -2 (the line crosses the x-axis at 2/3).", "distractor after"),
    c("neg", F, "2", "sign lost"),
    c("neg", F, "The line passes through (0, -2) and (1, 1), so the slope is 3.\n\nAnswer: 3",
      "answers the slope"),
    c("neg", F, "The y-intercept is 1.", "wrong"),

    # ---- f1: float precision 1, unit cm, answer 3.5
    c("f1", T, "3.5", "bare"),
    c("f1", T, "3.5 cm", "unit"),
    c("f1", T, "The red segment is 3.50 cm long.", "extra trailing zero"),
    c("f1", T, "Using the scale bar (1 cm = 2 grid units), the red segment spans 7 units, i.e. 7 / 2 = 3.5 cm.\n\n"
               "The answer is 3.5.", "chain of thought"),
    c("f1", T, "**Answer:** \\(3.5\\)", "markdown and LaTeX"),
    c("f1", T, "The length is 7/2 = 3.5 cm.", "fraction then value"),
    c("f1", T, "Answer: 3.5\nFor comparison, the blue segment is 2.1 cm and the green one 4.8 cm.",
      "distractors after"),
    c("f1", F, "3.4", "off by one tenth"),
    c("f1", F, "35", "missing decimal point"),
    c("f1", F, "The red segment spans 7 grid units.\n\nAnswer: 7", "grid units, not cm"),
    c("f1", F, "The segment is about 3 cm.", "wrong"),
    c("f1", F, "The scale bar shows 1 cm = 2 units. The red segment goes from x = 1.5 to x = 8.5, which is 7 "
               "units, so it is 3.5 cm if the scale applies horizontally. But the segment is slanted, so I need "
               "the vertical component too: from y = 2 to y =", "cut off mid-reasoning", truncated=True),

    # ---- f1b: float precision 1, answer 6.8
    c("f1b", T, "6.8", "bare"),
    c("f1b", T, "The highest dark blue bar is 9.2 and the lowest is 2.4, so the difference is 9.2 - 2.4 = 6.8.",
      "equation"),
    c("f1b", T, "6.80", "trailing zero"),
    c("f1b", T, "<think>\nMax 9.2, min 2.4, diff 6.8\n</think>\n\\boxed{6.8}", "reasoning block then boxed"),
    c("f1b", T, "The difference is approximately 6.8.", "approximately"),
    c("f1b", F, "6.6", "wrong"),
    c("f1b", F, "9.2 - 2.4 = 6.8. Hmm, the lowest dark blue bar is actually 2.6, so 9.2 - 2.6 = 6.6.\n\n"
                "The answer is 6.6.", "right number revised away"),
    c("f1b", F, "The highest value is 9.2 and the lowest is 2.4.", "no difference computed"),
    c("f1b", F, "\\boxed{6.8} or \\boxed{7.0}", "two boxed candidates (hedge)"),

    # ---- f2: float precision 2, answer 0.75
    c("f2", T, "0.75", "bare"),
    c("f2", T, "tan θ = opposite / adjacent = 3 / 4 = 0.75", "equation"),
    c("f2", T, "\\frac{3}{4}", "exact fraction equal to the target"),
    c("f2", T, ".75", "no leading zero"),
    c("f2", T, "Answer: 0.75 (opposite side 3, adjacent side 4, hypotenuse 5)", "distractors after"),
    c("f2", F, "0.8", "too coarse"),
    c("f2", F, "tan θ = 4 / 3 ≈ 1.33", "inverted ratio"),
    c("f2", F, "sin θ = 3 / 5 = 0.6", "wrong function"),

    # ---- f3: float precision 3, answer 0.125
    c("f3", T, "0.125", "bare"),
    c("f3", T, "The smallest bar is 2 and the largest is 16, so the ratio is 2/16 = 0.125.", "equation"),
    c("f3", T, "The ratio is 1:8, i.e. 0.125.", "ratio then value"),
    c("f3", F, "0.25", "wrong"),
    c("f3", F, "2/16 = 0.125... no wait, the largest bar is 8, so 2/8 = 0.250", "right value revised away"),

    # ---- list: answer [2007, 2008]
    c("list", T, "[2007, 2008]", "exact"),
    c("list", T, "The years with values above 50 are 2007 and 2008.", "prose list"),
    c("list", T, "[2007,2008]", "no space"),
    c("list", T, "Values: 2005: 42, 2006: 48, 2007: 55, 2008: 61, 2009: 49. Above 50: 2007 and 2008.\n\n"
                 "Answer: [2007, 2008]", "distractors then list"),
    c("list", T, "**Answer:** `[2007, 2008]`", "markdown code"),
    c("list", F, "[2007, 2008, 2009]", "extra element"),
    c("list", F, "[2008]", "missing element"),
    c("list", F, "Values: 2005: 42, 2006: 48, 2007: 55, 2008: 61, 2009: 49.\n\nAnswer: [2006, 2007]",
      "right years in text, wrong final list"),

    # ---- list2: answer [3, -1]
    c("list2", T, "[3, -1]", "exact"),
    c("list2", T, "Point P is at (3, -1).", "tuple notation"),
    c("list2", T, "The coordinates of P are x = 3 and y = -1, so the answer is [3, -1].", "sentence"),
    c("list2", F, "[-1, 3]", "swapped coordinates"),
    c("list2", F, "P = (3, 1)", "sign lost"),

    # ---- extra wrong answers (adversarial near-misses)
    c("angle", F, "$$\\boxed{45^\\circ}$$", "boxed wrong option text"),
    c("angle", F, "Triangle OBC is isosceles and ∠BOC = 2∠BAC = 60°, so ∠ABC = (180° - 60°) / 2 = 60°... no, "
                  "that gives the base angle 60° only if ∠BOC = 60°, and it is 90°. So ∠ABC = 45°. The answer is B.",
      "right value on the way, wrong final letter"),
    c("shape", F, "I can't tell what the shape is; the image is too blurry.", "refusal"),
    c("shape", F, "The shaded region is bounded by four segments of equal length. Answer:", "cut off after marker",
      truncated=True),
    c("yesno", F, "Yes, it is the maximum.", "wrong sentence"),
    c("digits", F, "x = 2", "wrong option text (B)"),
    c("digits", F, "The answer is \\boxed{B}", "boxed wrong letter"),
    c("foodweb", F, "The hawks would decrease.", "not an option; closest text is a wrong option"),
    c("trend", F, "stay the same", "wrong option text"),
    c("age", F, "The answer is 17.", "target is a substring of the answer"),
    c("age", F, "<think>\nThe man is about 42 and the woman 35, so 7.\n</think>\n\nThe age gap is 10 years.",
      "right number only inside the reasoning block"),
    c("count", F, "There are three objects left.", "wrong number word"),
    c("year", F, "The peak is in 2015.", "wrong year"),
    c("big", F, "1,250", "wrong, with separator"),
    c("pct", F, "20.5%", "not the integer answer"),
    c("neg", F, "-3", "wrong negative"),
    c("f1", F, "\\boxed{3.6}", "boxed wrong value"),
    c("f2", F, "0.57", "wrong"),
    c("list", F, "2007", "one element, not the list"),
    c("list2", F, "[3, -1, 0]", "extra coordinate"),
]
