r"""LaTeX/markdown/sign normalisation of a math answer span (:func:`clean_math`), shared by the
final-answer extraction (:mod:`pvm_bench.scoring.answers`) and the free-form scorer
(:mod:`pvm_bench.scoring.mathscore`).

Every rewrite keeps the value a person reads: unicode/full-width minus signs become ``-``,
``\frac{a}{b}`` and the braceless ``\frac12`` become ``a/b``, and a sign written as a word
("negative 4", "the answer is minus 4") becomes ``-4`` unless "minus" follows an operand
("10 minus 4" stays a subtraction).
"""

from __future__ import annotations

import re

__all__ = ["clean_math"]


def clean_math(span: str) -> str:
    r"""Drop LaTeX/markdown decoration that never changes a value: ``$``, ``\(\)``, ``\text{}``
    wrappers, ``\left``/``\right``, ``\,``, degree marks, unicode minus, emphasis."""
    s = span.translate(_MINUS_SIGNS).replace("\\!", "").replace("\\,", "").replace("\\;", "")
    s = re.sub(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}", r" \1 ", s)
    s = re.sub(r"\\(?:text|textbf|mathrm|mathbf|operatorname|mbox)\b", "", s)  # nested: \text{\frac{1}{2}}
    s = s.replace("\\left", "").replace("\\right", "").replace("\\(", "").replace("\\)", "")
    s = s.replace("\\[", "").replace("\\]", "").replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "")
    s = s.replace("\\%", "%").replace("\\$", "$").replace("$", " ").replace("**", "").replace("{,}", ",")
    s = _FRAC.sub(lambda m: f"{m.group(1) or m.group(2)}/{m.group(3) or m.group(4)}", s)
    return _SIGN_WORD.sub(_sign_word, s).strip()


_MINUS_SIGNS = str.maketrans({c: "-" for c in "\u2212\u2013\u2012\ufe63\uff0d"})  # − – ‒ ﹣ －
_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*(-?\d+(?:\.\d+)?)\s*\}|(\d))\s*(?:\{\s*(-?\d+(?:\.\d+)?)\s*\}|(\d))")
_SIGN_WORD = re.compile(r"(?i)\b(negative|minus)\s+(?=\$?\.?\d)")
_OPERAND = re.compile(r"(?:[\d)\]}]|\b[A-Za-z])\s*$")  # "10 minus 4", "x minus 4": subtraction


def _sign_word(m: re.Match[str]) -> str:
    """"negative 4" / "is minus 4" -> "-4"; "10 minus 4" (after an operand) stays a subtraction."""
    return m.group(0) if m.group(1).lower() == "minus" and _OPERAND.search(m.string[:m.start()]) else "-"
