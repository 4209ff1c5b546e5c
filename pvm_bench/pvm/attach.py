"""Attaching PVM blocks to a loaded transformers VLM with hooks (transformers is not edited).

The blocks are registered as ``<layer>.pvm_block`` submodules, so ``hf_model.state_dict()``
and ``save_pretrained`` carry them under the reference names. They are spliced into the
decoder layers through the instrument's ``layers.{i}.ffn_in`` / ``layers.{i}.ffn_out`` sites
(see :mod:`pvm_bench.pvm.branch`), and read the visual memory ``V`` -- the ``inputs_embeds`` at
image positions, captured once per forward by the instrument
(:class:`~pvm_bench.instrument.state.ForwardState`) -- so PVM, the probes and the training-free
fixes share one capture. A call that contains image tokens sets a new memory; a decode step
reuses it; a prompt without images has an empty memory (the branch adds nothing). Samples with
different numbers of image tokens get a padded memory plus a mask.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pvm_bench.errors import UserError
from pvm_bench.instrument import SiteError, instrument_for
from pvm_bench.models.families import FamilySpec, family_for, first_config_value, resolve_path
from pvm_bench.pvm.block import PVMBlock, PVMShape
from pvm_bench.pvm.branch import BranchState, Observer, splice

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

DEFAULT_PVM_HIDDEN_SIZE = 512
DEFAULT_FRACTIONS: tuple[float, ...] = (0.25, 0.5, 0.75)
BLOCK_NAME = "pvm_block"



class PVMAttachError(UserError, RuntimeError):
    """PVM cannot be attached to this model; the message names the module and the fix."""


def resolve_layers(
    layers: Sequence[int | float | str] | str | None,
    num_layers: int,
    hidden_size: int,
    family: FamilySpec | None = None,
) -> list[int]:
    """Turn a layer selection into sorted absolute decoder-layer indices.

    ``None`` means the paper's layers for the family and hidden size (Qwen3-VL 8B: 8, 16, 24;
    4B: 5, 11, 17), else depth fractions 1/4, 1/2, 3/4. Integers are absolute indices
    (negative count from the end); non-integral numbers in [0, 1) are fractions of depth
    (``int(f * num_layers)``). A comma-separated string is accepted (CLI).
    """
    if isinstance(layers, str):
        layers = [p.strip() for p in layers.split(",") if p.strip()]
    if layers is None or len(layers) == 0:
        if family is not None and hidden_size in family.paper_pvm_layers:
            paper = list(family.paper_pvm_layers[hidden_size])
            if max(paper) < num_layers:
                return paper
        layers = list(DEFAULT_FRACTIONS)
    out: set[int] = set()
    for raw in layers:
        value: int | float
        if isinstance(raw, str):
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        else:
            value = raw
        if isinstance(value, float) and not value.is_integer():
            if not 0.0 <= value < 1.0:
                raise PVMAttachError(f"layer fraction {value} must be in [0, 1)")
            idx = min(int(value * num_layers), num_layers - 1)
        else:
            idx = int(value)
            if idx < 0:
                idx += num_layers
            if not 0 <= idx < num_layers:
                raise PVMAttachError(f"layer {raw} is out of range for a model with {num_layers} decoder layers")
        out.add(idx)
    return sorted(out)


def _check_sites(inst: Any, idx: int) -> None:
    """Fail before mutating anything when layer ``idx`` has no FFN pre-norm / FFN output pair."""
    try:
        inst.sites.module(f"layers.{idx}.ffn_in")
        inst.sites.module(f"layers.{idx}.ffn_out")
    except SiteError as exc:
        raise PVMAttachError(
            f"{exc}. PVM needs a pre-norm layer with a separate FFN (ffn_input_modules/ffn_output_modules "
            "in the family table)"
        ) from None


class PVMHandle:
    """PVM attached to one transformers model (``LoadedModel.pvm``).

    Attributes:
        layers: absolute decoder-layer indices carrying a block.
        hidden_size: the latent size d (``pvm_hidden_size``).
        shape: the full :class:`PVMShape`.
        blocks: layer index -> :class:`PVMBlock` (also registered as ``<layer>.pvm_block``).
        prefix: state-dict prefix of the decoder layers (``model.language_model.layers``).
    """

    def __init__(
        self,
        hf_model: nn.Module,
        family: FamilySpec,
        shape: PVMShape,
        layers: list[int],
        image_token_id: int,
    ) -> None:
        self.hf_model = hf_model
        self.family = family
        self.shape = shape
        self.layers = list(layers)
        self.hidden_size = shape.pvm_hidden_size
        self.image_token_id = int(image_token_id)
        self.prefix = family.layers_path
        self.blocks: dict[int, PVMBlock] = {}
        self.base_model_id: str | None = None
        self.base_fingerprint: str | None = None
        self._state = BranchState()
        self._hooks: list[Any] = []
        self._observers: list[Observer] = []
        self._release: Callable[[], None] | None = None

    # ----------------------------------------------------------------- public API
    @property
    def enabled(self) -> bool:
        """False makes every branch return nothing: the model is exactly the base model."""
        return self._state.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._state.enabled = bool(value)

    @contextlib.contextmanager
    def disabled(self) -> Iterator[PVMHandle]:
        """Run the base variant in the same process (bit-identical to the model without PVM)."""
        previous = self._state.enabled
        self._state.enabled = False
        try:
            yield self
        finally:
            self._state.enabled = previous

    def key(self, layer: int, name: str) -> str:
        """Reference state-dict name of parameter ``name`` of the block at ``layer``."""
        return f"{self.prefix}.{layer}.{BLOCK_NAME}.{name}"

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Only the PVM tensors, under the reference names (``model.language_model.layers.{i}.pvm_block.*``)."""
        out: dict[str, torch.Tensor] = {}
        for layer, block in self.blocks.items():
            for name, tensor in block.state_dict().items():
                out[self.key(layer, name)] = tensor
        return out

    def load_state_dict(self, tensors: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Copy reference-named tensors into the blocks (all must be present, shapes must match).

        Raises:
            PVMAttachError: a missing, unexpected or mis-shaped tensor (named in the message).
        """
        expected = self.state_dict()
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
            if unexpected:
                parts.append(f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
            raise PVMAttachError(
                f"{source}: PVM tensors do not match the attached layers {self.layers}: {'; '.join(parts)}. "
                "Attach with the layers recorded in the adapter/checkpoint config."
            )
        with torch.no_grad():
            for name, target in expected.items():
                value = tensors[name]
                if value.shape != target.shape:
                    # The reference may store the scalar gate as a 0-d tensor.
                    if value.numel() == target.numel() == 1:
                        value = value.reshape(target.shape)
                    else:
                        raise PVMAttachError(
                            f"{source}: tensor '{name}' has shape {tuple(value.shape)} but this model needs "
                            f"{tuple(target.shape)} (pvm_hidden_size {self.hidden_size}, base hidden size "
                            f"{self.shape.hidden_size}); the adapter was made for a different base model or "
                            "PVM size — load it on its own base model"
                        )
                target.copy_(value.to(dtype=target.dtype, device=target.device))
        self.reset_memory()

    def gates(self) -> dict[int, float]:
        """Layer -> current ``gate_alpha`` value."""
        return {layer: float(block.gate_alpha.detach().float().reshape(-1)[0]) for layer, block in self.blocks.items()}

    def parameters(self) -> list[nn.Parameter]:
        """All PVM parameters (what training updates)."""
        return [p for block in self.blocks.values() for p in block.parameters()]

    def named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """PVM parameters under their reference names."""
        return [(self.key(layer, n), p) for layer, block in self.blocks.items() for n, p in block.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_gate(self, value: float) -> None:
        """Set every block's gate (e.g. to benchmark a non-zero branch)."""
        with torch.no_grad():
            for block in self.blocks.values():
                block.gate_alpha.fill_(value)
        self._state.invalidate()

    def add_observer(self, fn: Observer) -> Callable[[], None]:
        """Call ``fn(layer, h, out)`` at every branch evaluation; returns a remover."""
        self._observers.append(fn)

        def remove() -> None:
            if fn in self._observers:
                self._observers.remove(fn)

        return remove

    def reset_memory(self) -> None:
        """Forget the cached projections of the memory (call after changing weights in place)."""
        self._state.invalidate()

    def remove(self) -> None:
        """Detach: remove hooks, blocks and the config fields (the model is the base model again)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        if self._release is not None:
            self._release()
            self._release = None
        layers = resolve_path(self.hf_model, self.family.layers_path)
        for idx in self.blocks:
            if hasattr(layers[idx], BLOCK_NAME):
                delattr(layers[idx], BLOCK_NAME)
        self.blocks.clear()
        tc = self.hf_model.config.get_text_config()
        for name in ("pvm_layers", "pvm_hidden_size"):
            if hasattr(tc, name):
                delattr(tc, name)
        self.reset_memory()

    def config_fields(self) -> dict[str, Any]:
        """The reference config fields (``text_config.pvm_layers`` / ``pvm_hidden_size``)."""
        return {"pvm_layers": list(self.layers), "pvm_hidden_size": self.hidden_size}

    # ---------------------------------------------------------------- internals
    def _install(self) -> None:
        inst = instrument_for(self.hf_model, self.family)
        self._release = inst.acquire()
        self._hooks.extend(splice(inst, self.blocks, self._state, self._observers))


def _family_of(hf_model: nn.Module) -> FamilySpec:
    try:
        return family_for(hf_model.config.model_type)
    except ValueError as exc:
        raise PVMAttachError(str(exc)) from None


def attach_pvm(
    model: LoadedModel | nn.Module,
    layers: Sequence[int | float | str] | str | None = None,
    hidden_size: int = DEFAULT_PVM_HIDDEN_SIZE,
    *,
    seed: int = 0,
    init_std: float | None = None,
    gate: float = 0.0,
    intermediate_size: int | None = None,
) -> PVMHandle:
    """Attach freshly initialised PVM blocks and return the handle (also set as ``model.pvm``).

    Args:
        model: a :class:`~pvm_bench.models.loading.LoadedModel` or a transformers VLM of a
            family in the model table.
        layers: absolute indices / depth fractions; None = paper layers or 1/4, 1/2, 3/4.
        hidden_size: latent size d (must be a multiple of the model's head_dim).
        seed: seeds the block initialisation (independent of the global RNG).
        init_std: std of the normal init (default: the text config's ``initializer_range``).
        gate: initial ``gate_alpha`` (0 = the model is unchanged).
        intermediate_size: override the latent SwiGLU width (default ``int(d * I / H)``).

    Any PVM already attached is removed first. Blocks take the model's dtype and the device of
    their decoder layer.
    """
    lm = model if hasattr(model, "hf_model") else None
    hf_model: nn.Module = lm.hf_model if lm is not None else model  # type: ignore[union-attr]
    family = lm.spec if lm is not None else _family_of(hf_model)
    old = getattr(lm, "pvm", None) if lm is not None else getattr(hf_model, "_pvm_handle", None)
    if old is not None:
        old.remove()
    tc = hf_model.config.get_text_config()
    try:
        shape = PVMShape.from_text_config(tc, hidden_size)
    except ValueError as exc:
        raise PVMAttachError(str(exc)) from None
    if intermediate_size is not None:
        shape = PVMShape(**{**shape.to_dict(), "intermediate_size": int(intermediate_size)})
    decoder_layers = resolve_path(hf_model, family.layers_path)
    chosen = resolve_layers(layers, len(decoder_layers), shape.hidden_size, family)
    image_token_id = first_config_value(hf_model.config, family.image_token_fields)
    if image_token_id is None:
        raise PVMAttachError(f"config has none of {family.image_token_fields}; cannot find image positions")
    handle = PVMHandle(hf_model, family, shape, chosen, image_token_id)
    std = float(init_std if init_std is not None else getattr(tc, "initializer_range", 0.02) or 0.02)
    gen = torch.Generator().manual_seed(int(seed))
    ref_param = next(hf_model.parameters())
    inst = instrument_for(hf_model, family)
    for idx in chosen:
        _check_sites(inst, idx)  # fail before mutating anything
    for idx in chosen:
        layer = decoder_layers[idx]
        block = PVMBlock(shape)
        block.init_weights(std, generator=gen)
        if gate:
            with torch.no_grad():
                block.gate_alpha.fill_(gate)
        try:
            device = next(layer.parameters()).device
        except StopIteration:
            device = ref_param.device
        block.to(device=device, dtype=ref_param.dtype)
        layer.add_module(BLOCK_NAME, block)
        handle.blocks[idx] = block
    handle._install()
    for name, value in handle.config_fields().items():
        setattr(tc, name, value)
    if lm is not None:
        handle.base_model_id = lm.source
        handle.base_fingerprint = lm.fingerprint
        lm.pvm = handle
    hf_model._pvm_handle = handle  # type: ignore[attr-defined]
    return handle
