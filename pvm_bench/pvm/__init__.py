"""Persistent Visual Memory (PVM): the paper-faithful branch, attached to any supported VLM.

Public API::

    from pvm_bench.pvm import attach_pvm, attach_from_path, save_adapter, export_reference
    handle = attach_pvm(lm, layers=None, hidden_size=512)   # lm.pvm is handle
    with handle.disabled(): ...                             # exactly the base model
    handle.state_dict(); handle.gates()
"""

from __future__ import annotations

from pvm_bench.pvm.attach import (
    DEFAULT_PVM_HIDDEN_SIZE,
    PVMAttachError,
    PVMHandle,
    attach_pvm,
    resolve_layers,
)
from pvm_bench.pvm.block import PVMBlock, PVMShape
from pvm_bench.pvm.io import PVMFormatError, detect_format, export_reference, load_pvm, save_adapter

attach_from_path = load_pvm
"""Attach PVM from an adapter directory or a full reference-format checkpoint (what
``pvm_bench.load_model(..., pvm=path)`` calls); see :func:`pvm_bench.pvm.io.load_pvm`."""

__all__ = [
    "DEFAULT_PVM_HIDDEN_SIZE",
    "PVMAttachError",
    "PVMBlock",
    "PVMFormatError",
    "PVMHandle",
    "PVMShape",
    "attach_from_path",
    "attach_pvm",
    "detect_format",
    "export_reference",
    "load_pvm",
    "resolve_layers",
    "save_adapter",
]
