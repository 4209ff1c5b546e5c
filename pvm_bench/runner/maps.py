"""Spatial attention maps in the run directory (``--maps``): which samples, where, and the file format.

One safetensors file per (variant, task, sample, repeat) that ``--maps`` selects (no pickles;
reading one executes nothing)::

    RUN/maps/<variant>/<task>/<sample_id>-r<repeat>.safetensors

each path part percent-encoded (:func:`urllib.parse.quote`, nothing kept) so any variant, task or
sample id is one plain file name. Tensors:

- ``attention`` float16 ``[steps, tokens]``: per generated step (step k = the query that produced
  generated token k; step 0 is the prefill's last prompt position), the attention on each image
  token, averaged over heads and over the layer band; image tokens of all images in prompt order.
  Per step, the row sums to the band's mean ``visual_mass`` of that step (float16 rounding aside);
- ``visual_mass`` float32 ``[steps]``: that sum before rounding (what the browser shades tokens by).

Metadata ``maps`` (JSON): ``format`` (:data:`FORMAT`), ``variant``/``task``/``sample_id``/``repeat``,
``layers`` (the band), ``steps`` (rows stored), ``n_generated`` (steps beyond ``max_steps`` are not
stored), ``max_steps``, ``tokens`` (each generated token's text, one per stored step), and
``images``: per image ``{"index", "start", "n_tokens", "views": [{"start", "rows", "cols", "label",
"whole", "note"}]}`` (``start`` columns into ``attention``; view starts are relative to the image;
see :mod:`pvm_bench.models.grids`).

Which samples (:func:`chosen_keys`): ``--maps N`` = the first N samples of each task (in the task's
order, every repeat and variant); ``--maps id1,id2`` = those sample ids wherever they occur;
``--maps 0`` = none (the probe is then not installed at all).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from pvm_bench.errors import UserError

FORMAT = "pvm-bench.maps/1"
MAPS_DIR = "maps"
#: Steps stored per sample (the first ones); bounds memory and disk for long generations.
DEFAULT_MAX_STEPS = 1024


class MapsError(UserError, ValueError):
    """``--maps`` names samples the run does not have, or a map file is not readable."""


@dataclass
class SampleMaps:
    """One sample's maps as :class:`~pvm_bench.probes.maps.MapsProbe` collects them (numpy, host)."""

    attention: np.ndarray  # [steps, tokens] float32 (stored as float16)
    visual_mass: np.ndarray  # [steps] float32
    layers: list[int]
    images: list[dict[str, Any]]
    n_generated: int
    max_steps: int
    meta: dict[str, Any] = field(default_factory=dict)


def map_path(run_dir: Path, variant: str, task: str, sample_id: str, repeat: int) -> Path:
    """Where the maps of one (variant, task, sample, repeat) live (see the module docstring)."""
    part = lambda s: quote(str(s), safe="")  # noqa: E731 -- one rule for every path part
    return Path(run_dir) / MAPS_DIR / part(variant) / part(task) / f"{part(sample_id)}-r{int(repeat)}.safetensors"


def write_maps(path: Path, maps: SampleMaps, tokens: Sequence[str], **ids: Any) -> Path:
    """Write ``maps`` (float16 attention, float32 mass, JSON metadata) atomically to ``path``."""
    from safetensors.numpy import save

    from pvm_bench.results import atomic_write_bytes

    steps = int(maps.attention.shape[0])
    meta = {"format": FORMAT, **ids, "layers": [int(x) for x in maps.layers], "steps": steps,
            "n_generated": int(maps.n_generated), "max_steps": int(maps.max_steps),
            "tokens": [str(t) for t in list(tokens)[:steps]], "images": maps.images, **maps.meta}
    data = save({"attention": np.ascontiguousarray(maps.attention, dtype=np.float16),
                 "visual_mass": np.ascontiguousarray(maps.visual_mass, dtype=np.float32)},
                metadata={"maps": json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def read_maps(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(tensors, metadata)`` of one map file (numpy only; nothing is executed).

    Raises:
        MapsError: the file is not a pvm-bench map file.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("maps", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is one clear line
        raise MapsError(f"{path}: not a readable map file ({exc})") from None
    if meta.get("format") != FORMAT or "attention" not in tensors:
        raise MapsError(f"{path}: not a pvm-bench map file (format {meta.get('format')!r}, expected {FORMAT})")
    return tensors, meta


def parse_maps(value: str) -> int | list[str]:
    """``--maps`` text: a whole number N (first N per task) or comma-separated sample ids
    (a single numeric id: give it with a trailing comma, ``--maps 7,``)."""
    text = value.strip()
    if "," not in text:
        if not text.isdigit():
            raise MapsError(f"--maps takes a number of samples per task or comma-separated sample ids (got '{value}'), "
                            "e.g. --maps 2 or --maps q17,q42")
        return int(text)
    ids = [p.strip() for p in text.split(",") if p.strip()]
    if not ids:
        raise MapsError("--maps got no sample ids; pass e.g. --maps q17,q42 (or --maps 0 for none)")
    return ids


def chosen_keys(maps: int | Sequence[str], tasks: Iterable[tuple[Any, Sequence[Any]]]) -> set[tuple[str, str]]:
    """The (task, sample_id) pairs ``--maps`` selects among the loaded ``(task, samples)``.

    Raises:
        MapsError: an id in ``maps`` is in none of the tasks (the message names it).
    """
    loaded = [(t.name, [str(s.id) for s in samples]) for t, samples in tasks]
    if isinstance(maps, int):
        return {(name, sid) for name, ids in loaded for sid in ids[: max(maps, 0)]}
    wanted = {str(m) for m in maps}
    found = {(name, sid) for name, ids in loaded for sid in ids if sid in wanted}
    missing = sorted(wanted - {sid for _, sid in found})
    if missing:
        raise MapsError(f"--maps names sample id(s) {', '.join(map(repr, missing[:5]))} that no task of this run has; "
                        "pass ids from samples.jsonl (or --maps N for the first N per task)")
    return found


def save_collected(run_dir: Path, variant: str, generations: Sequence[Any], collected: Sequence[SampleMaps | None],
                   tokenizer: Any) -> list[Path]:
    """Write the maps a :class:`~pvm_bench.probes.maps.MapsProbe` collected for a batch.

    ``generations`` are the batch's results in row order, whose ``key`` is the runner's work item
    (``task``, ``sample``, ``repeat``); ``tokenizer`` decodes each generated token for ``tokens``.
    """
    written = []
    for gen, maps in zip(generations, collected):
        if maps is None:
            continue
        item = gen.key
        steps = int(maps.attention.shape[0])
        tokens = [tokenizer.decode([t]) for t in gen.token_ids[:steps]]
        path = map_path(run_dir, variant, item.task.name, item.sample.id, item.repeat)
        written.append(write_maps(path, maps, tokens, variant=variant, task=item.task.name,
                                  sample_id=str(item.sample.id), repeat=int(item.repeat)))
    return written
