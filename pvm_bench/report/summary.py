"""Load a run directory and build its per task x variant summary (summary.csv / summary.md).

Contract of :func:`build_summary` (one row per task and variant, plus a pooled ``ALL`` task when
the run has more than one task); column meanings are listed in reports/README.md:

- accuracy: per-sample mean score over repeats, then the mean over samples, with a 95% percentile
  bootstrap CI over samples;
- paired difference vs the ``base`` variant: samples paired by (task, sample_id, repeat), mean
  over repeats per sample, ``other - base``; p-value from McNemar's exact test when scores are
  0/1 with one repeat, else a sign-flip permutation test;
- accuracy by output-length bucket (``n_generated`` in octaves: [0,32), [32,64), [64,128), ...,
  [2048,4096), [4096, inf));
- decay of ``visual_mass`` over generated positions t >= 1 per layer band (early / middle / late
  thirds of the recorded layers, and all layers): the curve is the mean over the band's layers of
  the per-layer mean over the samples that reached t; fitted to ``a + b/(c+t)``;
- observed mass at t in :data:`~pvm_bench.report.fit.FIXED_POSITIONS` (mean over a +-5% step
  window, with a bootstrap CI over samples), NaN where no sample reached t;
- convergence summaries when attention.parquet has an ``entropy`` column.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyarrow import ArrowException

from pvm_bench.errors import UserError
from pvm_bench.report.fit import FIXED_POSITIONS, DecayFit, fit_decay, observed_half_life, window
from pvm_bench.report.stats import bootstrap_ci, paired_difference
from pvm_bench.results import RunRecord, read_samples

REFERENCE_VARIANT = "base"
ALL_TASKS = "ALL"
BANDS: tuple[str, ...] = ("all", "early", "middle", "late")
#: Output-length bucket edges (tokens): octaves, so short diagnostics and long reasoning answers
#: are both resolved.
LENGTH_EDGES: tuple[float, ...] = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096, math.inf)
HESITATION_NATS = math.log(2.0)
"""A step "hesitates" when next-token entropy exceeds one bit (two equally likely tokens)."""


class ReportInputError(UserError, ValueError):
    """A run directory or baseline file that cannot be read; the message names the file and
    the fix. The CLI turns it into exit code 2."""


#: How to read the decay table (shared by summary.md and report.html).
DECAY_NOTE = (
    "visual_mass ≈ a + b/(c + t), t = generated position (tokens). Half-life: first t where the fitted "
    "law (observed mean curve) falls to half its value at t = 1; never = does not fall to half; a fitted "
    "half-life beyond the longest output is an extrapolation. mass@t: observed mean over steps within "
    "±5% of t; – = not reached."
)

#: How to read the score-flag table (shared by summary.md and report.html).
FLAGS_NOTE = (
    "Boolean details a task's scorer records next to the score, as the share of records where they "
    "are true (e.g. filler_ok: the text before the answer was exactly what the prompt asked for)."
)


def length_buckets() -> list[tuple[float, float, str]]:
    """(low, high, label) of the output-length buckets; ``high`` is exclusive."""
    out = []
    for lo, hi in itertools.pairwise(LENGTH_EDGES):
        label = f"{int(lo)}_{int(hi) - 1}" if math.isfinite(hi) else f"{int(lo)}_plus"
        out.append((lo, hi, label))
    return out


@dataclass
class RunData:
    """Everything read from one run directory. ``attention`` is None when absent/unreadable."""

    run_dir: Path
    run: RunRecord | None
    samples: pd.DataFrame
    attention: pd.DataFrame | None
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run.run_id if self.run else self.run_dir.name

    @property
    def status(self) -> str:
        return self.run.status if self.run else "unknown"

    @property
    def partial(self) -> bool:
        """True unless run.json says the run completed."""
        return self.status != "completed"

    @property
    def variants(self) -> list[str]:
        """Variants present, ``base`` first, then run.json order, then alphabetical."""
        present = set(self.samples["variant"]) if len(self.samples) else set()
        if self.attention is not None and len(self.attention):
            present |= set(self.attention["variant"].unique())
        declared = list(self.run.variants) if self.run else []
        order = [REFERENCE_VARIANT] + declared + sorted(present)
        seen: list[str] = []
        for v in order:
            if v in present and v not in seen:
                seen.append(v)
        return seen

    @property
    def tasks(self) -> list[str]:
        names = set(self.samples["task"]) if len(self.samples) else set()
        if self.attention is not None and len(self.attention):
            names |= set(self.attention["task"].unique())
        return sorted(names)


SAMPLE_COLUMNS = [
    "variant", "task", "sample_id", "repeat", "score", "truncated", "n_generated",
    "max_new_tokens", "finish_reason", "error", "tokens_per_s", "decode_s", "total_s",
    "prompt", "output", "parsed", "target",
]


def load_run(run_dir: Path | str) -> RunData:
    """Read run.json, samples.jsonl and attention.parquet (each optional, but at least one of
    run.json / samples.jsonl must exist). Raises :class:`ReportInputError` on a missing
    directory or unreadable run.json; an unreadable attention.parquet becomes a warning."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(
            f"run directory not found: {run_dir} (pass the reports/<run_id> folder written by `pvm-bench run`)"
        )
    run_json, samples_path = run_dir / "run.json", run_dir / "samples.jsonl"
    if not run_json.exists() and not samples_path.exists():
        raise ReportInputError(
            f"{run_dir} has neither run.json nor samples.jsonl (is it a run directory? "
            "pass the reports/<run_id> folder written by `pvm-bench run`)"
        )
    warn: list[str] = []
    run: RunRecord | None = None
    if run_json.exists():
        try:
            run = RunRecord.load(run_dir)
        except Exception as exc:  # pydantic / json errors
            raise ReportInputError(f"cannot parse {run_json}: {exc.__class__.__name__} (re-run or fix the file)") from exc
    else:
        warn.append("run.json missing: status unknown, treated as partial")
    try:
        records = read_samples(run_dir)
    except Exception as exc:
        raise ReportInputError(f"cannot parse {samples_path}: {exc} (fix or remove the bad line)") from exc
    rows = []
    for r in records:
        d = r.model_dump(mode="json")
        t = d.pop("timings")
        d.update(tokens_per_s=t["tokens_per_s"], decode_s=t["decode_s"], total_s=t["total_s"])
        row = {k: d.get(k) for k in SAMPLE_COLUMNS}
        details = (d.get("metadata") or {}).get("score") or {}
        row["score_flags"] = {k: v for k, v in details.items() if isinstance(v, bool)}
        rows.append(row)
    samples = pd.DataFrame(rows, columns=[*SAMPLE_COLUMNS, "score_flags"])
    if len(samples):
        samples["score"] = samples["score"].astype(float)
        samples["n_generated"] = samples["n_generated"].astype(int)
        samples["truncated"] = samples["truncated"].astype(bool)
        samples["tokens_per_s"] = samples["tokens_per_s"].astype(float)
    attention = None
    apath = run_dir / "attention.parquet"
    if apath.exists():
        try:
            attention = _read_attention(apath)
        except (OSError, ValueError, KeyError, ArrowException) as exc:  # a torn or foreign file
            warn.append(f"attention.parquet unreadable ({exc.__class__.__name__}: {exc}); attention sections skipped")
            attention = None
    return RunData(run_dir, run, samples, attention, warn)


