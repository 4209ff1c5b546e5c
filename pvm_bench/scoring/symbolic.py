r"""Symbolic answer equality as lmms-eval 0.7.3's MathVision scorer does it, without ``eval``.

lmms-eval ``tasks/mathvision/eval_utils.py`` (0.7.3 wheel) compares answers with
``is_equal`` (lines 80-128): lower-case string equality, then ``eval_tuple`` (lines 38-78:
tuples/lists element by element, each element ``round(eval(str(latex2sympy(x))), 2)``), then
``round(eval(str(latex2sympy(gt))), 2) == round(eval(str(latex2sympy(pred))), 2)``; any exception
means "not equal". ``latex2sympy`` comes from the ``latex2sympy2`` package (eval_utils.py line 5),
a dependency of pvm-bench.

``eval(str(expr))`` runs in eval_utils' module namespace, where no sympy names exist: a result
such as ``sqrt(2)`` or ``2*pi`` raises ``NameError`` and compares unequal; only plain numeric
arithmetic evaluates. :func:`numeric_value` reproduces exactly that with a whitelist AST walk
(numbers, ``+ - * / ** %`` and unary signs), so no model text is ever executed.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import operator
from typing import Any

#: Whether the symbolic step is available (recorded in ``Score.details["symbolic"]``). Found without
#: importing it: latex2sympy2 pulls in sympy (~0.8 s), paid on the first symbolic comparison only.
SYMBOLIC = "latex2sympy2" if importlib.util.find_spec("latex2sympy2") is not None else "unavailable"


@functools.cache
def _latex2sympy() -> Any:
    """latex2sympy2's parser, or None when it does not import (a declared dependency; a broken install
    degrades to string equality)."""
    try:
        from latex2sympy2 import latex2sympy  # type: ignore[import-untyped]
    except Exception:  # pragma: no cover - depends on the environment
        return None
    return latex2sympy

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.Mod: operator.mod}
_UN = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def numeric_value(text: str) -> float:
    """Python's ``eval`` of ``text`` restricted to numeric arithmetic; raises ValueError (where
    ``eval`` in lmms-eval's namespace would raise NameError/SyntaxError/...) otherwise."""

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return _BIN[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UN:
            return _UN[type(node.op)](walk(node.operand))
        raise ValueError(f"not plain arithmetic: {type(node).__name__}")

    try:
        value = walk(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, ZeroDivisionError, OverflowError, TypeError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc
    if isinstance(value, complex):
        raise ValueError("complex")
    return float(value) if isinstance(value, float) else value


def _sym_round(latex: str) -> Any:
    parse = _latex2sympy()
    if parse is None:
        raise ValueError("latex2sympy2 is not installed")
    return round(numeric_value(str(parse(latex))), 2)


def eval_tuple(s: str) -> str:
    """lmms-eval ``eval_tuple`` (eval_utils.py lines 38-78)."""
    sl = s[1:-1].split(",")
    try:
        if s[0] == "(" and s[-1] == ")" and len(sl) > 1:
            return (
                "(" + ",".join(str(_sym_round(x)) if "infty" not in x and x not in ["a", "-a"] else x for x in sl) + ")"
            )
        if s[0] == "[" and s[-1] == "]" and len(sl) > 1:
            return (
                "[" + ",".join(str(_sym_round(x)) if "infty" not in x and x not in ["a", "-a"] else x for x in sl) + "]"
            )
    except Exception:
        return s
    return s


def is_equal(asw: str, gt_asw: str) -> bool:
    """lmms-eval ``is_equal`` (eval_utils.py lines 80-128): string, tuple, then symbolic."""
    asw, gt_asw = asw.lower(), gt_asw.lower()
    if asw.replace(" ", "") == "" or gt_asw.replace(" ", "") == "":
        return False
    if gt_asw.strip() == asw.strip():
        return True
    asw, gt_asw = eval_tuple(asw), eval_tuple(gt_asw)
    if gt_asw == asw:
        return True
    try:
        return bool(_sym_round(gt_asw) == _sym_round(asw))
    except Exception:
        return False
