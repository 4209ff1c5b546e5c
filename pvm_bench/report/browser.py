"""The sample browser of report.html: every record of the run, grouped and paged in the page.

Contract:

- every record of the run is shown (no cap): samples.jsonl and any rank shard a crashed multi-GPU
  run did not merge (:func:`pvm_bench.results.read_samples`, as the runner reads them); up to
  :data:`EMBED_MAX_RECORDS` records are embedded, more go to side files ``report_samples/chunk-*.js`` loaded on demand
  (report.html keeps a small index; :func:`write_side_files`; ``pvm-bench report --single-file`` embeds any number).
  Embedded records are one JSON document in a ``<script type="application/json">`` block, escaped by
  :func:`script_json` so no model text
  can close the script element; the page's script renders one page of groups at a time
  (pagination) and builds the DOM with ``textContent`` only, so model text is never parsed as
  HTML;
- records are grouped by (task, sample_id, repeat) in natural id order (``s2`` before ``s10``);
  the variants of a group are shown side by side, ``base`` first; a group "disagrees" when its
  variants' scores differ;
- a record's *caveats* (error, truncated, unparsed = ``score_detail.extractor == "none"``, an
  ``*_ok`` flag that is false, ``guessed`` true) are shown next to its score, and a full score
  with caveats is drawn as "1.00 !" in amber, never as a clean green 1.00;
- image thumbnails and visual-mass curves come from :mod:`pvm_bench.report.browser_media`;
- markup comes from ``templates/browser.html.j2`` (jinja2, autoescape on).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from pvm_bench.report.browser_maps import attach_maps
from pvm_bench.report.browser_media import FiniteList, Thumbs, load_thumbnails, visual_mass_curves
from pvm_bench.report.templating import environment
from pvm_bench.results import SampleRecord, atomic_write_text

if TYPE_CHECKING:  # RunData moves between report modules; only its attributes are used here
    from pvm_bench.report.summary import RunData

#: Records per page offered by the page-size control; the first is the default.
PAGE_SIZES = (25, 50, 100, 250)
#: Boolean score details that are caveats when True (other flags are caveats when a name ending
#: in ``_ok`` is False, e.g. length_diagnostics' ``filler_ok``).
BAD_WHEN_TRUE = frozenset({"guessed"})
#: Sample metadata shown per group is cut at this many characters, with a visible marker.
META_CHARS = 2000

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs by value, case-insensitively: ``q2 < Q3 < q10 < r1``
    (``natsort``); ties (``007`` and ``7``) broken by the raw text, so the order is total."""
    return (_natsort_key()(text), text)


@cache
def _natsort_key() -> Callable[[str], Any]:
    from natsort import natsort_keygen, ns  # ~0.1 s to import: only when a report sorts ids

    return natsort_keygen(alg=ns.IGNORECASE)


def _clean(obj: Any) -> Any:
    """JSON-ready copy of ``obj``: NaN/inf -> None (JSON.parse rejects NaN), tuples -> lists,
    other non-JSON values -> str."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, FiniteList):  # a curve: 64 finite floats, a million of them at paper scale
        return obj
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_clean(v) for v in obj]
    return str(obj)


def script_json(obj: Any) -> Markup:
    """``obj`` as compact JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&``
    and the JS line separators are written as ``\\uXXXX`` escapes, so ``</script>`` or ``<!--``
    in model text cannot end or alter the element; JSON.parse restores the original text."""
    text = json.dumps(_clean(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Markup(re.sub("[<>&\u2028\u2029]", lambda m: _ESCAPES[m.group(0)], text))


def caveats(rec: SampleRecord) -> list[str]:
    """Reasons not to take the record's score at face value (see the module docstring)."""
    detail = rec.score_detail
    out = []
    if rec.error or rec.finish_reason == "error":
        out.append("error")
    if rec.truncated:
        out.append("truncated")
    if detail.extractor == "none":
        out.append("unparsed")
    for name, value in detail.flags.items():
        if (name.endswith("_ok") and not value) or (name in BAD_WHEN_TRUE and value):
            out.append(f"{name}={'true' if value else 'false'}")
    return out