ATTENTION_KEYS = ("variant", "task", "sample_id", "repeat", "step")


def _read_attention(path: Path) -> pd.DataFrame:
    """Scalar columns of attention.parquet (list columns such as per-head masses are skipped).

    Rows without a ``layer`` or ``visual_mass`` (step-only probes merged in by the runner) are
    kept for the entropy summaries; decay code filters them via :func:`visual_rows`.
    """
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    missing = [k for k in ATTENTION_KEYS if k not in schema.names]
    if missing:
        raise ValueError(f"missing columns {missing}")
    cols = [f.name for f in schema if not (pa_is_nested(f.type))]
    frame = pd.read_parquet(path, columns=cols)
    frame = frame.dropna(subset=["step"])
    frame["step"] = frame["step"].astype(int)
    frame["repeat"] = frame["repeat"].astype(int)
    for key in ("variant", "task", "sample_id"):
        frame[key] = frame[key].astype(str)
    return frame


def pa_is_nested(arrow_type: object) -> bool:
    """True for list/struct/map arrow types."""
    import pyarrow.types as pat

    return bool(pat.is_nested(arrow_type))  # type: ignore[arg-type]


def visual_rows(attention: pd.DataFrame | None) -> pd.DataFrame | None:
    """Rows carrying a visual-mass measurement (``layer`` and ``visual_mass`` present), with an
    integer ``layer``; None when there are none."""
    if attention is None or "visual_mass" not in attention or "layer" not in attention:
        return None
    rows = attention.dropna(subset=["visual_mass", "layer"])
    if rows.empty:
        return None
    return rows.assign(layer=rows["layer"].astype(int))


