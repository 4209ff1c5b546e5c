"""Loading a VLM through AutoModelForImageTextToText / AutoProcessor, described by the family table."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pvm_bench.errors import UserError, load_guard, one_line
from pvm_bench.filehash import IGNORED_MODEL_FILES, IGNORED_MODEL_SUFFIXES, SCHEME, files_fingerprint, tree_files
from pvm_bench.models.families import FamilySpec, family_for, first_config_value, resolve_path
from pvm_bench.runner.guard import hash_file_ends


class ModelLoadError(UserError, RuntimeError):
    """A model cannot be loaded; the message names the source and the fix."""


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """``auto`` means bfloat16 on GPUs that support it and float32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ModelLoadError(f"unknown dtype '{dtype}'; use one of auto, {', '.join(DTYPES)}") from None


def resolve_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def is_local_source(source: str) -> bool:
    """A source is a directory if it exists or is spelled like a path rather than ``org/name``."""
    return os.path.exists(source) or source.startswith((".", "/", "~")) or source.count("/") > 1


def model_fingerprint(source: str, local_dir: Path | None) -> str:
    """A cheap, stable identity of the weights.

    Local dirs: sha256 over config.json and, per weight file, its name, size and first/last
    MiB (hashing every byte of a 16 GB checkpoint would dominate short runs). Hub ids: the
    resolved commit hash of the cached snapshot when available, else the id itself.
    """
    h = hashlib.sha256()
    if local_dir is None:
        h.update(source.encode())
        return h.hexdigest()[:16]
    for path in sorted(local_dir.iterdir()):
        if path.name == "config.json" or path.suffix == ".json" and "index" in path.name:
            h.update(path.read_bytes())
        elif path.suffix in (".safetensors", ".bin"):
            hash_file_ends(h, path, path.name)
    return h.hexdigest()[:16]


def model_content(local_dir: Path) -> tuple[str, dict[str, str]]:
    """``(fingerprint, {file: digest})`` over every file of a local model directory, each hashed
    whole, except those that shape neither inputs nor weights (:data:`pvm_bench.filehash.IGNORED_MODEL_FILES`,
    formats never loaded: :data:`~pvm_bench.filehash.IGNORED_MODEL_SUFFIXES`):
    a changed chat template, tokenizer or preprocessor_config.json (image mean/std) is a changed model.

    :func:`model_fingerprint` stays the model's cheap identity (adapters record it as their base);
    this is the complete one a resume compares.
    """
    return files_fingerprint(tree_files(local_dir, IGNORED_MODEL_FILES, IGNORED_MODEL_SUFFIXES))


@dataclass
class LoadedModel:
    """A transformers VLM plus what pvm-bench knows about its family.

    ``hf_model`` is the ordinary transformers model (PVM attached when loaded with ``pvm=``).
    Generating is :func:`pvm_bench.models.generation.generate` (``generate(lm, requests)``), which
    imports this module, not the other way round: a ``LoadedModel.generate`` method made the two
    modules import each other.
    """

    source: str
    hf_model: nn.Module
    processor: Any
    spec: FamilySpec
    fingerprint: str
    dtype: torch.dtype
    device: torch.device
    pvm: Any = None  # pvm_bench.pvm handle when an adapter is attached
    #: Local dirs: ``(fingerprint, {file: digest})`` of every file that shapes the inputs or the weights,
    #: hashed whole (:func:`model_content`); what resume compares. None for hub ids.
    content: tuple[str, dict[str, str]] | None = None

    @property
    def config(self) -> Any:
        return self.hf_model.config

    @property
    def text_config(self) -> Any:
        return self.hf_model.config.get_text_config()

    @property
    def language_model(self) -> nn.Module:
        return resolve_path(self.hf_model, self.spec.language_model_path)

    @property
    def layers(self) -> nn.ModuleList:
        return resolve_path(self.hf_model, self.spec.layers_path)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def image_token_id(self) -> int:
        value = first_config_value(self.config, self.spec.image_token_fields)
        if value is None:
            raise ModelLoadError(f"{self.source}: config has none of {self.spec.image_token_fields}")
        return value

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def suppress_token_ids(self) -> list[int]:
        """Placeholder ids (image/video/vision markers) a model must never generate."""
        ids = {getattr(self.config, f, None) for f in self.spec.placeholder_token_fields}
        return sorted(int(i) for i in ids if i is not None)

    def info(self) -> dict[str, Any]:
        tc = self.text_config
        return {
            "source": self.source,
            "family": self.spec.model_type,
            "fingerprint": self.fingerprint,
            **({"content_fingerprint": self.content[0], "fingerprint_scheme": SCHEME, "files": dict(self.content[1])}
               if self.content else {}),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "num_layers": self.num_layers,
            "hidden_size": tc.hidden_size,
            "n_params": sum(p.numel() for p in self.hf_model.parameters()),
            "attn_implementation": self.config._attn_implementation,
        }


