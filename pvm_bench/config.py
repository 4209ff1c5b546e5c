"""The typed run configuration: the one place where run defaults and option constraints live.

:class:`RunConfig` is what ``pvm-bench run`` builds from its flags, what ``run.json`` stores and
what ``--resume`` reloads. It imports nothing heavy (pydantic only), so the CLI can build and
validate it before torch or pandas load. Every constraint is checked here, so the library API and
the CLI refuse the same bad values; the CLI turns a :class:`pydantic.ValidationError` into one
``error:`` line naming the flag (:func:`pvm_bench.cli.support.config_error`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from pvm_bench.paper_table import protocol_run_defaults

#: ``--dtype`` values (``pvm_bench.models.loading.DTYPES`` plus ``auto``).
DTYPE_CHOICES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
#: ``--attn-implementation`` values: transformers' built-in attention backends.
ATTN_CHOICES = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
#: ``--device-map`` values accepted by accelerate for a string map.
DEVICE_MAP_CHOICES = ("auto", "balanced", "balanced_low_0", "sequential")
#: ``--device``: auto, cpu, mps, cuda or cuda:N.
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")  # fullmatch; [0-9]: \d is any Unicode digit
DEVICE_HELP = "auto, cpu, mps, cuda or cuda:N"
#: A run id is one plain directory name: letters, digits, '.', '_', '-', not starting with '.' or '-'.
RUN_ID_PATTERN = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
)  # matched with fullmatch (``$`` allows a trailing newline)
#: Smallest sampling temperature: below it logits / T overflow float32 (1e-320 gives inf/nan probabilities).
MIN_TEMPERATURE = 1e-5
#: Probes recorded when the user does not choose (``branch`` is added by the CLI with an adapter).
DEFAULT_PROBES = ("attention", "lens")
#: ``--protocol`` values (pvm_bench.models.protocol.PROTOCOLS; literal here: no torch import).
PROTOCOL_CHOICES = ("default", "lmms-eval", "pvm-paper")

#: Fields whose value must be one of a fixed list (None, where the field allows it, is "not set").
CHOICES = {"dtype": DTYPE_CHOICES, "device_map": DEVICE_MAP_CHOICES, "attn_implementation": ATTN_CHOICES,
           "protocol": PROTOCOL_CHOICES}

PositiveInt = Annotated[int, Field(ge=1)]

#: The ``pvm-bench run`` flag of each :class:`RunConfig` field whose flag is not ``--`` + the field
#: name with dashes (list fields take the flag once per value, hence the singular). The one source
#: of flag names for every message about a field (option errors, resume conflicts); a test checks
#: each field's name against the run command's options.
FLAG_NAMES = {"include_paths": "--include-path", "override_tasks": "--override-task"}


def flag_name(field: str) -> str:
    """The command-line spelling of :class:`RunConfig` field ``field`` (``include_paths`` -> ``--include-path``)."""
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


class RunConfig(BaseModel):
    """Everything that defines a run; stored in run.json and reused by ``--resume``.

    ``None`` means "not set by the user": ``split``, ``max_new_tokens`` then come from each
    task, ``top_p``/``top_k``/``repetition_penalty`` from the checkpoint's generation_config and
    ``threads`` from the cores available (:func:`pvm_bench.threads.resolve_threads`).
    """

    model: str
    pvm: str | None = None
    tasks: list[str]
    variants: list[str] = Field(default_factory=list)
    split: str | None = None
    limit: PositiveInt | None = None
    data_dir: str | None = None
    #: Image paths in --data-dir tables may point outside it (pvm_bench.data.imageroot); off by default.
    allow_outside_data: bool = False
    include_paths: list[str] = Field(default_factory=list)
    #: Task names an include path or entry point may redefine (``--override-task``); otherwise refused.
    override_tasks: list[str] = Field(default_factory=list)
    out: str = "reports"
    run_id: str | None = None
    batch_size: PositiveInt = 4
    max_new_tokens: PositiveInt | None = None
    #: 0 = greedy; a sampling temperature below :data:`MIN_TEMPERATURE` is refused (logits / T overflow).
    temperature: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    #: Sampling settings; None = the checkpoint's generation_config (else no filtering).
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    top_k: PositiveInt | None = None
    repetition_penalty: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    #: Local judge model (dir or hub id) for tasks that can use one (MathVista/MathVerse extraction).
    judge: str | None = None
    #: Input protocol preset: ``default`` (no system turn, the processor's image sizes) or
    #: ``lmms-eval`` (the family's lmms-eval 0.7.3 wrapper settings; pvm_bench.models.protocol).
    protocol: str = "default"
    #: System turn for every request (None: the protocol's; "": none even if the protocol has one).
    system_prompt: str | None = None
    #: Image pixel-count bounds for dynamic-resolution families (None: the protocol's, else the processor's).
    min_pixels: PositiveInt | None = None
    max_pixels: PositiveInt | None = None
    #: torch intra-op threads (None: chosen from the cores available to the process).
    threads: PositiveInt | None = None
    repeats: PositiveInt = 1
    seed: int = 0
    probes: list[str] = Field(default_factory=lambda: list(DEFAULT_PROBES))
    per_head: bool = False
    #: Record visual mass per image (attention.parquet gains ``visual_mass_img{i}`` columns, one per image).
    per_image: bool = False
    #: ``--maps``: spatial attention maps (RUN/maps/, pvm_bench.runner.maps) for the first N samples of each
    #: task (an int; 0 = none, the probe is not installed) or for these sample ids (a list).
    maps: Annotated[int, Field(ge=0)] | list[str] = 2
    #: ``--ablate-after 0,16,64``: add ``<variant>+blind:after=K`` for every variant and K.
    ablate_after: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    dtype: str = "auto"
    device: str = "auto"
    device_map: str | None = None
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False
    report: bool = True

    def source(self, field: str) -> str:
        """Where ``field``'s value comes from: ``"user"`` (given), the protocol's name (filled in by
        ``--protocol pvm-paper``, :func:`pvm_bench.paper_table.protocol_run_defaults`) or ``"default"``.

        Read from the fields given at construction, so a config reloaded from run.json (every field
        given) says ``"user"``: a resume keeps the sources its first part recorded.
        """
        if field not in self.model_fields_set:
            return "default"
        filled = protocol_run_defaults({"protocol": self.protocol})
        if field != "protocol" and field in filled and filled[field] == getattr(self, field):
            return self.protocol
        return "user"

    @model_validator(mode="before")
    @classmethod
    def _protocol_defaults(cls, data: Any) -> Any:
        """``protocol="pvm-paper"`` implies the paper's temperature 0.7 and 4 repeats unless given
        (:func:`pvm_bench.paper_table.protocol_run_defaults`), for the library API as for the CLI."""
        return protocol_run_defaults(data) if isinstance(data, dict) else data

    @field_validator("run_id")
    @classmethod
    def _plain_run_id(cls, value: str | None) -> str | None:
        if value is not None and (not RUN_ID_PATTERN.fullmatch(value) or value in (".", "..")):
            raise ValueError(
                "must be a plain directory name (letters, digits, '.', '_', '-'; no '/', not hidden, "
                "at most 128 characters)"
            )
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_zero_or_usable(cls, value: float) -> float:
        if 0.0 < value < MIN_TEMPERATURE:
            raise ValueError(
                f"must be 0 (greedy decoding) or at least {MIN_TEMPERATURE:g} (got {value:g}: dividing the logits by "
                "it "
                "overflows); use 0 for greedy"
            )
        return value

    @field_validator("repetition_penalty")
    @classmethod
    def _penalty_usable(cls, value: float | None) -> float | None:
        if value is not None and value < MIN_TEMPERATURE:  # seen tokens' logits are divided by it
            raise ValueError(
                f"must be at least {MIN_TEMPERATURE:g} (got {value:g}: dividing the logits by it overflows); "
                "1 = no penalty"
            )
        return value

    @field_validator(*CHOICES)
    @classmethod
    def _known_choice(cls, value: str | None, info: ValidationInfo) -> str | None:
        choices = CHOICES[info.field_name or ""]
        if value is not None and value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.fullmatch(value):
            raise ValueError(f"must be one of {DEVICE_HELP}")
        return value

    @field_validator("tasks", "variants", "probes", "include_paths", "override_tasks")
    @classmethod
    def _no_blank_names(cls, value: list[str]) -> list[str]:
        return [v.strip() for v in value if v.strip()]

    @field_validator("max_pixels")
    @classmethod
    def _pixel_order(cls, value: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min_pixels")
        if value is not None and low is not None and value < low:
            raise ValueError(f"must be >= --min-pixels ({low})")
        return value

    def resolved_variants(self) -> list[str]:
        names = list(self.variants) if self.variants else (["base", "pvm"] if self.pvm else ["base"])
        # pvm_bench.fixes.blind.ablated_name spells these; kept literal here (no torch import).
        # A variant already blinded has a ``blind`` part (``base+blind:after=8``); a fix merely named like it does not.
        blinded = {v for v in names if any(part.split(":")[0].strip() == "blind" for part in v.split("+"))}
        ablated = [f"{v}+blind:after={k}" for v in names if v not in blinded for k in sorted(set(self.ablate_after))]
        return names + [a for a in ablated if a not in names]


__all__ = ["ATTN_CHOICES", "DEFAULT_PROBES", "DEVICE_MAP_CHOICES", "DTYPE_CHOICES", "PROTOCOL_CHOICES", "RunConfig"]