def layer_bands(layers: Iterable[int]) -> dict[str, list[int]]:
    """Split the sorted recorded layers into early/middle/late thirds (``np.array_split``: the
    first bands get the extra layer) plus ``all``. Empty bands are omitted."""
    ls = sorted({int(x) for x in layers})
    bands: dict[str, list[int]] = {"all": ls} if ls else {}
    for name, part in zip(("early", "middle", "late"), np.array_split(np.array(ls, dtype=int), 3)):
        if part.size:
            bands[name] = [int(x) for x in part]
    return bands


def layer_span(layers: list[int]) -> str:
    """"3" for one layer, "0–5" for several."""
    return str(layers[0]) if len(layers) == 1 else f"{layers[0]}–{layers[-1]}"


@dataclass
class Summary:
    """Output of :func:`build_summary`. ``curves`` has columns task, variant, band, step, mass
    (the fitted curve points); ``fits`` maps (task, variant, band) -> :class:`DecayFit`."""

    table: pd.DataFrame
    bands: dict[str, list[int]]
    curves: pd.DataFrame
    fits: dict[tuple[str, str, str], DecayFit]
    has_entropy: bool


def _accuracy_block(s: pd.DataFrame, base: pd.DataFrame | None, seed: int) -> dict[str, Any]:
    per_sample = s.groupby("sample_id")["score"].mean()
    ci = bootstrap_ci(per_sample.to_numpy(), seed=seed)
    row: dict[str, Any] = {
        "n_samples": int(per_sample.size),
        "n_records": len(s),
        "n_repeats": int(s.groupby("sample_id")["repeat"].nunique().max()) if len(s) else 0,
        "accuracy": ci.mean,
        "acc_ci_low": ci.low,
        "acc_ci_high": ci.high,
        "diff_vs_base": math.nan,
        "diff_ci_low": math.nan,
        "diff_ci_high": math.nan,
        "p_value": math.nan,
        "p_method": "",
        "n_pairs": 0,
        "truncation_rate": float(s["truncated"].mean()) if len(s) else math.nan,
        "error_rate": float((s["finish_reason"] == "error").mean()) if len(s) else math.nan,
        "mean_n_generated": float(s["n_generated"].mean()) if len(s) else math.nan,
    }
    tps = s.loc[s["tokens_per_s"] > 0, "tokens_per_s"]
    row["tokens_per_s"] = float(tps.mean()) if len(tps) else math.nan
    if base is not None:
        keys = ["task", "sample_id", "repeat"]
        joined = s[keys + ["score"]].merge(base[keys + ["score"]], on=keys, suffixes=("", "_base"))
        if len(joined):
            per = joined.groupby(["task", "sample_id"])[["score", "score_base"]].mean()
            pd_ = paired_difference(per["score_base"].to_numpy(), per["score"].to_numpy(), seed=seed)
            row.update(
                diff_vs_base=pd_.diff, diff_ci_low=pd_.low, diff_ci_high=pd_.high,
                p_value=pd_.p_value, p_method=pd_.method, n_pairs=pd_.n,
            )
    for lo, hi, label in length_buckets():
        b = s[(s["n_generated"] >= lo) & (s["n_generated"] < hi)]
        row[f"acc_len_{label}"] = float(b["score"].mean()) if len(b) else math.nan
        row[f"n_len_{label}"] = len(b)
    row.update(flag_rates(s))
    return row


