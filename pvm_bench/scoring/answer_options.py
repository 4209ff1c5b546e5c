"""Which option of a multiple-choice question a final-answer span names (math tasks' ``parse``).

The option inference follows VLMEvalKit's ``can_infer`` (``vlmeval/utils/matching_util.py``
lines 18-127 at open-compass/VLMEvalKit e8e78f05: ``can_infer_option`` counts standalone choice
letters after replacing ``.()[],:;!*#{}`` with spaces and accepts a single one among the last four
words, ``splits.index(ch) > len(splits) - 5``, line 52; ``can_infer_text``, lines 107-121, accepts
a single choice text contained in a short answer), applied to
the final-answer span (:func:`pvm_bench.scoring.answers.find_final_answer`) rather than to the whole
output, plus a leading-letter rule ("(B) 8/11", "B. green") and exact/numeric option-text matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pvm_bench.scoring.answers import normalize_text, numbers_in, numbers_match
from pvm_bench.scoring.mathclean import clean_math

_QUOTES = "\"'`“”‘’"
_LEAD_LETTER = re.compile(r"^\(?([A-Z])\)?(?=\s*$|[.:;,)]|\s+(?:because|since|as|is|which|[-–—(]))")


def infer_option(span: str, choices: Sequence[str], extractor: str = "answer_marker") -> tuple[int, str] | None:
    """The chosen option's index in ``choices`` and how it was inferred (``"option_letter"`` or
    ``"option_text"``), or None.

    Order: a leading letter ("B", "(B) 8/11", "B. green", "**B**"); "option B"; a choice text equal
    to the span, or the single longest choice text it contains (VLMEvalKit ``can_infer_text``);
    a number equal to exactly one numeric choice; a single standalone letter among the last four
    words (VLMEvalKit ``can_infer_option``).
    """
    letters = [chr(ord("A") + i) for i in range(len(choices))]
    s = clean_math(span).strip().strip(_QUOTES + "*_").strip().strip(_QUOTES).strip()
    s = re.sub(r"\\boxed\s*\{([^{}]*)\}", r"\1", s).strip()
    m = _LEAD_LETTER.match(s)
    if m is None and re.fullmatch(r"\(?[a-z]\)?\.?", s):  # a lone lower-case letter: "(b)", "b"
        m = re.match(r"\(?([a-z])", s)
    if m and m.group(1).upper() in letters:
        return letters.index(m.group(1).upper()), "option_letter"
    m = re.search(r"(?i)\b(?:option|choice)\s*\(?([A-Z])\)?(?![\w])", s)
    if m and m.group(1).upper() in letters:
        return letters.index(m.group(1).upper()), "option_letter"
    norm = normalize_text(s)
    norms = [normalize_text(c) for c in choices]
    if norm in norms:
        return norms.index(norm), "option_text"
    if len(norm) <= 300:
        hits = [i for i, c in enumerate(norms) if c and re.search(rf"(?<![\w.]){re.escape(c)}(?![\w.])", norm)]
        hits = [i for i in hits if not any(i != j and norms[i] in norms[j] for j in hits)]
        if len(hits) == 1:
            return hits[0], "option_text"
    found = numbers_in(s)
    if len(found) == 1:
        numeric = [i for i, c in enumerate(choices)
                   if len(numbers_in(c)) == 1 and numbers_match(found[0][0], numbers_in(c)[0][0])]
        if len(numeric) == 1:
            return numeric[0], "option_text"
    words = [w for w in re.sub(r"[.()\[\],:;!*#{}\"`“”]", " ", s).split()]
    present = [w for w in words if w in letters]
    if len(set(present)) == 1 and words.index(present[0]) > len(words) - 5 and not (
            present[0] == "A" and len(words) > 3 and extractor == "last_line"):
        return letters.index(present[0]), "option_letter"
    return None
