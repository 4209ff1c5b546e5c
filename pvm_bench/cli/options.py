"""From command-line values to a typed :class:`~pvm_bench.config.RunConfig` (no torch, no pandas).

The ``run`` command collects the options the user actually gave (``None`` = not given) into a
dict of RunConfig fields and calls :func:`build_run_config`, which applies the rules of issue 17
item 3 in one place:

- an explicit flag always wins (``--batch-size 4`` stays 4, ``--probes attention,lens`` gets
  nothing added);
- without ``--model``, and with no ``--tasks`` or only the organism's own tasks, the run is the
  organism's job: its weights and its defaults (:func:`pvm_bench.organism.default_run_options`)
  fill what the user left unset; with any other task the run stops with one line asking for
  ``--model``;
- otherwise the unset fields keep RunConfig's defaults, so each task's own split and generation
  settings apply (``split=None``, ``max_new_tokens=None``);
- ``branch`` joins the default probes only when ``--probes`` was not given and there is an
  adapter.

lmms-eval spellings: :func:`normalize_args` rewrites ``--batch_size`` to ``--batch-size`` (any
underscored spelling of a known option), ``--output_path`` to ``--out`` and answers lmms-eval flags
without an equivalent with one line saying what to do; :func:`model_args_fields` and
:func:`gen_kwargs_fields` map ``--model_args k=v,...`` / ``--gen_kwargs k=v,...``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pvm_bench.cli.support import OptionError, config_error, csv_names
from pvm_bench.config import DEFAULT_PROBES, RunConfig, flag_name
from pvm_bench.errors import UserError

#: lmms-eval flags spelled differently here.
RENAMES = {"--output_path": "--out", "--output-path": "--out"}
#: lmms-eval flags with no pvm-bench equivalent, and what to do instead.
NO_EQUIVALENT = {
    "--num_fewshot": "pvm-bench runs every task zero-shot; drop it",
    "--predict_only": "pass --no-report to skip the summary and plots",
    "--apply_chat_template": "the model's chat template is always applied; drop it",
    "--use_cache": "pass --resume OUT/RUN_ID to continue a run",
    "--cache_requests": "pass --resume OUT/RUN_ID to continue a run",
    "--verbosity": "drop it (pass --quiet for no progress display)",
    "--show_config": "the full config is written to OUT/RUN_ID/run.json",
    "--log_samples_suffix": "name the run with --run-id",
    "--wandb_args": "pass --wandb-project NAME (Weights & Biases) or --tensorboard DIR",
    "--max_batch_size": "pass --batch-size N",
    "--offset": "not supported; pass --limit N",
    "--launcher_args": "pass --launcher torchrun --nproc N",
}
#: ``--model_args`` keys (lmms-eval's Qwen3-VL wrapper and the pvm_bench bridge) -> RunConfig field.
MODEL_ARG_FIELDS = {
    "pretrained": "model",
    "pvm": "pvm",
    "variant": "variants",
    "dtype": "dtype",
    "torch_dtype": "dtype",
    "device": "device",
    "device_map": "device_map",
    "attn_implementation": "attn_implementation",
    "trust_remote_code": "trust_remote_code",
    "batch_size": "batch_size",
    # lmms-eval 0.7.3 models/simple/qwen3_vl.py lines 86-87, 91 (also qwen2_5_vl.py, qwen2_vl.py).
    "min_pixels": "min_pixels",
    "max_pixels": "max_pixels",
    "system_prompt": "system_prompt",
}
#: ``--gen_kwargs`` keys -> RunConfig field (``do_sample`` is derived from temperature, as in
#: lmms-eval 0.7.3 models/simple/qwen3_vl.py:246-249, so it is accepted and ignored).
GEN_KWARG_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_new_tokens": "max_new_tokens",
    "repetition_penalty": "repetition_penalty",
}
GEN_KWARGS_IGNORED = ("do_sample",)
#: lmms-eval 0.7.3 task names (lmms_eval/tasks/*/*.yaml ``task:``) -> the pvm-bench task with the same
#: data and protocol. Suggested, never substituted: a user's own task may carry such a name.
LMMS_TASK_NAMES = {
    "mmmu_val": "mmmu",
    "mmbench_en_dev": "mmbench_en",
    "mmbench_cn_dev": "mmbench_cn",
    "mmbench_en_dev_lite": "mmbench_en_lite",
    "mmbench_cn_dev_lite": "mmbench_cn_lite",
    "mathverse_testmini_vision": "mathverse_vision",
    "mathvista_testmini": "mathvista_lmms",
    "mathvista_testmini_cot": "mathvista_cot_lmms",
    "mathvista_testmini_solution": "mathvista_solution_lmms",
    "mathverse_testmini": "mathverse",
    "mathverse_testmini_vision_only": "mathverse_vision_only",
    "mathverse_testmini_text_dominant": "mathverse_text_dominant",
    "mathvision_testmini": "mathvision_lmms",
    "hallusion_bench_image": "hallusionbench",
    "mmt_val": "mmt",
}


def normalize_args(args: Iterable[str], known: Iterable[str]) -> list[str]:
    """Rewrite lmms-eval spellings to this command's flags (``known``: the command's option names).

    Raises :class:`OptionError` for an lmms-eval flag that has no equivalent here.
    """
    known = set(known)
    out: list[str] = []
    args = list(args)
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in RENAMES:
                name = RENAMES[name]
            elif name in NO_EQUIVALENT:
                raise OptionError(f"{name} is lmms-eval's and has no pvm-bench equivalent: {NO_EQUIVALENT[name]}")
            elif "_" in name and name.replace("_", "-") in known:
                name = name.replace("_", "-")
            arg = name + eq + value
        out.append(arg)
    return out


def lmms_task_hint(names: Iterable[str], known: Iterable[str]) -> str | None:
    """One line for the first of ``names`` that is not a task here but is an lmms-eval task name."""
    known = set(known)
    for name in names:
        ours = LMMS_TASK_NAMES.get(name)
        if name not in known and ours in known:
            return f"'{name}' is lmms-eval's task name; the pvm-bench task is '{ours}' (pass --tasks {ours})"
    return None


def parse_kv(text: str, option: str) -> dict[str, str]:
    """``k=v,k=v`` (lmms-eval's ``simple_parse_args_string``, utils.py:207) -> dict of strings."""
    pairs: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise OptionError(f"{option} expects key=value pairs separated by commas, got '{item}'")
        pairs[key.strip()] = value.strip()
    return pairs


def _bool(value: str, what: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise OptionError(f"{what} must be true or false, got '{value}'")


def model_args_fields(text: str) -> dict[str, Any]:
    """RunConfig fields from ``--model_args pretrained=DIR,dtype=bfloat16,...``."""
    fields: dict[str, Any] = {}
    for key, value in parse_kv(text, "--model_args").items():
        if key not in MODEL_ARG_FIELDS:
            raise OptionError(
                f"--model_args key '{key}' has no pvm-bench equivalent; known keys: {', '.join(MODEL_ARG_FIELDS)}"
            )
        field = MODEL_ARG_FIELDS[key]
        if field == "trust_remote_code":
            fields[field] = _bool(value, "--model_args trust_remote_code")
        elif field == "variants":
            fields[field] = [value]
        else:
            fields[field] = value
    return fields


def gen_kwargs_fields(text: str) -> dict[str, Any]:
    """RunConfig fields from ``--gen_kwargs temperature=0.7,top_p=0.8,max_new_tokens=1024``."""
    fields: dict[str, Any] = {}
    for key, value in parse_kv(text, "--gen_kwargs").items():
        if key in GEN_KWARGS_IGNORED:
            continue
        if key not in GEN_KWARG_FIELDS:
            raise OptionError(
                f"--gen_kwargs key '{key}' has no pvm-bench equivalent; known keys: "
                f"{', '.join([*GEN_KWARG_FIELDS, *GEN_KWARGS_IGNORED])}"
            )
        fields[GEN_KWARG_FIELDS[key]] = value  # RunConfig validates and converts the number
    return fields


def merge_fields(flags: Mapping[str, Any], extra: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``flags`` plus ``extra`` (from ``source``); a field given both ways must agree."""
    merged = dict(flags)
    for field, value in extra.items():
        if field in merged and str(merged[field]) != str(value):
            raise OptionError(
                f"{flag_name(field)} {merged[field]!r} and {source} {value!r} disagree; pass it once"
            )
        merged.setdefault(field, value)
    return merged


def _organism_job(fields: dict[str, Any]) -> dict[str, Any]:
    """Fill an organism run: its weights, then its defaults where the user left a field unset."""
    from pvm_bench.organism import ORGANISM_TASKS, default_run_options

    tasks = fields.get("tasks") or []
    foreign = [t for t in tasks if t not in ORGANISM_TASKS]
    if foreign:
        from pvm_bench.tasks import get_registry

        # a name no source defines gets "did you mean" first (TaskError), not "needs a model"
        get_registry(fields.get("include_paths") or [], override_tasks=fields.get("override_tasks") or ()).resolve(
            foreign
        )
        raise UserError(
            f"task '{foreign[0]}' needs a model: pass --model HUB_ID_OR_DIR (without --model, pvm-bench runs "
            f"its built-in organism, whose tasks are {', '.join(ORGANISM_TASKS)})"
        )
    try:
        defaults = default_run_options()
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    filled = dict(fields)
    filled["model"] = defaults["model"]
    filled.setdefault("pvm", defaults["pvm"])
    filled.setdefault("tasks", csv_names(defaults["tasks"]))
    for key, value in defaults.items():
        if key not in ("model", "pvm", "tasks"):
            filled.setdefault(key, value)
    return filled


def build_run_config(given: Mapping[str, Any]) -> RunConfig:
    """The RunConfig of a new run from the fields the user gave (see the module docstring).

    ``given`` holds only explicitly set RunConfig fields (no ``None`` values). Raises
    :class:`UserError` (one line) for a benchmark without ``--model``, no tasks, or a value
    outside its range (:func:`pvm_bench.cli.support.config_error`).
    """
    fields = {k: v for k, v in given.items() if v is not None}
    if fields.get("model") is None:
        fields = _organism_job(fields)
    if not fields.get("tasks"):
        raise UserError("no tasks given; pass --tasks NAME[,NAME] (see `pvm-bench tasks`)")
    if "probes" not in fields:
        fields["probes"] = [*DEFAULT_PROBES, *(["branch"] if fields.get("pvm") else [])]
    from pydantic import ValidationError

    try:
        return RunConfig(**fields)
    except ValidationError as exc:
        raise config_error(exc) from None


def typed_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` validated and converted to RunConfig's types (``"0.7"`` -> 0.7), for ``--resume``.

    Raises :class:`UserError` (one line naming the flag) for a value outside its range.
    """
    from pydantic import ValidationError

    placeholder = {"model": "-", "tasks": ["-"]}
    try:
        config = RunConfig(**{**placeholder, **given})
    except ValidationError as exc:
        raise config_error(exc) from None
    return {k: getattr(config, k) for k in given}


#: Options that may differ on ``--resume`` (not passed to the runner's comparison): they do not
#: change what the run computes.
RESUME_FREE = ("report",)
__all__ = [
    "RESUME_FREE",
    "typed_fields",
    "GEN_KWARG_FIELDS",
    "LMMS_TASK_NAMES",
    "lmms_task_hint",
    "MODEL_ARG_FIELDS",
    "NO_EQUIVALENT",
    "build_run_config",
    "gen_kwargs_fields",
    "merge_fields",
    "model_args_fields",
    "normalize_args",
    "parse_kv",
]