def flag_rates(s: pd.DataFrame) -> dict[str, float]:
    """``flag_<name>``: the share of records whose scorer set the boolean detail ``name`` to True,
    over the records that have it (e.g. colour_recall's ``filler_ok``: the filler was exact)."""
    if "score_flags" not in s or s.empty:
        return {}
    flags = pd.DataFrame(list(s["score_flags"].map(lambda f: f if isinstance(f, dict) else {})))
    return {f"flag_{k}": float(flags[k].dropna().astype(bool).mean()) for k in sorted(flags.columns)}


def _decay_block(
    a: pd.DataFrame, bands: dict[str, list[int]], seed: int, key: tuple[str, str],
    curves: list[pd.DataFrame], fits: dict[tuple[str, str, str], DecayFit],
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    vis = visual_rows(a)
    if vis is not None:
        row.update(_band_fits(vis[vis["step"] >= 1], bands, seed, key, curves, fits))
        gen_vis = vis[vis["step"] >= 1]
        for col in ("visual_mass_norm", "sink_mass"):
            if col in gen_vis:
                row[f"{col}_mean"] = float(gen_vis[col].mean()) if len(gen_vis) else math.nan
    gen = a[a["step"] >= 1]
    for col in sorted(c for c in a.columns if c.startswith(("lens_", "pvm_"))):
        if pd.api.types.is_numeric_dtype(a[col]):
            row[f"mean_{col}"] = float(gen[col].mean()) if len(gen) else math.nan
    if "entropy" in a.columns:
        row.update(_convergence(a))
    return row


def _band_fits(
    gen: pd.DataFrame, bands: dict[str, list[int]], seed: int, key: tuple[str, str],
    curves: list[pd.DataFrame], fits: dict[tuple[str, str, str], DecayFit],
) -> dict[str, Any]:
    """Decay fit, half-lives and fixed-t masses per layer band from visual rows with t >= 1."""
    row: dict[str, Any] = {}
    per_layer = gen.groupby(["layer", "step"])["visual_mass"].mean().reset_index()
    for band in BANDS:
        layers = bands.get(band)
        pre = f"{band}_"
        if not layers or gen.empty:
            fit = fit_decay([], [])
            curve = pd.DataFrame({"step": [], "mass": []})
        else:
            sub = per_layer[per_layer["layer"].isin(layers)]
            curve = sub.groupby("step")["visual_mass"].mean().rename("mass").reset_index()
            fit = fit_decay(curve["step"].to_numpy(), curve["mass"].to_numpy())
        fits[(key[0], key[1], band)] = fit
        if len(curve):
            curves.append(curve.assign(task=key[0], variant=key[1], band=band))
        row[f"fit_{pre}a"], row[f"fit_{pre}b"], row[f"fit_{pre}c"] = fit.a, fit.b, fit.c
        row[f"fit_{pre}r2"], row[f"fit_{pre}t_max"] = fit.r2, fit.t_max
        row[f"half_life_{pre}fit"] = fit.half_life()
        row[f"half_life_{pre}obs"] = (
            observed_half_life(curve["step"].to_numpy(), curve["mass"].to_numpy()) if len(curve) else math.nan
        )
        t_max = int(curve["step"].max()) if len(curve) else 0
        for t in FIXED_POSITIONS:
            col = f"mass_{pre}t{t}"
            ci = None
            if layers and t <= t_max:
                lo, hi = window(t)
                w = gen[(gen["step"] >= lo) & (gen["step"] <= hi) & gen["layer"].isin(layers)]
                per_sample = w.groupby(["task", "sample_id", "repeat"])["visual_mass"].mean()
                ci = bootstrap_ci(per_sample.to_numpy(), seed=seed)
            row[col] = ci.mean if ci else math.nan
            row[f"{col}_ci_low"] = ci.low if ci else math.nan
            row[f"{col}_ci_high"] = ci.high if ci else math.nan
    return row


def _early_late(frame: pd.DataFrame, col: str) -> tuple[float, float, pd.DataFrame]:
    """Per-step values of ``col`` (mean over layers), then the mean over the first and the last
    quarter of each sample's recorded steps, averaged over samples."""
    keys = ["task", "sample_id", "repeat"]
    e = frame.dropna(subset=[col]).groupby(keys + ["step"])[col].mean().reset_index()
    if e.empty:
        return math.nan, math.nan, e
    g = e.groupby(keys)["step"]
    lo, hi = g.transform("min"), g.transform("max")
    quarter = np.ceil((hi - lo + 1) / 4.0)
    early = e[e["step"] < lo + quarter].groupby(keys)[col].mean().mean()
    late = e[e["step"] > hi - quarter].groupby(keys)[col].mean().mean()
    return float(early), float(late), e


def _convergence(a: pd.DataFrame) -> dict[str, float]:
    """Entropy (and, when recorded, top-2 logit margin) early vs late in the generation, and the
    hesitation rate: the fraction of recorded steps with entropy above one bit."""
    out: dict[str, float] = {}
    early, late, e = _early_late(a, "entropy")
    out.update(entropy_early=early, entropy_late=late, entropy_delta=late - early,
               hesitation_rate=float((e["entropy"] > HESITATION_NATS).mean()) if len(e) else math.nan)
    if "margin" in a.columns and pd.api.types.is_numeric_dtype(a["margin"]):
        m_early, m_late, _ = _early_late(a, "margin")
        out.update(margin_early=m_early, margin_late=m_late)
    return out


def build_summary(data: RunData, seed: int = 0) -> Summary:
    """The per task x variant summary of a run (see the module docstring for the contract)."""
    samples, attn = data.samples, data.attention
    has_attn = attn is not None and len(attn) > 0
    vis = visual_rows(attn)
    bands = layer_bands(vis["layer"].unique()) if vis is not None else {}
    tasks = data.tasks
    scopes = [(t, t) for t in tasks] + ([(ALL_TASKS, None)] if len(tasks) > 1 else [])
    rows: list[dict[str, Any]] = []
    curves: list[pd.DataFrame] = []
    fits: dict[tuple[str, str, str], DecayFit] = {}
    for label, task in scopes:
        s_scope = samples if task is None else samples[samples["task"] == task]
        a_scope = None
        if has_attn:
            a_scope = attn if task is None else attn[attn["task"] == task]
        base = s_scope[s_scope["variant"] == REFERENCE_VARIANT]
        for variant in data.variants:
            s = s_scope[s_scope["variant"] == variant]
            a = a_scope[a_scope["variant"] == variant] if a_scope is not None else None
            if s.empty and (a is None or a.empty):
                continue
            row: dict[str, Any] = {"task": label, "variant": variant}
            ref = base if variant != REFERENCE_VARIANT and len(base) else None
            row.update(_accuracy_block(s, ref, seed))
            if a is not None and len(a):
                row.update(_decay_block(a, bands, seed, (label, variant), curves, fits))
            rows.append(row)
    table = pd.DataFrame(rows)
    curve_df = (
        pd.concat(curves, ignore_index=True)
        if curves else pd.DataFrame(columns=["step", "mass", "task", "variant", "band"])
    )
    return Summary(table, bands, curve_df, fits, bool(has_attn and "entropy" in attn.columns))


# ----------------------------------------------------------------------------- rendering

def fmt(x: Any, digits: int = 3) -> str:
    """Human formatting: NaN/None -> an en dash, floats to ``digits`` decimals."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}f}"
    return str(x)


def _finite_num(x: Any) -> bool:
    return isinstance(x, (int, float, np.floating)) and math.isfinite(float(x))


def fmt_p(p: Any) -> str:
    """p-values: two significant digits, ``<0.001`` below that."""
    if p is None or not isinstance(p, (float, int)) or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 1e-3 else f"{p:.2g}"


def _ci(row: pd.Series, mid: str, lo: str, hi: str, digits: int = 3, sign: bool = False) -> str:
    m = row.get(mid, math.nan)
    if not isinstance(m, (float, int)) or not math.isfinite(m):
        return "–"
    f = f"{{:+.{digits}f}}" if sign else f"{{:.{digits}f}}"
    return f"{f.format(m)} [{f.format(row[lo])}, {f.format(row[hi])}]"


def accuracy_view(table: pd.DataFrame) -> pd.DataFrame:
    """Readable accuracy table (strings) for markdown / HTML."""
    out = []
    for _, r in table.iterrows():
        out.append({
            "task": r["task"], "variant": r["variant"], "n": int(r["n_samples"]),
            "repeats": int(r["n_repeats"]),
            "accuracy [95% CI]": _ci(r, "accuracy", "acc_ci_low", "acc_ci_high"),
            "Δ vs base [95% CI]": _ci(r, "diff_vs_base", "diff_ci_low", "diff_ci_high", sign=True),
            "p": fmt_p(r["p_value"]) + (f" ({r['p_method']})" if r["p_method"] else ""),
            "truncated": fmt(r["truncation_rate"]),
            "mean len (tok)": fmt(r["mean_n_generated"], 1),
            "tok/s": fmt(r["tokens_per_s"], 1),
        })
    return pd.DataFrame(out)


def flags_view(table: pd.DataFrame) -> pd.DataFrame:
    """Score-flag rates per (task, variant); empty when no scorer reported a boolean detail."""
    cols = [c for c in table.columns if c.startswith("flag_")]
    if not cols:
        return pd.DataFrame()
    rows = table[table[cols].notna().any(axis=1) & (table["task"] != ALL_TASKS)]
    view = rows[["task", "variant"]].copy()
    for c in cols:
        view[c.removeprefix("flag_")] = [fmt(v) for v in rows[c]]
    return view.reset_index(drop=True)


def length_view(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy by output-length bucket as "acc (n)" strings; buckets no record reached are left out."""
    out = []
    for _, r in table.iterrows():
        row = {"task": r["task"], "variant": r["variant"]}
        for lo, hi, label in length_buckets():
            name = f"{int(lo)}–{int(hi) - 1} tok" if math.isfinite(hi) else f"≥{int(lo)} tok"
            n = int(r[f"n_len_{label}"])
            row[name] = f"{fmt(r[f'acc_len_{label}'])} ({n})" if n else "–"
        out.append(row)
    view = pd.DataFrame(out)
    empty = [c for c in view.columns[2:] if (view[c] == "–").all()]
    return view.drop(columns=empty)


def _hl(r: pd.Series, band: str, kind: str, digits: int) -> str:
    """Half-life cell: a number, "never" (the curve does not fall to half), or – (no fit)."""
    v = r.get(f"half_life_{band}_{kind}", math.nan)
    if isinstance(v, float) and math.isfinite(v):
        return fmt(v, digits)
    fitted = r.get(f"fit_{band}_r2", math.nan)
    return "never" if kind == "obs" or (isinstance(fitted, float) and math.isfinite(fitted)) else "–"


def decay_view(summary: Summary) -> pd.DataFrame:
    """One row per task, variant and layer band: fit parameters, half-lives, fixed-t masses."""
    out = []
    table = summary.table
    if "fit_all_a" not in table.columns:
        return pd.DataFrame()
    for _, r in table.iterrows():
        for band in BANDS:
            t_max = r.get(f"fit_{band}_t_max", math.nan)
            if band not in summary.bands or not (isinstance(t_max, (int, float)) and t_max > 0):
                continue
            layers = summary.bands[band]
            row = {
                "task": r["task"], "variant": r["variant"],
                "band (layers)": f"{band} ({layer_span(layers)})",
                "a": fmt(r[f"fit_{band}_a"], 4), "b": fmt(r[f"fit_{band}_b"], 4),
                "c": fmt(r[f"fit_{band}_c"], 2), "R²": fmt(r[f"fit_{band}_r2"]),
                "half-life fit (obs)": f"{_hl(r, band, 'fit', 1)} ({_hl(r, band, 'obs', 0)})",
            }
            for t in FIXED_POSITIONS:
                row[f"mass@{t}"] = fmt(r[f"mass_{band}_t{t}"], 4)
            out.append(row)
    return pd.DataFrame(out)


def convergence_view(table: pd.DataFrame) -> pd.DataFrame:
    """Entropy early/late and hesitation rate, when recorded."""
    if "entropy_early" not in table.columns:
        return pd.DataFrame()
    cols = ["task", "variant", "entropy_early", "entropy_late", "entropy_delta", "hesitation_rate"]
    cols += [c for c in ("margin_early", "margin_late") if c in table.columns]
    view = table[cols].copy()
    for c in cols[2:]:
        view[c] = view[c].map(fmt)
    return view.rename(columns={
        "entropy_early": "entropy first ¼ (nats)", "entropy_late": "entropy last ¼ (nats)",
        "entropy_delta": "Δ entropy", "hesitation_rate": "hesitation rate (>1 bit)",
        "margin_early": "top-2 margin first ¼", "margin_late": "top-2 margin last ¼",
    })


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency); ``|`` in cells is escaped."""
    if df.empty:
        return "_(no data)_\n"
    cells = [[str(c).replace("|", "\\|") for c in df.columns]]
    cells += [[str(v).replace("|", "\\|").replace("\n", " ") for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in cells[0]) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines) + "\n"


def render_markdown(data: RunData, summary: Summary) -> str:
    """summary.md: run header, partial-run warning, and the readable tables."""
    run = data.run
    parts = [f"# pvm-bench summary: {data.run_id}\n"]
    if data.partial:
        parts.append(f"> **PARTIAL RUN** (status: {data.status}). Numbers cover only the samples written so far.\n")
    meta = {
        "status": data.status,
        "model": (run.model.get("name") or run.model.get("source") or json.dumps(run.model)) if run else "–",
        "adapter": (json.dumps(run.adapter) if run and run.adapter else "–"),
        "variants": ", ".join(data.variants) or "–",
        "samples (records)": str(len(data.samples)),
        "seed": str(run.seed) if run else "–",
        "git": (f"{run.git.get('commit', '–')}{' (dirty)' if run.git.get('dirty') else ''}" if run else "–"),
        "started / ended": f"{run.started_at} / {run.ended_at or '–'}" if run else "–",
    }
    parts.append("\n".join(f"- **{k}**: {v}" for k, v in meta.items()) + "\n")
    for w in data.warnings:
        parts.append(f"> note: {w}\n")
    table = summary.table
    if table.empty:
        parts.append("\n_No samples or attention records yet._\n")
        return "\n".join(parts)
    parts.append("\n## Accuracy\n")
    parts.append(to_markdown(accuracy_view(table)))
    parts.append("\n## Accuracy by output length (n_generated bucket: accuracy (n))\n")
    parts.append(to_markdown(length_view(table)))
    fv = flags_view(table)
    if not fv.empty:
        parts.append("\n## Score flags (share of records)\n")
        parts.append(FLAGS_NOTE + "\n\n")
        parts.append(to_markdown(fv))
    dv = decay_view(summary)
    if not dv.empty:
        parts.append("\n## Visual-attention decay: visual_mass ≈ a + b/(c + t)\n")
        parts.append(DECAY_NOTE + "\n\n")
        parts.append(to_markdown(dv))
    cv = convergence_view(table)
    if not cv.empty:
        parts.append("\n## Convergence (next-token entropy)\n")
        parts.append(to_markdown(cv))
    return "\n".join(parts)


def write_summary(data: RunData, summary: Summary) -> tuple[Path, Path]:
    """Write summary.csv (full precision, all columns) and summary.md into the run directory."""
    csv_path, md_path = data.run_dir / "summary.csv", data.run_dir / "summary.md"
    summary.table.to_csv(csv_path, index=False)
    md_path.write_text(render_markdown(data, summary), encoding="utf-8")
    return csv_path, md_path


# ----------------------------------------------------------------------------- compare

#: (column in the summary table, label in the comparison, digits)
COMPARE_METRICS: tuple[tuple[str, str, int], ...] = (
    ("accuracy", "accuracy", 3),
    ("diff_vs_base", "Δ vs base", 3),
    ("p_value", "p", 3),
    ("truncation_rate", "truncated", 3),
    ("tokens_per_s", "tok/s", 1),
    ("mass_all_t64", "mass@64", 4),
    ("mass_all_t256", "mass@256", 4),
    ("half_life_all_fit", "half-life (fit)", 1),
    ("fit_all_r2", "fit R²", 3),
)


def run_labels(runs: list[RunData]) -> list[str]:
    """Run ids, made unique with ``#2``, ``#3`` suffixes when two runs share an id."""
    labels: list[str] = []
    for d in runs:
        label, k = d.run_id, 2
        while label in labels:
            label, k = f"{d.run_id}#{k}", k + 1
        labels.append(label)
    return labels


