"""What a run's numbers mean, in one line each, for the summary.md and report.html headers.

* :func:`decoding_line`: the protocol, greedy or sampled (temperature), and the repeats per sample
  (each metric is then the mean over the repeats, e.g. the PVM paper's 4-run average);
* :func:`compositions_line`: what each variant name ran (run.json ``variant_compositions``), so a row
  labelled ``pai`` says it is ``base+pai(...)`` and not PVM + PAI;
* :func:`parameters_line`: the model's parameter count without the PVM adapter (run.json's
  ``model.n_params`` is counted with the adapter attached, so it is the sum of both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def decoding_line(config: dict[str, Any]) -> str:
    """``protocol pvm-paper; sampled at temperature 0.7; 4 repeats per sample (each value is their mean)``."""
    temperature = float(config.get("temperature") or 0.0)
    repeats = int(config.get("repeats") or 1)
    sampled = f"sampled at temperature {temperature:g}" if temperature > 0 else "greedy"
    per = (f"{repeats} repeats per sample (each value is the mean over the repeats)" if repeats > 1
           else "1 generation per sample")
    return f"protocol {config.get('protocol') or 'default'}; {sampled}; {per}"


def compositions_line(compositions: dict[str, Any] | None) -> str:
    """``pai = base+pai(alpha=0.2,...); pvm+pai = pvm+pai(...)`` for the variants whose name is not
    already their canonical form; ``–`` when the run recorded none (made before compositions were)."""
    if not compositions:
        return "–"
    spelled = [f"{name} = {comp.get('canonical')}" for name, comp in compositions.items()
               if isinstance(comp, dict) and comp.get("canonical") != name]
    return "; ".join(spelled) if spelled else "each variant's name is its composition"


def adapter_params(adapter: dict[str, Any] | None) -> int | None:
    """Parameters in the adapter's ``adapter.safetensors`` (its header only: shapes, no tensor
    data), or None when there is no adapter file to read (a full checkpoint, a moved run)."""
    if not adapter or adapter.get("format") not in (None, "adapter"):
        return None
    path = Path(str(adapter.get("path") or "")).expanduser() / "adapter.safetensors"
    if not path.is_file():
        return None
    from safetensors import safe_open

    total = 0
    with safe_open(str(path), framework="numpy") as f:
        for key in f.keys():
            n = 1
            for d in f.get_slice(key).get_shape():
                n *= int(d)
            total += n
    return total


def parameters_line(model: dict[str, Any] | None, adapter: dict[str, Any] | None) -> str:
    """``949,987 (model) + 221,696 (PVM adapter) = 1,171,683 as loaded`` when the adapter file is
    readable, else the loaded count with what it includes; ``–`` without ``n_params``."""
    total = (model or {}).get("n_params")
    if not isinstance(total, int):
        return "–"
    extra = adapter_params(adapter)
    if extra is None or extra >= total:
        return f"{total:,}" + (" (as loaded, adapter included)" if adapter else "")
    return f"{total - extra:,} (model) + {extra:,} (PVM adapter) = {total:,} as loaded"
