"""The PVM paper's published Table 1 beside a run's own numbers (summary.md and report.html).

Shown when the run has at least one of the paper's benchmark versions (the ``pvm-paper`` group's
tasks, :func:`pvm_bench.paper_table.paper_tasks`): the published rows (4-run average accuracy in %),
then one row per variant of this run with each task's headline metric x 100 (already the mean over
the run's repeats) and their average when all eight are present. :func:`paper_note` states how the
run's protocol differs from the paper's.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pvm_bench.paper_table import PAPER_RUN_DEFAULTS, published
from pvm_bench.report.rundata import RunData

#: Scoring differences that hold for every run (the paper used lmms-eval's GPT-based metrics here).
SCORING_DIFFERENCES = (
    "MathVerse^V is scored by rules here and by lmms-eval's GPT judge in the paper; MMBench lite by "
    "lmms-eval's static evaluation here and by its GPT-matched gpt_eval_score in the paper"
)


#: Run options that, when set, override what the paper's protocol or the task sends (their values
#: otherwise come from lmms-eval's wrapper and task settings, pvm_bench.models.protocol / the task).
OVERRIDES = {
    "system_prompt": "the protocol's system turn", "min_pixels": "the protocol's image sizes",
    "max_pixels": "the protocol's image sizes", "max_new_tokens": "each task's own length",
    "split": "each task's own split", "top_p": "the checkpoint's", "top_k": "the checkpoint's",
    "repetition_penalty": "the checkpoint's",
}


def paper_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Published rows, then this run's rows (one per variant); empty when the run has none of the
    paper's tasks."""
    table = published()
    labels = [c["label"] for c in table["columns"]]
    tasks = [c["task"] for c in table["columns"]]
    head = rows[(rows["kind"] == "task") & rows["headline"].astype(bool) & rows["task"].isin(tasks)]
    if head.empty:
        return pd.DataFrame()
    out: list[dict[str, Any]] = [
        {"row": f"published: {r['model']}", **{lab: f"{v:.1f}" for lab, v in zip(labels, r["values"])},
         "avg (8)": f"{r['average']:.1f}"}
        for r in table["rows"]
    ]
    for variant in variants:
        got = head[head["variant"] == variant].set_index("task")["value"]
        if got.empty:
            continue
        values = [float(got[t]) * 100 if t in got.index else math.nan for t in tasks]
        done = all(math.isfinite(v) for v in values)
        out.append({"row": f"this run: {variant}", **{lab: _fmt(v) for lab, v in zip(labels, values)},
                    "avg (8)": _fmt(sum(values) / len(values)) if done else "–"})
    return pd.DataFrame(out)


def _fmt(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "–"


def paper_note(data: RunData) -> str:
    """The paper's protocol, this run's, and where they differ."""
    config = data.run.config if data.run else {}
    temperature = config.get("temperature", 0.0)
    repeats = config.get("repeats", 1)
    protocol = config.get("protocol", "default")
    differ = []
    if temperature != PAPER_RUN_DEFAULTS["temperature"]:
        differ.append(f"temperature {temperature} (paper {PAPER_RUN_DEFAULTS['temperature']})")
    if repeats != PAPER_RUN_DEFAULTS["repeats"]:
        differ.append(f"{repeats} run(s) averaged (paper {PAPER_RUN_DEFAULTS['repeats']})")
    if protocol not in ("lmms-eval", "pvm-paper"):
        differ.append(f"--protocol {protocol} (paper: lmms-eval's inputs; use --protocol pvm-paper)")
    if config.get("limit"):
        differ.append(f"--limit {config['limit']} (paper: every sample)")
    differ += [f"--{key.replace('_', '-')} {config[key]!r} (paper: {source})" for key, source in OVERRIDES.items()
               if config.get(key) is not None]
    run = "; ".join(differ) if differ else "the same temperature, repeats and inputs as the paper"
    return (f"Published: {published()['protocol']} ({published()['source']}). This run: {run}. "
            f"Always different: {SCORING_DIFFERENCES}. A '–' is a benchmark this run did not evaluate.")
