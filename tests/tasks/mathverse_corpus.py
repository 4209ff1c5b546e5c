"""Hand-written MathVerse/MathVision-style outputs with a person's verdict (written once, then scored).

``(doc, output, correct)``; docs hold the gold answer, whether it is multiple choice, and the
options as MathVerse lists them in the question (``A:5``) or MathVision in ``options``.
"""

from __future__ import annotations

DOCS: dict[str, dict] = {
    "mc_len": {"answer": "B", "mc": True, "options": ["5", "10", "15", "20"]},
    "mc_shape": {"answer": "C", "mc": True, "options": ["cube", "cylinder", "cone", "sphere"]},
    "sqrt": {"answer": "2\\sqrt{3}", "mc": False, "options": None},
    "deg": {"answer": "60", "mc": False, "options": None},
    "frac": {"answer": "\\frac{3}{4}", "mc": False, "options": None},
    "line": {"answer": "y=2x+1", "mc": False, "options": None},
    "point": {"answer": "(1,2)", "mc": False, "options": None},
    "dec": {"answer": "5.5", "mc": False, "options": None},
}

T, F = True, False

CASES: list[tuple[str, str, bool]] = [
    ("mc_len", "B", T),
    ("mc_len", "The length of AB is 10, so the answer is B.", T),
    ("mc_len", "Since triangle ABC is similar to triangle ADE with ratio 2, AB = 2 × 5 = 10.\n\nAnswer: B", T),
    ("mc_len", "AB = 15\nAnswer: C", F),
    ("mc_len", "\\boxed{B}", T),
    ("mc_len", "The answer is A. Wait, I used the wrong ratio; AB = 10, so the answer is B.", T),
    ("mc_len", "<think>ratio 2, 2*5=10</think>\nB. 10", T),
    ("mc_len", "By the Pythagorean theorem, AB = √(6² + 8²) = 10.", T),
    ("mc_len", "AB = 20", F),
    ("mc_shape", "The solid has a circular base and an apex, so it is a cone. The answer is C.", T),
    ("mc_shape", "cone", T),
    ("mc_shape", "It is a cylinder.\nAnswer: B", F),
    ("mc_shape", "\\boxed{\\text{C}}", T),
    ("sqrt", "\\boxed{2\\sqrt{3}}", T),
    ("sqrt", "The height is $2\\sqrt{3}$.", T),
    ("sqrt", "h = \\sqrt{12} = 2\\sqrt{3}\n\nAnswer: $2\\sqrt{3}$", T),
    ("sqrt", "\\boxed{\\sqrt{3}}", F),
    ("sqrt", "The answer is 4.", F),
    ("sqrt", "\\boxed{3\\sqrt{2}}", F),
    ("deg", "\\boxed{60^\\circ}", T),
    ("deg", "Angle ABC = 180° - 50° - 70° = 60°.", T),
    ("deg", "The angle is 60 degrees.", T),
    ("deg", "\\boxed{30}", F),
    ("deg", "Answer: 120°", F),
    ("frac", "\\boxed{\\frac{3}{4}}", T),
    ("frac", "\\boxed{0.75}", T),
    ("frac", "The probability is 3/4.", T),
    ("frac", "\\boxed{\\frac{4}{3}}", F),
    ("frac", "The answer is \\frac{1}{4}.", F),
    ("line", "The equation of the line is $y = 2x + 1$.", T),
    ("line", "\\boxed{y=2x+1}", T),
    ("line", "Answer: y = 2x - 1", F),
    ("line", "The slope is 2 and the intercept is 1, so \\boxed{y = 2x + 1}.", T),
    ("point", "\\boxed{(1, 2)}", T),
    ("point", "The intersection point is (1, 2).", T),
    ("point", "The answer is (2, 1).", F),
    ("dec", "\\boxed{5.5}", T),
    ("dec", "The length is 5.5 cm.", T),
    ("dec", "The length is 5.50 cm.", T),
    ("dec", "Answer: 11/2", T),
    ("dec", "The length is 5 cm.", F),
    ("dec", "I cannot determine the length from the figure.", F),
]
