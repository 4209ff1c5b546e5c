"""The model organism: a tiny Qwen3-VL trained in this repo, plus its PVM adapter, shipped as data.

``pvm-bench run`` with no ``--model`` evaluates it (base and pvm variants) on the held-out
length diagnostics, offline on CPU in a few minutes. ``pvm-bench organism train`` rebuilds the
weights; with the default seed it reproduces the shipped files byte for byte (their sha256 are
in ``weights/MANIFEST.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: The shipped base model directory (config, safetensors, tokenizer, image processor).
BASE_DIR = WEIGHTS_DIR / "base"
#: The shipped PVM adapter directory (pvm_config.json + adapter.safetensors).
PVM_DIR = WEIGHTS_DIR / "pvm"
MANIFEST = WEIGHTS_DIR / "MANIFEST.json"

#: Held-out diagnostic task, split and size of the default run. The ``test`` split (seed 1, N in
#: [0, 64]) is disjoint in seed from the training data; 100 samples x 2 variants with probes take
#: about 31 s on an idle 2-core CPU (budget: 3 minutes; shared machines run several times slower).
DEFAULT_TASKS = "swatch_recall"
DEFAULT_SPLIT = "test"
DEFAULT_LIMIT = 100
#: The longest test response ("64 63 ... 1\nAnswer: purple" + end token) is under 200 tokens;
#: 256 leaves room for a model that overshoots without spending the task's 768.
DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_BATCH_SIZE = 32
#: Tasks the organism's defaults apply to without ``--model``: its own generated length
#: diagnostics (tasks/length_diagnostics.py) and their group. Any other task needs ``--model``.
ORGANISM_TASKS = ("swatch_recall", "swatch_recall_given", "colour_recall", "colour_recall_given", "two_swatch_recall",
                  "length-diagnostics")


def default_run_options() -> dict[str, Any]:
    """Defaults of ``pvm-bench run`` without ``--model`` (the organism's own job, :data:`ORGANISM_TASKS`).

    Returns ``model`` and ``pvm`` (paths of the shipped weights, as strings), ``tasks`` (a
    comma-separated string) and the RunConfig fields ``split``, ``limit``, ``max_new_tokens`` and
    ``batch_size``. Raises FileNotFoundError when the shipped weights are missing (a broken install).
    """
    for path in (BASE_DIR / "config.json", PVM_DIR / "pvm_config.json"):
        if not path.is_file():
            raise FileNotFoundError(
                f"the model organism's weights are missing ({path}); reinstall pvm-bench "
                "or rebuild them with `pvm-bench organism train --out DIR`"
            )
    return {
        "model": str(BASE_DIR),
        "pvm": str(PVM_DIR),
        "tasks": DEFAULT_TASKS,
        "split": DEFAULT_SPLIT,
        "limit": DEFAULT_LIMIT,
        "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
        "batch_size": DEFAULT_BATCH_SIZE,
    }


__all__ = ["BASE_DIR", "MANIFEST", "ORGANISM_TASKS", "PVM_DIR", "WEIGHTS_DIR", "default_run_options"]
