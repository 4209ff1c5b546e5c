"""The PVM paper's Table 1 as data, and what ``--protocol pvm-paper`` sets for a run.

``paper_table1.json`` holds the published rows (4-run average accuracy in %, lmms-eval at
temperature 0.7: README "Evaluation" and the Table 1 caption in results.png of
github.com/huaixuheqing/PVM), each checked against that image: Qwen3-VL-8B/4B-Instruct, PVM-8B/4B
(SFT+GRPO) and MemVR on Qwen3-VL-8B, the eight benchmarks in the table's order and their average.
Each column names the pvm-bench task that runs its benchmark version (the ``pvm-paper`` group,
``tasks/groups.py``). The report shows these rows beside a run's
(:mod:`pvm_bench.report.paper`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

#: Run settings ``--protocol pvm-paper`` implies when the user does not set them: the paper's
#: sampling temperature and its four runs (each task's headline is then the 4-run average).
PAPER_RUN_DEFAULTS: dict[str, Any] = {"temperature": 0.7, "repeats": 4}
PAPER_PROTOCOL = "pvm-paper"


@functools.cache
def published() -> dict[str, Any]:
    """The published table: ``columns`` (label, task), ``rows`` (model, values, average), ``protocol``."""
    return json.loads((Path(__file__).with_name("paper_table1.json")).read_text(encoding="utf-8"))


def paper_tasks() -> list[str]:
    """The task of each Table 1 column, in the table's order."""
    return [c["task"] for c in published()["columns"]]


def protocol_run_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` (the run options the user set) with the paper's temperature and repeats filled in
    when ``protocol`` is ``pvm-paper``; explicit values win."""
    if given.get("protocol") != PAPER_PROTOCOL:
        return given
    return {**PAPER_RUN_DEFAULTS, **given}
