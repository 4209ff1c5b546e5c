"""The one escaping function of every markdown writer (summary.md, compare.md, ``check --markdown``,
the leaderboard): user-supplied text (task, metric and variant names, run ids, notes, cells) is
passed through :func:`md_escape` before it is written.

GitHub renders raw HTML inside markdown (CI step summaries included), so ``<``, ``>`` and ``&``
become entities (``<img src=x onerror=...>`` shows as text); ``|`` is escaped so a name cannot
split a table cell; line breaks become spaces so a name cannot start a new block. The rendered
text reads exactly as the original.
"""

from __future__ import annotations

import html
from typing import Any

_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\u2028": " ", "\u2029": " "})


def md_escape(value: Any) -> str:
    """``value`` as markdown text that renders as itself and carries no HTML (see the module docstring)."""
    return html.escape(str(value), quote=False).translate(_BREAKS).replace("|", "\\|")