def _record(rec: SampleRecord, curve: dict[str, list[float]] | None) -> dict[str, Any]:
    detail = rec.score_detail
    shown: dict[str, Any] = {}
    if detail.extractor is not None:
        shown["extractor"] = detail.extractor
    shown.update({f"sub_score {k}": v for k, v in detail.sub_scores.items()})
    meta = rec.metadata or {}
    # a detail the scorer copied from the sample's metadata (swatch_recall's "distance") describes the
    # prompt, not this output: it is shown once per sample, beside the target, not under each variant
    shown.update({k: v for k, v in detail.details.items() if not (k in meta and meta[k] == v)})
    return {
        "variant": rec.variant, "score": rec.score, "parsed": rec.parsed, "output": rec.output,
        "prompt": rec.prompt, "n": rec.n_generated, "max_new": rec.max_new_tokens, "finish": rec.finish_reason,
        "truncated": rec.truncated, "error": rec.error, "flags": dict(detail.flags), "details": shown,
        "caveats": caveats(rec), "curve": curve,
    }


def _metadata_text(meta: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in meta.items() if k != "score"}
    if not shown:
        return ""
    text = json.dumps(_clean(shown), ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > META_CHARS:
        text = text[:META_CHARS] + f" … ({len(text) - META_CHARS} more characters in samples.jsonl)"
    return text


def _variant_order(data: RunData, records: list[SampleRecord]) -> list[str]:
    order = list(data.variants)
    for v in sorted({r.variant for r in records}):
        if v not in order:
            order.append(v)
    return order


def build_browser_data(data: RunData, *, thumbnails: bool = True, thumb_px: int = 96,
                       curve_points: int = 64) -> dict[str, Any]:
    """The browser's JSON payload for a run (every record, none dropped).

    ``groups`` (natural order of task, sample_id, repeat) each carry ``task``, ``id``,
    ``repeat``, ``target``, ``prompt`` (when all variants saw the same prompt, else per record),
    ``meta`` (sample metadata as text), ``distance`` ("label = value" of the task's declared
    distance, read from the sample's metadata: a property of the prompt; None when the task has
    none), ``images`` (data URIs, possibly empty), ``disagree`` and
    ``records`` (one per variant, in ``variants`` order). ``notes`` says what was left out;
    ``chunks`` is None (set by :func:`write_side_files`).
    """
    records = data.records  # read_samples: samples.jsonl and any unmerged rank shards
    variants = _variant_order(data, records)
    rank = {v: i for i, v in enumerate(variants)}
    curves = visual_mass_curves(data.agg, curve_points)
    grouped: dict[tuple[str, str, int], list[SampleRecord]] = {}
    for rec in records:
        grouped.setdefault((rec.task, rec.sample_id, rec.repeat), []).append(rec)
    keys = sorted(grouped, key=lambda k: (natural_key(k[0]), natural_key(k[1]), k[2]))
    thumbs: Thumbs = {}
    notes: list[str] = []
    if thumbnails:
        thumbs, notes = load_thumbnails(data.run, {(t, s) for t, s, _ in keys}, thumb_px, data.run_dir)
    if records and not curves:
        notes.append("No visual-mass curves: attention.parquet is missing or has no visual_mass rows.")
    from pvm_bench.report.distance import distance_keys

    distance = distance_keys(data) if records else {}  # {task: (metadata key, label)}
    groups = []
    for task, sid, rep in keys:
        recs = sorted(grouped[(task, sid, rep)], key=lambda r: rank[r.variant])
        rows = [_record(r, curves.get((r.variant, task, sid, rep))) for r in recs]
        prompts = {r.prompt for r in recs}
        shared = len(prompts) == 1
        if shared:
            for row in rows:
                row.pop("prompt")
        scores = [r.score for r in recs]
        target = recs[0].target
        dist = distance.get(task)
        d_value = (recs[0].metadata or {}).get(dist[0]) if dist else None
        groups.append({
            "task": task, "id": sid, "repeat": rep,
            "distance": f"{dist[1]} = {d_value}" if dist and d_value is not None else None,
            "target": target if isinstance(target, str) else json.dumps(_clean(target), ensure_ascii=False),
            "prompt": recs[0].prompt if shared else None,
            "meta": _metadata_text(recs[0].metadata or {}),
            "images": thumbs.get((task, sid), []),
            "disagree": len(recs) > 1 and max(scores) - min(scores) > 1e-9,
            "records": rows,
        })
    notes.extend(attach_maps(data.run_dir, groups))  # --maps: spatial maps per record (browser_maps.js draws them)
    return {
        "run_id": data.run_id, "variants": variants,
        "tasks": sorted({k[0] for k in keys}, key=natural_key), "n_records": len(records),
        "page_sizes": list(PAGE_SIZES), "groups": groups, "notes": notes, "chunks": None,
    }


#: Above this many records the records go to side files loaded on demand (see
#: :func:`write_side_files`); at or below it report.html embeds everything (one self-contained file).
EMBED_MAX_RECORDS = 4000
#: Samples (groups) per side file: one page of the browser needs one or two of them.
CHUNK_GROUPS = 250
#: The side files' folder, next to report.html.
SIDE_DIR = "report_samples"
#: The record fields a group's summary line and the filters need (kept in report.html's index).
_INDEX_RECORD_FIELDS = ("variant", "score", "caveats")


def _js_string(text: str) -> str:
    """``text`` as a JavaScript string literal (JSON's string syntax; line separators escaped)."""
    return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_side_files(run_dir: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Move the groups' records into ``run_dir/report_samples/chunk-NNNNN.js`` and return the
    payload report.html embeds instead: per group only what the filters and the summary line use
    (task, id, repeat, disagree, each record's variant, score, caveats), plus ``chunks`` (folder,
    groups per file, file count). A side file calls ``pvmBenchSamples(k, "<json>")`` with the
    full groups ``k * size ..``; the page loads the files of the page it shows (and all of them
    for a text search) with ``<script src>``, which works from ``file://``. Model text stays in a
    JSON string parsed by ``JSON.parse`` and is rendered with ``textContent`` as before."""
    folder = run_dir / SIDE_DIR
    folder.mkdir(exist_ok=True)
    for old in folder.glob("chunk-*.js"):
        old.unlink()
    groups = payload["groups"]
    n_chunks = (len(groups) + CHUNK_GROUPS - 1) // CHUNK_GROUPS
    for k in range(n_chunks):
        text = json.dumps(_clean(groups[k * CHUNK_GROUPS:(k + 1) * CHUNK_GROUPS]), ensure_ascii=False,
                          separators=(",", ":"), allow_nan=False)
        atomic_write_text(folder / f"chunk-{k:05d}.js", f"pvmBenchSamples({k}, {_js_string(text)});\n")
    index = [{"task": g["task"], "id": g["id"], "repeat": g["repeat"], "disagree": g["disagree"],
              "records": [{f: r[f] for f in _INDEX_RECORD_FIELDS} for r in g["records"]]} for g in groups]
    return {**payload, "groups": index, "chunks": {"dir": SIDE_DIR, "size": CHUNK_GROUPS, "n": n_chunks}}


def render_browser(data: RunData, *, thumbnails: bool = True, single_file: bool | None = None) -> Markup:
    """The "Samples" section of report.html (controls, records or their index, scoped CSS and JS).

    ``single_file``: embed every record (True), or write them to side files next to report.html
    (False, :func:`write_side_files`); None: side files above :data:`EMBED_MAX_RECORDS` records.
    An embedded report removes side files an earlier, larger report left.
    """
    payload = build_browser_data(data, thumbnails=thumbnails)
    if single_file is None:
        single_file = payload["n_records"] <= EMBED_MAX_RECORDS
    if single_file or not payload["groups"]:
        shutil.rmtree(data.run_dir / SIDE_DIR, ignore_errors=True)
    else:
        payload = write_side_files(data.run_dir, payload)
    html = environment().get_template("browser.html.j2").render(
        payload=payload, payload_json=script_json(payload),
    )
    return Markup(html)
