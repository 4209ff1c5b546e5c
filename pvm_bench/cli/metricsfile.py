"""Reading ``metrics.csv``, the long metric rows a report writes (:mod:`pvm_bench.report.rows`).

Two readers pick the headline rows from it -- the closing table of ``pvm-bench run``
(:func:`pvm_bench.cli.progress.headline_rows`) and the experiment trackers
(:func:`pvm_bench.cli.trackers.read_payload`) -- and both use :func:`is_headline` here, so they agree
on which rows those are. Standard library only: the CLI reads it before pandas loads.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: How an empty cell reads back from the CSV: pandas writes NaN/None as "", hand-made or older
#: files may spell it out.
BLANK_CELLS = ("", "nan", "none")


def blank(value: Any) -> bool:
    """Whether a metrics.csv cell is empty (None, "", "nan", "None", any case or padding)."""
    return value is None or str(value).strip().lower() in BLANK_CELLS


def is_headline(row: Mapping[str, Any]) -> bool:
    """A headline row: ``headline`` true, and neither a length band (``band``) nor a position (``t``).

    These are the per task and variant headline metric rows, then the pooled ``ALL`` and ``MACRO``
    rows, in the order the report wrote them.
    """
    flagged = str(row.get("headline", "")).strip().lower() in ("true", "1")
    return flagged and blank(row.get("band")) and blank(row.get("t"))


def read_metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """Every row of ``run_dir/metrics.csv`` as strings; [] when the report has not written one."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def headline_metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """The :func:`is_headline` rows of ``run_dir/metrics.csv``, in file order."""
    return [row for row in read_metric_rows(run_dir) if is_headline(row)]
