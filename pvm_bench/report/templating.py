"""The jinja2 environment of report.html (templates in ``pvm_bench/report/templates``, package data).

Autoescape is always on: every ``{{ value }}`` is HTML-escaped unless the caller passes a
:class:`markupsafe.Markup` it built safely itself; undefined template variables are errors.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared, cached environment for the report templates."""
    return Environment(loader=PackageLoader("pvm_bench.report", "templates"), autoescape=True,
                       undefined=StrictUndefined, keep_trailing_newline=True)


def html_table(df: pd.DataFrame, table_id: str) -> Markup:
    """``df`` as an HTML table with every cell escaped (``to_html(escape=True)``, NaN as –), or a
    "No data." note when it is empty; safe to pass to a template as is."""
    if df.empty:
        return Markup('<p class="note">No data.</p>')
    return Markup(df.to_html(index=False, escape=True, border=0, table_id=table_id, na_rep="–"))  # noqa: S704
