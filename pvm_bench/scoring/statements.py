"""Statements of the asked quantity: "Area: 12", "The age gap is 7 years", "There are 3 bars above 40".

An output without an answer marker often states the answer as a labelled value, the asked quantity
first and other values after it ("Area: 12\\nPerimeter: 16", "The slope is -3. Two points on the
line are (0, 6) and (2, 0)."). Its last line then holds a different quantity. A person reads the
statement whose label *is* the asked quantity; :func:`asked_statement` does the same:

* the asked quantity is the head of the question: the words after "How many" up to the verb
  ("How many bars have ..." -> bars), after "What is the" up to a preposition or participle
  ("What is the age gap between ..." -> age gap), or after "Find" (``∠ABC``); other question forms
  (which/is/does ...) name no quantity and the rule is off;
* a statement is a clause (lines, sentences, ``;`` and ", so" split it) of the form
  ``LABEL is|are|was|were|equals|:|=|≈ VALUE`` or ``There are VALUE LABEL``; a value opening with
  "not" is a negation and one naming two values ("7 or 8 years") a hedge, neither a statement;
* it states the asked quantity when its label (with the unit after a leading number: "Above 40:
  3 bars") holds every head word and no word absent from the question (so "Bars below 40" and
  "Total bars" do not state "bars above 40", and "There are 7 objects" does not state "objects
  left");
* its value is the first number after the verb (after an arithmetic chain "1/2 × 6 × 4 = 12", after
  the last restatement: "1:8, i.e. 0.125", "4:6, which simplifies to 2:3 ≈ 0.67");
* the last such statement wins (a restatement after a correction is the final one).

Written by hand (no parser library in the stack handles this kind of loose answer prose).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_STOP = frozenset(
    "the a an of in on at for to by with from and or so thus therefore hence then final finally overall "
    "its their this that these those it is are was were be".split())
_HEAD = (
    re.compile(r"(?i)\bhow\s+many\s+(.+?)\s+(?:(?:are|is|were|was)\s+(left|remaining|missing)\b|are|is|were|was|have|"
               r"has|do|does|did|can|could|in|on|of|there)\b"),
    re.compile(r"(?i)\bwhat\s+(?:is|was|are)\s+the\s+(.+?)(?:\s+(?:of|in|on|at|for|between|from|shown|that|when|"
               r"if|after|before|to|with)\b|\s*[?,.(]|$)"),
    re.compile(r"(?i)\b(?:find|calculate|compute|determine)\s+(?:the\s+)?(.+?)"
               r"(?:\s+(?:of|in|on|for|between)\b|\s*[?,.(]|$)"),
)
_CLAUSES = re.compile(r"\n|;|(?<=[^\d\s])(?<!i\.e|e\.g)\.\s+|(?<=\d)\.\s+(?=[A-Z])"
                      r"|,\s+(?=(?:so|and|thus|therefore|hence)\s)")
_STATEMENT = re.compile(r"(?i)^(?P<label>[^:=≈]{1,60}?)\s*(?:\b(?:is|are|was|were|equals)\b|[:=≈：])"
                        r"\s*(?P<value>.+)$")
_THERE = re.compile(r"(?i)^there\s+(?:is|are|was|were)\s+(?:a\s+total\s+of\s+|exactly\s+|about\s+)?"
                    r"(?P<value>\S+)\s+(?P<label>.+)$")
_NOT_VALUE = re.compile(r"(?i)not\b|n't\b")
_HEDGE = re.compile(r"(?i)\d\s*%?\s*(?:or|to)\s+(?:about\s+)?-?\d")  # "7 or 8 years", "5 to 6": no single value
_RESTATED = re.compile(r"(?i)(?:\bi\.e\.|\bthat is|\bor equivalently|\bwhich (?:simplifies to|is|equals|gives)|≈)"
                       r"\s*,?\s*(?=-?\$?\d)")
#: A second look after a statement ("Looking again, ...", "However, ..."): the caller then trusts the
#: last line instead, as it did before statements were read.
SECOND_LOOK = re.compile(r"(?i)\b(?:looking again|look again|on closer inspection|closer look|re-?check\w*|"
                         r"re-?examin\w*|recount\w*|correct(?:ion|ed|ing)|instead|however|but)\b")
_UNIT = re.compile(r"-?[\d.,/]+\s+([A-Za-z]+)")
_CHAIN = re.compile(r"^[\d\s.,/×*+\-−()÷^]+=\s*")  # "1/2 × 6 × 4 = 12": the value is what the chain ends in


def words(text: str) -> set[str]:
    """Content words of ``text``: lower case, a plural ``s`` dropped, stop words out."""
    out = set()
    for w in re.findall(r"[\w∠°]+", text.lower()):
        if w in _STOP:
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def asked_quantity(question: str) -> set[str]:
    """The head words of the quantity ``question`` asks for, empty when it asks for none."""
    for pattern in _HEAD:
        m = pattern.search(question or "")
        if m:
            head = words(" ".join(g for g in m.groups() if g))
            if head and len(head) <= 4:
                return head
    return set()


def asked_statement(text: str, question: str, parse: Callable[[str, str], T | None]) -> tuple[str, T] | None:
    """The value span and parsed value of the last statement of the asked quantity, or None."""
    head = asked_quantity(question)
    if not head:
        return None
    allowed = words(question)
    found: tuple[str, T] | None = None
    for clause in _CLAUSES.split(text):
        clause = clause.strip().lstrip("-*•#> \t").strip().strip("*_").strip()
        m = _THERE.match(clause) or _STATEMENT.match(clause)
        if m is None:
            continue
        value = m.group("value").strip().strip("*_").strip()
        label = words(m.group("label").replace("*", ""))
        unit = _UNIT.match(value)  # "Above 40: 3 bars": the unit after the number completes the label
        if unit and not head <= label:
            label |= words(unit.group(1))
        if not head <= label or not label <= allowed or _NOT_VALUE.match(value) or _HEDGE.search(value):
            continue
        while _CHAIN.match(value):
            value = _CHAIN.sub("", value, count=1)
        restated = list(_RESTATED.finditer(value))  # "1:8, i.e. 0.125": the last restatement is the value
        got = parse(value[restated[-1].end():] if restated else value, "statement")
        if got is not None:
            found = (value, got)
    return found
