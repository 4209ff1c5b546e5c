"""The jinja2 environment of report.html (templates in ``pvm_bench/report/templates``, package data).

Autoescape is always on: every ``{{ value }}`` is HTML-escaped unless the caller passes a
:class:`markupsafe.Markup` it built safely itself; undefined template variables are errors.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared, cached environment for the report templates."""
    return Environment(loader=PackageLoader("pvm_bench.report", "templates"), autoescape=True,
                       undefined=StrictUndefined, keep_trailing_newline=True)
