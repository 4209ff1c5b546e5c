"""What a fresh run checks before it creates its directory: local inputs first, then the hub.

Order (cheapest and most likely first, so the error names the real problem): the PVM adapter, a
local model directory, ``--data-dir``, ``--judge`` paths must exist; then, only when something must
come from the Hugging Face hub (a hub model id, a hub task without ``--data-dir``), the hub must be
usable. With ``HF_HUB_OFFLINE`` set, or when one short probe (:func:`hub_unreachable`) finds the hub
unreachable, the process switches the hub libraries to offline mode (:func:`use_local_cache_only`):
what is cached still loads, what is not fails at once instead of after a minute of per-file retries,
and a hub model id that is not in the local cache is refused here. Nothing here creates a file.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pvm_bench.runner.guard import RunError

#: Seconds the hub probe waits: a reachable hub answers a HEAD in well under a second.
PROBE_TIMEOUT_S = 4.0
_TRUE = {"1", "ON", "YES", "TRUE"}


class PreflightError(RunError):
    """A run's inputs are missing or unreachable; nothing was written."""


def check_local_inputs(cfg: Any) -> None:
    """Refuse (one line) a missing ``--pvm`` adapter, local ``--model``/``--judge`` dir or ``--data-dir``."""
    from pvm_bench.models.loading import is_local_source

    if cfg.pvm and not Path(cfg.pvm).expanduser().exists():
        raise PreflightError(f"PVM adapter {cfg.pvm} does not exist; pass --pvm with an adapter directory "
                             "(pvm_config.json + adapter.safetensors) or a full PVM checkpoint")
    for flag, what, value in (("--model", "model", cfg.model), ("--judge", "judge model", cfg.judge)):
        if value and is_local_source(value) and not Path(value).expanduser().exists():
            raise PreflightError(f"cannot load {what} {value}: it does not exist; pass {flag} with an existing model "
                                 "directory or a hub id")
    if cfg.data_dir and not Path(cfg.data_dir).is_dir():
        what = "is a file" if Path(cfg.data_dir).exists() else "does not exist"
        raise PreflightError(
            f"--data-dir {cfg.data_dir} {what}; pass the folder holding <task>/<split>.parquet (or .jsonl/.json)"
        )


def offline_reason() -> str | None:
    """Why the hub is not to be used: ``HF_HUB_OFFLINE`` is set (in the environment, or read by
    huggingface_hub when it was imported); else None. (``HF_DATASETS_OFFLINE`` alone is the datasets
    library's business: it fails fast by itself, and models may still come from the hub.)"""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE:
        return "HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return "HF_HUB_OFFLINE is set"
    except ImportError:  # pragma: no cover
        pass
    return None


def hub_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT)
    except ImportError:  # pragma: no cover
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_unreachable(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """One HEAD request to the hub endpoint: None when it answers (any HTTP status), else why not."""
    endpoint = hub_endpoint()
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the Hugging Face hub ({endpoint}) is unreachable ({reason})"
    return None


def use_local_cache_only() -> None:
    """Switch huggingface_hub, transformers and datasets of this process to offline mode (the
    cache only, no network retries): the environment for libraries not imported yet, their
    module constants for those that are."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover
        pass
    import sys

    config = sys.modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = True
        config.HF_DATASETS_OFFLINE = True


def hub_needs(cfg: Any, tasks: Sequence[Any]) -> list[str]:
    """What of this run would come from the hub: hub model ids and hub tasks without ``--data-dir``."""
    from pvm_bench.models.loading import is_local_source

    needs = [f"model {value}" for value in (cfg.model, cfg.judge) if value and not is_local_source(value)]
    if not cfg.data_dir:
        needs += [f"task '{t.name}' ({t.hub_id})" for t in tasks if getattr(t, "hub_id", None)]
    return needs


def check_hub(cfg: Any, tasks: Sequence[Any], log: Callable[[str], None] = lambda m: None) -> None:
    """When the run needs the hub and it is offline or unreachable: go offline for this process and
    refuse a hub model that is not cached (one line naming it and the fix). Tasks are loaded next,
    from the cache, and fail at once when their data is not there."""
    from pvm_bench.models.loading import is_local_source
    from pvm_bench.runner.guard import hub_snapshot

    needs = hub_needs(cfg, tasks)
    if not needs:
        return
    reason = offline_reason()
    if reason is None:
        reason = hub_unreachable()
        if reason is None:
            return
        log(f"note: {reason}; using the local Hugging Face cache only")
    use_local_cache_only()
    for value in (cfg.model, cfg.judge):
        if value and not is_local_source(value) and hub_snapshot(value) is None:
            raise PreflightError(
                f"model {value} is not in the local Hugging Face cache and {reason}; download it where the hub "
                f"is reachable (`hf download {value}`) or pass a local model directory"
            )
