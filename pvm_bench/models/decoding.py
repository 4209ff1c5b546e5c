"""Which decoding settings a generation actually uses, and where each one comes from.

pvm-bench decodes like lmms-eval 0.7.3's ``qwen3_vl`` model (the wrapper the PVM paper's
models are evaluated with) on top of ``transformers``' ``generate``:

* ``temperature`` is the user's: 0 (the default, as in lmms-eval's
  ``Qwen3_VL.DEFAULT_GEN_KWARGS``, ``lmms_eval/models/simple/qwen3_vl.py`` lines 71-76 of the
  0.7.3 wheel) is greedy decoding; > 0 samples. The checkpoint's own ``temperature`` (and its
  ``do_sample``) are never used: lmms-eval passes ``do_sample`` explicitly from the temperature
  (``_build_generate_kwargs``, lines 246-252).
* Sampling filters ``top_p``, ``top_k`` and ``repetition_penalty``: the user's value, else the
  task's (lmms-eval YAML ``generation_kwargs``, e.g. MMBench's ``top_p: 1.0``), else the
  checkpoint's ``generation_config``, else transformers' global default (``top_k`` 50,
  ``top_p`` 1.0, ``repetition_penalty`` 1.0). This is what ``model.generate(**kwargs)`` does in
  lmms-eval: it passes only the keys it has (lines 254-264) and ``transformers`` fills every
  unset field from ``model.generation_config`` and then from its global defaults
  (``GenerationMixin._prepare_generation_config``, ``transformers/generation/utils.py`` lines
  2113-2115 in 5.24).
* Under greedy decoding lmms-eval drops ``temperature``, ``top_p`` and ``top_k`` (lines 248-252)
  and transformers adds the temperature/top-k/top-p warpers only when ``do_sample`` is true
  (``_get_logits_processor``, line 1603), so none of them applies. ``repetition_penalty`` is
  not dropped: lmms-eval never passes it, transformers takes the checkpoint's value and
  applies its ``RepetitionPenaltyLogitsProcessor`` whatever ``do_sample`` is (line 1472). It
  therefore applies under greedy decoding too, here as well.

Sources are ``"user"``, ``"task"``, ``"checkpoint"``, ``"default"``, and ``"greedy"`` for a
filter that greedy decoding does not use (its value is then ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: transformers' global generation defaults for the fields decided here (``GenerationConfig.
#: _get_default_generation_params``); used when that private helper is unavailable.
TRANSFORMERS_DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "top_k": 50, "repetition_penalty": 1.0}
FILTERS = ("top_p", "top_k", "repetition_penalty")


def generation_config_of(model: Any) -> Any:
    """The ``GenerationConfig`` of a LoadedModel, a transformers model or a GenerationConfig."""
    for owner in (getattr(model, "hf_model", None), model):
        config = getattr(owner, "generation_config", None)
        if config is not None:
            return config
    if hasattr(model, "to_dict") and hasattr(model, "top_k"):
        return model
    return None


def transformers_defaults() -> dict[str, Any]:
    """transformers' global defaults for temperature/top_p/top_k/repetition_penalty."""
    try:
        from transformers import GenerationConfig

        found = GenerationConfig()._get_default_generation_params()
    except Exception:  # noqa: BLE001 -- private helper; fall back to the documented values
        return dict(TRANSFORMERS_DEFAULTS)
    return {k: found.get(k, v) for k, v in TRANSFORMERS_DEFAULTS.items()}


def checkpoint_settings(model: Any) -> dict[str, Any]:
    """The checkpoint's own values (``None`` where its generation_config leaves them unset)."""
    config = generation_config_of(model)
    keys = ("do_sample", "temperature", *FILTERS)
    return {k: getattr(config, k, None) if config is not None else None for k in keys}


def _normalise(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "top_k":
        value = int(value)
        return value if value > 0 else None  # 0 disables top-k in transformers
    return float(value)


def effective_decoding(
    model: Any,
    temperature: float | None = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    repetition_penalty: float | None = None,
    *,
    task: Mapping[str, Any] | None = None,
    temperature_source: str | None = None,
) -> dict[str, Any]:
    """The decoding settings a generation uses, with the source of each.

    Args:
        model: a LoadedModel, a transformers model or a GenerationConfig (the checkpoint's).
        temperature: the user's temperature; 0 or ``None`` is greedy (``None`` = not given).
        top_p, top_k, repetition_penalty: the user's values; ``None`` = not given.
        task: the task's ``generation`` dict; its ``top_p``/``top_k``/``repetition_penalty``
            win over the checkpoint (lmms-eval task YAML ``generation_kwargs``).
        temperature_source: where a given ``temperature`` came from when the caller knows
            (:meth:`pvm_bench.config.RunConfig.source`: ``"user"``, ``"default"``, a protocol's
            name); else ``"user"`` for a value and ``"default"`` for ``None``.

    Returns:
        ``{"do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "source":
        {field: source}, "checkpoint": {the checkpoint's raw values}}``. ``top_k`` ``None`` means
        no top-k filter; ``repetition_penalty`` 1.0 means none. Under greedy decoding
        ``temperature`` is 0.0 and ``top_p``/``top_k`` are ``None`` with source ``"greedy"``.
    """
    user = {"top_p": top_p, "top_k": top_k, "repetition_penalty": repetition_penalty}
    task = dict(task or {})
    checkpoint = checkpoint_settings(model)
    defaults = transformers_defaults()
    temp = 0.0 if temperature is None else float(temperature)
    do_sample = temp > 0
    out: dict[str, Any] = {"do_sample": do_sample, "temperature": temp if do_sample else 0.0}
    source: dict[str, str] = {"temperature": temperature_source or ("user" if temperature is not None else "default")}
    for name in FILTERS:
        if not do_sample and name != "repetition_penalty":
            out[name], source[name] = None, "greedy"
            continue
        for origin, values in (("user", user), ("task", task), ("checkpoint", checkpoint), ("default", defaults)):
            if values.get(name) is not None:
                out[name], source[name] = _normalise(name, values[name]), origin
                break
    out["source"] = source
    out["checkpoint"] = {k: v for k, v in checkpoint.items()}
    return out