def load_model(
    source: str,
    *,
    dtype: str | torch.dtype | None = "auto",
    device: str | None = "auto",
    device_map: str | dict[str, Any] | None = None,
    attn_implementation: str = "sdpa",
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> LoadedModel:
    """Load ``source`` (hub id or local directory) for evaluation, as transformers defines it.

    This layer knows nothing of PVM or probes: :func:`pvm_bench.load_model` composes the model
    with a PVM adapter/checkpoint (``pvm=``) on top of it.

    Args:
        source: hub id (``Qwen/Qwen3-VL-4B-Instruct``) or a model directory.
        dtype: ``auto`` (bf16 on capable GPUs, else fp32), ``float32``, ``bfloat16``, ``float16``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...; ignored when ``device_map`` is set.
        device_map: e.g. ``"auto"`` to shard a large model over the visible GPUs (accelerate).
        attn_implementation: transformers attention backend for the base model (``sdpa``,
            ``eager``, ``flash_attention_2``); probes swap in their own streaming function.
        trust_remote_code: only when the user asks for it.

    Raises:
        ModelLoadError: missing directory, unknown hub id, hub unreachable, unsupported family.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    from pvm_bench.models.processor import load_processor

    source = str(source)
    if not source.strip():
        raise ModelLoadError("no model given (the model name is empty); pass a hub id or a local model dir")
    local_dir: Path | None = None
    if is_local_source(source):
        local_dir = check_model_dir(source)
        source = str(local_dir)
    hub_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision:
        hub_kwargs["revision"] = revision
    # A local directory's problems are the directory's, never the hub's: read it under load_guard.
    guard = (lambda: load_guard("model", source, "re-download or re-export the model directory")) if local_dir else None
    try:
        with guard() if guard else contextlib.nullcontext():
            try:
                config = AutoConfig.from_pretrained(source, **hub_kwargs)
            except ValueError as exc:  # a readable config transformers does not support (unknown model_type)
                raise ModelLoadError(
                    f"{source}: cannot read config ({one_line(str(exc), 200)}); upgrade transformers or check the model"
                ) from exc
    except UserError:
        raise
    except OSError as exc:
        raise _hub_error(source, exc) from exc
    try:
        spec = family_for(config.model_type)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    load_kwargs: dict[str, Any] = {"dtype": torch_dtype, "attn_implementation": attn_implementation, **hub_kwargs}
    if device_map is not None:
        load_kwargs["device_map"] = device_map
    try:
        with guard() if guard else contextlib.nullcontext():
            hf_model = AutoModelForImageTextToText.from_pretrained(source, **load_kwargs)
            processor = load_processor(source, spec, **hub_kwargs)
    except UserError:
        raise
    except OSError as exc:
        raise _hub_error(source, exc) from exc
    if device_map is None:
        hf_model.to(dev)
    hf_model.eval()
    hf_model.requires_grad_(False)
    lm = LoadedModel(
        source=source,
        hf_model=hf_model,
        processor=processor,
        spec=spec,
        fingerprint=model_fingerprint(source, local_dir),
        # After loading: the weights are in the page cache by now, so hashing them whole is cheap.
        content=model_content(local_dir) if local_dir else None,
        dtype=torch_dtype,
        device=next(hf_model.parameters()).device,
    )
    return lm


def check_model_dir(source: str) -> Path:
    """The model directory ``source`` after cheap checks that name what is wrong with it.

    Refuses a missing path, a file, a directory without a readable ``config.json``, and one
    without safetensors weights (pickled ``.bin`` checkpoints are never loaded).
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model directory '{source}' does not exist; pass an existing dir or a hub id")
    if not path.is_dir():
        raise ModelLoadError(
            f"'{source}' is a file, not a model directory; pass the directory holding config.json and the weights"
        )
    config = path / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"'{source}' has no config.json; it is not a transformers model directory")
    with load_guard("model config", config, "restore the model's config.json (re-download or re-export the model)"):
        parsed = json.loads(config.read_text(encoding="utf-8"))
    if not isinstance(parsed, dict):
        raise ModelLoadError(
            f"model config {config} is a JSON {type(parsed).__name__}, not an object; restore the model's config.json"
        )
    for other in sorted(path.glob("*.json")):  # tokenizer/processor/generation configs: small, named if broken
        if other.name != "config.json":
            with load_guard("model file", other, "re-download or re-export the model"):
                json.loads(other.read_text(encoding="utf-8"))
    index = path / "model.safetensors.index.json"
    if index.is_file():
        with load_guard("weight index", index, "re-download or re-export the model"):
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise ModelLoadError(
                f"'{source}' is missing weight shard(s) {', '.join(missing[:3])} listed in {index.name}; "
                "the download is incomplete: re-download the model"
            )
    if not any(path.glob("*.safetensors")):
        pickled = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt*"))
        if pickled:
            raise ModelLoadError(
                f"'{source}' has only pickled weights ({', '.join(pickled[:3])}), which pvm-bench never loads; "
                "convert them to safetensors (save_pretrained(..., safe_serialization=True))"
            )
        raise ModelLoadError(f"'{source}' has no model weights (*.safetensors); re-download or re-export the model")
    from safetensors import safe_open

    for file in sorted(path.glob("*.safetensors")):  # headers only: names a truncated/corrupt shard cheaply
        with (
            load_guard("model weights", file, "re-download or re-export the model"),
            safe_open(str(file), framework="pt"),
        ):
            pass
    return path


def _hub_error(source: str, exc: OSError) -> ModelLoadError:
    text = str(exc)
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or "couldn't connect" in text.lower()
    if offline:
        return ModelLoadError(
            f"cannot reach the Hugging Face hub for '{source}' and it is not in the local cache; "
            f"download it on a connected machine (`hf download {source}`) or pass a local model dir"
        )
    if "is not a local folder and is not a valid model identifier" in text or "404" in text:
        return ModelLoadError(f"'{source}' is neither a local directory nor a model on the Hugging Face hub")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ModelLoadError(f"cannot load '{source}': {first}")
