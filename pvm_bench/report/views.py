"""Readable tables (strings) built from the metric rows, shared by summary.md and report.html.

Every view takes the long rows (:data:`pvm_bench.report.rows.ROW_COLUMNS`) and selects by
(task, variant, metric, band, t, kind); none parses a column name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pvm_bench.report.ablation import split_ablated
from pvm_bench.report.decay import layer_span
from pvm_bench.report.distance import BAND_PREFIX, band_low
from pvm_bench.report.fit import FIXED_POSITIONS
from pvm_bench.report.mdtext import md_escape
from pvm_bench.report.rows import MACRO, POOLED, TaskInfo, length_buckets
from pvm_bench.report.stats import SMALL_N

SMALL_N_MARK = "†"
"""Appended to every cell whose estimate rests on fewer than :data:`SMALL_N` units."""
SMALL_N_NOTE = f"{SMALL_N_MARK} = small n (fewer than {SMALL_N} samples or units: wide CI, weak p)."

#: How to read the score-flag table (shared by summary.md and report.html).
FLAGS_NOTE = (
    "Boolean details a task's scorer records next to the score, as the share of records where they "
    "are true (e.g. filler_ok: the text before the answer was exactly what the prompt asked for)."
)
#: How to read the metrics table (shared by summary.md and report.html).
METRICS_NOTE = (
    "Each task's declared metrics (headline marked *): value with a 95% CI over the metric's units "
    "(samples; CircularEval questions; HallusionBench question/figure groups): Wilson score interval for "
    "0/1 units; percentile bootstrap for non-binary metrics, falling back to the Wilson interval of the "
    "mean when the bootstrap is degenerate (n = 1 or all scores equal); stratified metrics and MACRO resample within "
    "each stratum / "
    "task (Wilson half-widths combined when that is degenerate). Δ vs base: the same metric paired unit "
    "by unit with `base`, 95% CI Newcombe's paired interval for 0/1 pairs (percentile bootstrap of the "
    "differences otherwise); p from McNemar's exact test (0/1 units) or a sign-flip permutation test. ALL: mean score "
    "over (task, sample) units of every task. MACRO: "
    "mean of the tasks' headline metrics (CI resampling within each task). unparsed: share of records whose "
    f"scorer extracted no answer. {SMALL_N_NOTE}"
)


def fmt(x: Any, digits: int = 3) -> str:
    """Human formatting: NaN/None -> an en dash, floats to ``digits`` decimals."""
    if x is None or (isinstance(x, (float, np.floating)) and not math.isfinite(float(x))):
        return "–"
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}f}"
    return str(x)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(float(x))


def fmt_p(p: Any) -> str:
    """p-values: two significant digits, ``<0.001`` below that."""
    if not finite(p):
        return "–"
    return "<0.001" if p < 1e-3 else f"{p:.2g}"


def fmt_ci(value: Any, low: Any, high: Any, digits: int = 3, sign: bool = False) -> str:
    """``0.512 [0.431, 0.590]`` (``+`` signs with ``sign``); – when the value is missing."""
    if not finite(value):
        return "–"
    f = f"{{:+.{digits}f}}" if sign else f"{{:.{digits}f}}"
    if not (finite(low) and finite(high)):
        return f.format(value)
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


def small_n(n: Any) -> bool:
    """True when ``n`` is a positive count below :data:`SMALL_N`."""
    return finite(n) and 0 < float(n) < SMALL_N


def mark(n: Any) -> str:
    """:data:`SMALL_N_MARK` for a small ``n`` (see :func:`small_n`), else ``""``."""
    return SMALL_N_MARK if small_n(n) else ""


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency); every header and cell goes
    through :func:`~pvm_bench.report.mdtext.md_escape` (no raw HTML, ``|`` escaped)."""
    if df.empty:
        return "_(no data)_\n"
    cells = [[md_escape(c) for c in df.columns]]
    cells += [[md_escape(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in cells[0]) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines) + "\n"


def _order(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Tasks alphabetically, ALL and MACRO last; variants in run order; headline metric first."""
    vrank = {v: i for i, v in enumerate(variants)}
    trank = rows["task"].map(lambda t: (2, t) if t == MACRO else (1, t) if t == POOLED else (0, t))
    return rows.assign(
        _t=trank, _v=rows["variant"].map(lambda v: vrank.get(v, len(vrank))), _h=~rows["headline"].astype(bool),
    ).sort_values(["_t", "_v", "_h"], kind="stable").drop(columns=["_t", "_v", "_h"])


def _run_value(rows: pd.DataFrame, task: str, variant: str, metric: str) -> Any:
    hit = rows[
        (rows["task"] == task) & (rows["variant"] == variant) & (rows["metric"] == metric) & (rows["kind"] == "run")
    ]
    return hit["value"].iloc[0] if len(hit) else math.nan


def metrics_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """One line per task metric (then ALL and MACRO) and variant: value [CI], Δ vs base [CI], p,
    and the run columns (truncated, unparsed, unfinished reasoning when any, mean length, tok/s) on the
    headline line."""
    sel = rows[rows["kind"].isin(["task", "pooled", "macro"])]
    out = []
    for r in _order(sel, variants).itertuples(index=False):
        head = bool(r.headline)
        few = "small_n" in str(r.flags) or small_n(r.n)
        line = {
            "task": r.task,
            "variant": r.variant,
            "metric": f"{r.metric}{' *' if head and r.kind == 'task' else ''}",
            "n": f"{int(r.n)}{' (small n)' if few else ''}",
            "value [95% CI]": fmt_ci(r.value, r.ci_low, r.ci_high)
            + (f" {SMALL_N_MARK}" if few and finite(r.value) else ""),
        }
        d = _own_reference(rows, r) or r._asdict()
        line["Δ vs base [95% CI]"] = (
            fmt_ci(d["diff"], d["diff_ci_low"], d["diff_ci_high"], sign=True)
            + (
                f" (vs {d['variant']}, n={int(d['n_pairs'])})"
                if d.get("kind") == "dependence"
                else f" (n={int(d['n_pairs'])})"
                if finite(d["diff"])
                else ""
            )
            + (f" {SMALL_N_MARK}" if finite(d["diff"]) and small_n(d["n_pairs"]) else "")
        )
        line["p"] = fmt_p(d["p_value"]) + (f" ({d['p_method']})" if d["p_method"] and finite(d["p_value"]) else "")
        run = {
            name: _run_value(rows, r.task, r.variant, name) if head else math.nan
            for name in (
                "truncation_rate",
                "unparsed_rate",
                "unfinished_reasoning_rate",
                "mean_n_generated",
                "tokens_per_s",
            )
        }
        line.update(
            {
                "truncated": fmt(run["truncation_rate"]),
                "unparsed": fmt(run["unparsed_rate"]),
                "unfinished reasoning": fmt(run["unfinished_reasoning_rate"]),
                "mean len (tok)": fmt(run["mean_n_generated"], 1),
                "tok/s": fmt(run["tokens_per_s"], 1),
            }
        )
        out.append(line)
    view = pd.DataFrame(out)
    if len(view) and (view["unparsed"] == "–").all():
        view = view.drop(columns="unparsed")
    unfinished = rows.loc[(rows["metric"] == "unfinished_reasoning_rate") & (rows["kind"] == "run"), "value"]
    if len(view) and not (unfinished.fillna(0) > 0).any():  # shown only when some output ended inside a reasoning block
        view = view.drop(columns="unfinished reasoning")
    return view


def _own_reference(rows: pd.DataFrame, r: Any) -> dict[str, Any] | None:
    """For an ablated ``V+blind:after=K`` task row: its dependence row (the paired difference vs V,
    not vs base), else None."""
    parsed = _ablated(r.variant) if r.kind == "task" else None
    if parsed is None:
        return None
    hit = rows[
        (rows["kind"] == "dependence")
        & (rows["task"] == r.task)
        & (rows["variant"] == parsed[0])
        & (rows["metric"] == r.metric)
        & (rows["t"] == parsed[1])
    ]
    return hit.iloc[0].to_dict() if len(hit) else None


def flags_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Score-flag rates per (task, variant); empty when no scorer reported a boolean detail."""
    sel = rows[(rows["kind"] == "flag") & ~rows["task"].isin([POOLED, MACRO])]
    if sel.empty:
        return pd.DataFrame()
    sel = _order(sel, variants)
    view = sel.pivot_table(index=["task", "variant"], columns="metric", values="value", aggfunc="first", sort=False)
    view = view.rename(columns=lambda c: str(c).removeprefix("flag_")).map(fmt).reset_index()
    view.columns.name = None
    return view


def length_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Accuracy by output-length bucket as "acc [95% CI] (n)" strings (n marked † when small);
    buckets no record reached are left out."""
    sel = _order(rows[rows["kind"] == "length"], variants)
    if sel.empty:
        return pd.DataFrame()
    names = {
        f"len:{label}": (f"{int(lo)}–{int(hi) - 1} tok" if math.isfinite(hi) else f"≥{int(lo)} tok")
        for lo, hi, label in length_buckets()
    }
    out: dict[tuple[str, str], dict[str, str]] = {}
    for r in sel.itertuples(index=False):
        out.setdefault((r.task, r.variant), {"task": r.task, "variant": r.variant})[r.band] = (
            f"{fmt_ci(r.value, r.ci_low, r.ci_high)} ({int(r.n)}{mark(r.n)})"
        )
    view = pd.DataFrame(list(out.values()))
    cols = ["task", "variant"] + [b for b in names if b in view.columns]
    return view[cols].rename(columns=names).fillna("–")


#: How to read the accuracy-by-distance tables (shared by summary.md and report.html).
DISTANCE_NOTE = (
    "Accuracy per bin of the task's declared distance (the bins of accuracy_vs_distance.png): "
    "accuracy [95% CI, Wilson for 0/1 scores] (records); Δ rows: the variant minus base over the same "
    f"(sample, repeat) records of the bin, 95% Newcombe CI for 0/1 pairs. {SMALL_N_NOTE}"
)


def distance_labels(tasks: Mapping[str, TaskInfo]) -> dict[str, str]:
    """``{task: label}`` of the tasks that declare a distance (``distance_label``, else the key)."""
    return {t: i.distance_label or i.distance_key for t, i in tasks.items() if i.distance_key}


def distance_views(
    rows: pd.DataFrame, variants: list[str], labels: Mapping[str, str]
) -> list[tuple[str, pd.DataFrame]]:
    """``(label, table)`` per distance label (``labels``: ``{task: Task.distance_label}``; tasks
    sharing a label share a table): one line per (task, variant) with "acc [95% CI] (n)" per bin
    (n marked † when small), then per non-base variant a "Δ <variant> − base" line with the paired
    difference [95% CI]. Bins ordered by their lower value; a bin a variant lacks shows –."""
    sel = _order(rows[rows["kind"] == "distance"], variants)
    out: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
    for r in sel.itertuples(index=False):
        lines = out.setdefault(labels.get(r.task, "distance"), {})
        lines.setdefault((r.task, r.variant), {"task": r.task, "variant": r.variant})[r.band] = (
            f"{fmt_ci(r.value, r.ci_low, r.ci_high)} ({int(r.n)}{mark(r.n)})"
        )
        if finite(r.diff):
            lines.setdefault((r.task, f"Δ {r.variant}"), {"task": r.task, "variant": f"Δ {r.variant} − base"})[
                r.band
            ] = f"{fmt_ci(r.diff, r.diff_ci_low, r.diff_ci_high, sign=True)} ({int(r.n_pairs)}{mark(r.n_pairs)})"
    views = []
    for label, lines in out.items():
        view = pd.DataFrame(list(lines.values()))
        bands = sorted((c for c in view.columns if c.startswith(BAND_PREFIX)), key=band_low)
        names = {b: b.removeprefix(BAND_PREFIX).replace("_", "–") for b in bands}
        views.append((label, view[["task", "variant", *bands]].rename(columns=names).fillna("–")))
    return views


def decay_view(rows: pd.DataFrame, variants: list[str], bands: dict[str, list[int]]) -> pd.DataFrame:
    """One line per task, variant and layer band (and the fixed cohort, band ``cohort@T``): samples
    in the fit (n, † when small), fit parameters and flags, half-lives (marked when
    extrapolated), fixed-t masses with the number of samples that reached t (†: small)."""
    sel = rows[(rows["kind"] == "decay").to_numpy() & _plain(rows["variant"])]
    if sel.empty:
        return pd.DataFrame()
    out = []
    shown = reached_positions(rows, variants)
    for (task, variant, band), g in _order(sel, variants).groupby(["task", "variant", "band"], sort=False):
        v = {m: x for m, x in zip(g["metric"], g["value"])}
        fl = {m: str(f) for m, f in zip(g["metric"], g["flags"]) if isinstance(f, str) and f}
        mass = {
            float(t): (x, int(n)) for t, x, n, m in zip(g["t"], g["value"], g["n"], g["metric"]) if m == "visual_mass"
        }
        layers = bands.get("all" if band.startswith("cohort@") else band, [])
        span = layer_span(layers) if layers else "?"
        n_fit = int(g.loc[g["metric"] == "decay_a", "n"].max()) if (g["metric"] == "decay_a").any() else 0
        if band.startswith("cohort@"):  # the fixed cohort: all layers, samples that reached T
            t_c = band.removeprefix("cohort@")
            span = f"{span}; samples that reached t={t_c}, steps 1..{t_c}"
        fitted = finite(v.get("decay_r2"))
        hl = (
            _hl(v.get("half_life_fit"), fitted, 1)
            + _hl_ci(g)
            + (" (extrapolated)" if "extrapolated" in fl.get("half_life_fit", "") else "")
        )
        line = {
            "task": task,
            "variant": variant,
            "band (layers)": f"{band} ({span})",
            "n": f"{n_fit}{mark(n_fit)}",
            "a": fmt(v.get("decay_a"), 4),
            "b": fmt(v.get("decay_b"), 4),
            "c": fmt(v.get("decay_c"), 2),
            "R²": fmt(v.get("decay_r2")),
            "flags": fl.get("decay_a", "").replace(";", ", ") or "–",
            "half-life fit (obs)": f"{hl} ({_hl(v.get('half_life_obs'), True, 0)})",
        }
        for t in shown:
            x, n = mass.get(float(t), (math.nan, 0))
            line[f"mass@{t}"] = f"{fmt(x, 4)} (n={n}{mark(n)})" if finite(x) else "–"
        out.append(line)
    return pd.DataFrame(out)


def _ablated(variant: str) -> tuple[str, int] | None:
    return split_ablated(variant)


def _plain(variants: pd.Series) -> np.ndarray:
    """Boolean mask: the variant is not an ablated ``V+blind:after=K``."""
    return np.array([_ablated(str(v)) is None for v in variants], dtype=bool)


def reached_positions(rows: pd.DataFrame, variants: list[str]) -> list[int]:
    """The fixed positions t of :data:`~pvm_bench.report.fit.FIXED_POSITIONS` that some un-ablated
    variant's decay rows reached (a mass@t column no sample reached would be all "–")."""
    sel = rows[(rows["kind"] == "decay") & (rows["metric"] == "visual_mass") & rows["value"].notna()]
    sel = sel[_plain(sel["variant"])]
    got = {float(t) for t in sel["t"]}
    return [t for t in FIXED_POSITIONS if float(t) in got]


def decay_footnotes(rows: pd.DataFrame, variants: list[str], longest: int) -> list[str]:
    """Why a mass@t column or a variant's rows are missing from :func:`decay_view` (one line each)."""
    if not (rows["kind"] == "decay").any():
        return []
    shown = reached_positions(rows, variants)
    hidden = [t for t in FIXED_POSITIONS if t not in shown]
    out = []
    if hidden:
        cols = ", ".join(f"mass@{t}" for t in hidden)
        out.append(f"{cols} not shown: no sample reached t = {hidden[0]} (longest output: {longest} tokens).")
    blind = [v for v in dict.fromkeys(rows.loc[rows["kind"] == "decay", "variant"]) if _ablated(v) is not None]
    if blind:
        out.append(
            f"Ablated variants ({', '.join(blind)}) are left out: from token K on they see no image, so "
            "their mass is zero by construction (their rows stay in metrics.csv); see Visual dependence."
        )
    return out


def _hl_ci(g: pd.DataFrame) -> str:
    """ " [low, high]" of the fitted half-life (bootstrap over samples; high may be ∞), or ""."""
    sel = g[g["metric"] == "half_life_fit"]
    if sel.empty or "ci_low" not in sel.columns:
        return ""
    low, high = float(sel["ci_low"].iloc[0]), float(sel["ci_high"].iloc[0])
    if not finite(low):
        return ""
    return f" [{fmt(low, 0)}, {fmt(high, 0) if finite(high) else '∞'}]"


def _hl(value: Any, fitted: bool, digits: int) -> str:
    """Half-life cell: a number, "never" (the curve does not fall to half), or – (no fit)."""
    if finite(value):
        return fmt(float(value), digits)
    return "never" if fitted else "–"


CONVERGENCE_LABELS = {
    "entropy_early": "entropy first ¼ (nats)",
    "entropy_late": "entropy last ¼ (nats)",
    "entropy_delta": "Δ entropy",
    "hesitation_rate": "hesitation rate (>1 bit)",
    "margin_early": "top-2 margin first ¼",
    "margin_late": "top-2 margin last ¼",
}


def _pivot(rows: pd.DataFrame, kind: str, variants: list[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    sel = _order(rows[rows["kind"] == kind], variants)
    if sel.empty:
        return pd.DataFrame()
    out: dict[tuple[str, str], dict[str, str]] = {}
    for r in sel.itertuples(index=False):
        out.setdefault((r.task, r.variant), {"task": r.task, "variant": r.variant})[r.metric] = fmt(r.value, 4)
    view = pd.DataFrame(list(out.values())).fillna("–")
    if labels:
        order = ["task", "variant"] + [k for k in labels if k in view.columns]
        view = view[order].rename(columns=labels)
    return view


def convergence_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Entropy early/late and hesitation rate, when recorded."""
    return _pivot(rows, "convergence", variants, CONVERGENCE_LABELS)


def probe_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Mean over generated steps of every other numeric probe column (visual_mass_norm, sink_mass,
    lens_*, pvm_ratio, or a third-party probe's column). A per-layer column that takes both signs
    (``pvm_gate``: +1.66, −1.60, +1.57 on three layers) has no mean over layers here: see
    :func:`probe_layer_view`."""
    sel = rows[(rows["kind"] == "probe") & (rows["band"].fillna("") == "")]
    return _pivot(sel, "probe", variants)


#: How to read the per-layer probe table (shared by summary.md and report.html).
PROBE_LAYER_NOTE = (
    "Per decoder layer, for probe values recorded per layer: each sample's mean over its generated steps, "
    "then the mean over samples. pvm_gate = the layer's PVM gate_alpha (signed: the branch's output is scaled by "
    "it, so never average it over layers); pvm_ratio = ||PVM output|| / ||residual|| (how much the branch adds)."
)


def probe_layer_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """One line per (task, variant, layer) with the per-layer probe values (band ``layer:L``:
    ``pvm_gate``, ``pvm_ratio``, per-layer lens values, ...); empty when none was recorded."""
    sel = rows[(rows["kind"] == "probe") & rows["band"].fillna("").astype(str).str.startswith("layer:")]
    if sel.empty:
        return pd.DataFrame()
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in _order(sel, variants).itertuples(index=False):
        layer = int(str(r.band).removeprefix("layer:"))
        out.setdefault((r.task, r.variant, layer), {"task": r.task, "variant": r.variant, "layer": layer})[r.metric] = (
            fmt(r.value, 4)
        )
    vrank = {v: i for i, v in enumerate(variants)}
    trank = {t: i for i, t in enumerate(dict.fromkeys(k[0] for k in out))}
    keys = sorted(out, key=lambda k: (trank[k[0]], vrank.get(k[1], len(vrank)), k[2]))
    metrics = sorted(
        {m for line in out.values() for m in line} - {"task", "variant", "layer"},
        key=lambda m: (not m.startswith("pvm_"), m),
    )  # pvm_gate, pvm_ratio first
    return pd.DataFrame([out[k] for k in keys], columns=["task", "variant", "layer", *metrics]).fillna("–")