def compare_runs(run_dirs: list[Path], seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Side-by-side comparison of several runs.

    Returns ``(numeric, readable)``: ``numeric`` has one row per (task, variant) and columns
    ``{metric}[{run}]`` (full precision, for CSV); ``readable`` has the same rows with one column
    per metric and run as formatted strings (accuracy with its 95% CI), for markdown.
    """
    runs = [load_run(Path(p)) for p in run_dirs]
    labels = run_labels(runs)
    numeric: pd.DataFrame | None = None
    readable: pd.DataFrame | None = None
    order: dict[tuple[str, str], int] = {}
    for data, label in zip(runs, labels):
        t = build_summary(data, seed=seed).table
        if t.empty:
            continue
        for key in zip(t["task"], t["variant"]):
            order.setdefault(key, len(order))
        num = t[["task", "variant"]].copy()
        txt = t[["task", "variant"]].copy()
        for col, name, digits in COMPARE_METRICS:
            values = t[col] if col in t.columns else pd.Series(math.nan, index=t.index)
            num[f"{col}[{label}]"] = values
            if col == "accuracy":
                txt[f"{name} [{label}]"] = [_ci(r, "accuracy", "acc_ci_low", "acc_ci_high") for _, r in t.iterrows()]
            elif col == "diff_vs_base":
                txt[f"{name} [{label}]"] = values.map(lambda x: f"{x:+.3f}" if _finite_num(x) else "–")
            elif col == "p_value":
                txt[f"{name} [{label}]"] = values.map(fmt_p)
            else:
                txt[f"{name} [{label}]"] = values.map(lambda x, d=digits: fmt(x, d))
        if data.partial:
            txt = txt.rename(columns={c: c.replace(f"[{label}]", f"[{label} (partial)]") for c in txt.columns})
        numeric = num if numeric is None else numeric.merge(num, on=["task", "variant"], how="outer")
        readable = txt if readable is None else readable.merge(txt, on=["task", "variant"], how="outer")
    if numeric is None or readable is None:
        return pd.DataFrame(columns=["task", "variant"]), pd.DataFrame(columns=["task", "variant"])
    # rows in first-seen order (ALL last within each run), readable columns grouped by metric
    def by_order(df: pd.DataFrame) -> pd.DataFrame:
        rank = [order[k] + (len(order) if k[0] == ALL_TASKS else 0) for k in zip(df["task"], df["variant"])]
        return df.assign(_o=rank).sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)

    ordered = ["task", "variant"] + [
        c for _, name, _ in COMPARE_METRICS for c in readable.columns if c.startswith(f"{name} [")
    ]
    return by_order(numeric), by_order(readable[ordered].fillna("–"))
