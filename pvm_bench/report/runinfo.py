"""What a run's numbers mean, in one line each, for the summary.md and report.html headers.

* :func:`decoding_line`: the protocol, greedy or sampled (temperature), and the repeats per sample
  (each metric is then the mean over the repeats, e.g. the PVM paper's 4-run average);
* :func:`compositions_line`: what each variant name ran (run.json ``variant_compositions``), so a row
  labelled ``pai`` says it is ``base+pai(...)`` and not PVM + PAI.
"""

from __future__ import annotations

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
