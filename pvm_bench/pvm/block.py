"""The PVM block: a bottleneck cross-attention branch over the visual memory (DESIGN.md contract).

For a decoder layer with residual ``h`` (after self-attention) and visual memory ``V``::

    s   = text_reducer(h)                                  # Linear(H -> d), no bias
    v   = vision_reducer(V)                                # Linear(H -> d), no bias
    m   = cross_attn(input_norm(s), v)                     # q from text, k/v from vision, no RoPE
    m   = m + mlp(post_attn_norm(m))                       # SwiGLU in d
    out = gate_alpha * rms_norm_no_weight(output_expander(m))
    out = out * (1 - is_image_token)

Submodule and parameter names are the reference checkpoint names and must not change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PVMShape:
    """Every size a PVM block needs; derived from the base model's text config.

    Attributes:
        hidden_size: H, the decoder's hidden size.
        pvm_hidden_size: d, the latent size (512 in the paper).
        intermediate_size: the latent SwiGLU width, ``int(d * I / H)``.
        num_heads: ``d // head_dim``.
        num_kv_heads: ``max(1, num_heads // (q_heads // kv_heads))`` of the base model.
        head_dim: the base model's attention head_dim.
        attention_bias: bias on q/k/v/o (the base model's ``attention_bias``).
        rms_norm_eps: eps of every RMSNorm in the block.
    """

    hidden_size: int
    pvm_hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    attention_bias: bool = False
    rms_norm_eps: float = 1e-6

    @classmethod
    def from_text_config(cls, text_config: Any, pvm_hidden_size: int = 512) -> PVMShape:
        """Derive the block shape from a transformers text config (Qwen3-VL, Qwen2, Llama...)."""
        hidden = int(text_config.hidden_size)
        q_heads = int(text_config.num_attention_heads)
        kv_heads = int(getattr(text_config, "num_key_value_heads", None) or q_heads)
        head_dim = getattr(text_config, "head_dim", None) or hidden // q_heads
        head_dim = int(head_dim)
        d = int(pvm_hidden_size)
        if d % head_dim != 0:
            raise ValueError(
                f"pvm_hidden_size {d} is not a multiple of the model's head_dim {head_dim}; "
                f"use a multiple of {head_dim} (e.g. {max(1, round(d / head_dim)) * head_dim})"
            )
        heads = d // head_dim
        kv = max(1, heads // max(1, q_heads // kv_heads))
        while heads % kv:  # GQA needs heads divisible by kv heads; only odd custom sizes get here
            kv -= 1
        inter = int(d * int(text_config.intermediate_size) / hidden)
        return cls(
            hidden_size=hidden,
            pvm_hidden_size=d,
            intermediate_size=inter,
            num_heads=heads,
            num_kv_heads=kv,
            head_dim=head_dim,
            attention_bias=bool(getattr(text_config, "attention_bias", False)),
            rms_norm_eps=float(getattr(text_config, "rms_norm_eps", 1e-6) or 1e-6),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PVMRMSNorm(nn.Module):
    """RMSNorm with a learned ``weight`` (computed in float32, like Qwen's RMSNorm)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rms_norm_no_weight(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMS normalisation without a learned scale (float32 inside, input dtype out)."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


class PVMCrossAttention(nn.Module):
    """Multi-head cross-attention, queries from text and keys/values from vision; no RoPE."""

    def __init__(self, shape: PVMShape) -> None:
        super().__init__()
        d, hd = shape.pvm_hidden_size, shape.head_dim
        self.num_heads = shape.num_heads
        self.num_kv_heads = shape.num_kv_heads
        self.head_dim = hd
        self.scaling = hd**-0.5
        self.q_proj = nn.Linear(d, shape.num_heads * hd, bias=shape.attention_bias)
        self.k_proj = nn.Linear(d, shape.num_kv_heads * hd, bias=shape.attention_bias)
        self.v_proj = nn.Linear(d, shape.num_kv_heads * hd, bias=shape.attention_bias)
        self.o_proj = nn.Linear(shape.num_heads * hd, d, bias=shape.attention_bias)
        self.q_norm = PVMRMSNorm(hd, shape.rms_norm_eps)
        self.k_norm = PVMRMSNorm(hd, shape.rms_norm_eps)

    def project_kv(self, v_lat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``[B, heads, N, head_dim]`` (kv heads already repeated for GQA)."""
        b, n, _ = v_lat.shape
        k = self.k_norm(self.k_proj(v_lat).view(b, n, self.num_kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(v_lat).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        rep = self.num_heads // self.num_kv_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        return k, v

    def forward(
        self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, memory_mask: torch.Tensor
    ) -> torch.Tensor:
        """``x`` [B, L, d] attends to ``k``/``v`` [B, heads, N, hd]; ``memory_mask`` [B, N] True = valid."""
        b, L, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, L, self.num_heads, self.head_dim)).transpose(1, 2)
        # Boolean mask (no dtype to disagree with q under autocast). A sample without any image
        # would have an all-False row (NaN softmax): let it attend to its zero padding and zero
        # the result, so a sample without images gets no PVM contribution.
        has_memory = memory_mask.any(-1, keepdim=True)
        allowed = (memory_mask | ~has_memory)[:, None, None, :]
        attn = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=allowed, scale=self.scaling)
        attn = attn * has_memory.to(attn.dtype)[:, :, None, None]
        return self.o_proj(attn.transpose(1, 2).reshape(b, L, self.num_heads * self.head_dim))


class PVMMLP(nn.Module):
    """SwiGLU: ``down(silu(gate(x)) * up(x))`` in the latent size."""

    def __init__(self, shape: PVMShape) -> None:
        super().__init__()
        d, i = shape.pvm_hidden_size, shape.intermediate_size
        self.gate_proj = nn.Linear(d, i, bias=False)
        self.up_proj = nn.Linear(d, i, bias=False)
        self.down_proj = nn.Linear(i, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class PVMBlock(nn.Module):
    """One PVM branch; attached as ``<decoder layer>.pvm_block`` (reference parameter names).

    ``gate_alpha`` is a one-element parameter; the reference may store it as a 0-d tensor,
    which :func:`pvm_bench.pvm.io` reshapes on load.
    """

    def __init__(self, shape: PVMShape) -> None:
        super().__init__()
        self.shape = shape
        H, d = shape.hidden_size, shape.pvm_hidden_size
        self.text_reducer = nn.Linear(H, d, bias=False)
        self.vision_reducer = nn.Linear(H, d, bias=False)
        self.output_expander = nn.Linear(d, H, bias=False)
        self.input_norm = PVMRMSNorm(d, shape.rms_norm_eps)
        self.post_attn_norm = PVMRMSNorm(d, shape.rms_norm_eps)
        self.cross_attn = PVMCrossAttention(shape)
        self.mlp = PVMMLP(shape)
        self.gate_alpha = nn.Parameter(torch.zeros(1))

    @torch.no_grad()
    def init_weights(self, std: float = 0.02, generator: torch.Generator | None = None) -> None:
        """Initialise for training: normal(std) linears, unit norms, zero gate.

        Unlike the reference (zero ``gate_alpha`` AND zero ``output_expander``, which leaves
        both without gradient forever), ``output_expander`` gets a small random init: the
        model is still unchanged at step 0 (gate 0) and the gate receives a gradient.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                w = torch.empty(module.weight.shape, dtype=torch.float32).normal_(0.0, std, generator=generator)
                module.weight.copy_(w)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, PVMRMSNorm):
                module.weight.fill_(1.0)
        self.gate_alpha.zero_()

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project the visual memory ``[B, N, H]`` into cross-attention keys/values (cacheable)."""
        return self.cross_attn.project_kv(self.vision_reducer(memory))

    def forward(
        self,
        h: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor],
        memory_mask: torch.Tensor,
        image_query_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The branch output ``out`` [B, L, H] to add to the layer output.

        Args:
            h: residual after self-attention, [B, L, H].
            kv: :meth:`memory_kv` of the visual memory.
            memory_mask: [B, N] bool, True on real (non-padding) memory slots.
            image_query_mask: [B, L] bool, True where the query token is an image token
                (the branch is silenced there); None when no query is an image token.
        """
        s = self.text_reducer(h)
        m = self.cross_attn(self.input_norm(s), kv[0], kv[1], memory_mask)
        m = m + self.mlp(self.post_attn_norm(m))
        out = self.gate_alpha.to(h.dtype) * rms_norm_no_weight(self.output_expander(m), self.shape.rms_norm_eps)
        if image_query_mask is not None:
            out = out * (~image_query_mask).unsqueeze(-1).to(out.dtype)
        return out

    @torch.no_grad()
    def prepare(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> MemoryCache:
        """Everything :meth:`infer` needs that depends only on the memory and the weights."""
        k, v = self.memory_kv(memory)
        has_memory = memory_mask.any(-1, keepdim=True)
        allowed = (memory_mask | ~has_memory)[:, None, None, :]
        row_scale = None if bool(has_memory.all()) else has_memory.to(k.dtype)[:, :, None, None]
        mlp = self.mlp
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], 0)
        gate = self.gate_alpha.detach().reshape(-1)[:1]
        gate_weight = gate.float().expand(self.shape.hidden_size).contiguous()
        return MemoryCache(k, v, allowed, row_scale, gate_up, gate_weight, bool(gate.float().item() == 0.0))

    @torch.no_grad()
    def infer(self, h: torch.Tensor, cache: MemoryCache, image_query_mask: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` for inference with fused steps (same maths; about a third of the ops).

        Per call: the reducers, the cross-attention on the cached keys/values, the latent SwiGLU
        with one stacked gate/up product, and the output norm with the gate folded into its
        weight. Rounding may differ from :meth:`forward` in the last bits (fused norms).
        """
        eps = self.shape.rms_norm_eps
        attn = self.cross_attn
        b, L, _ = h.shape
        x = F.rms_norm(self.text_reducer(h), (self.shape.pvm_hidden_size,), self.input_norm.weight, eps)
        q = F.rms_norm(attn.q_proj(x).view(b, L, attn.num_heads, attn.head_dim), (attn.head_dim,),
                       attn.q_norm.weight, eps).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, cache.k, cache.v, attn_mask=cache.allowed, scale=attn.scaling)
        if cache.row_scale is not None:
            a = a * cache.row_scale
        m = attn.o_proj(a.transpose(1, 2).reshape(b, L, attn.num_heads * attn.head_dim))
        gate, up = F.linear(F.rms_norm(m, (m.shape[-1],), self.post_attn_norm.weight, eps), cache.gate_up).chunk(2, -1)
        m = m + self.mlp.down_proj(F.silu(gate) * up)
        e = self.output_expander(m)
        out = F.rms_norm(e.float(), (e.shape[-1],), cache.gate_weight, eps).to(h.dtype)
        if image_query_mask is not None:
            out = out * (~image_query_mask).unsqueeze(-1).to(out.dtype)
        return out


class MemoryCache(NamedTuple):
    """What :meth:`PVMBlock.infer` reuses at every step of one generation (built once per memory).

    ``k``/``v`` the projected memory ``[B, heads, N, hd]``; ``allowed`` the boolean key mask
    ``[B, 1, 1, N]`` (rows without memory attend to their zero padding, zeroed by ``row_scale``,
    which is None when every row has memory); ``gate_up`` the FFN's gate and up weights stacked
    (one product instead of two); ``gate_weight`` ``gate_alpha`` broadcast to ``[H]`` so the output
    norm and the gate are one ``rms_norm``; ``gate_zero`` the gate is exactly 0 (nothing to do).
    """

    k: torch.Tensor
    v: torch.Tensor
    allowed: torch.Tensor
    row_scale: torch.Tensor | None
    gate_up: torch.Tensor
    gate_weight: torch.Tensor
    gate_zero: bool


def pvm_block_param_count(shape: PVMShape) -> int:
    """Closed-form parameter count of one block (checked against the module in tests)."""
    H, d, i, hd = shape.hidden_size, shape.pvm_hidden_size, shape.intermediate_size, shape.head_dim
    qo = d * shape.num_heads * hd * 2
    kv = d * shape.num_kv_heads * hd * 2
    bias = (shape.num_heads * hd + 2 * shape.num_kv_heads * hd + d) if shape.attention_bias else 0
    return 3 * H * d + qo + kv + bias + 3 * d * i + 2 * d + 2 * hd + 1


__all__ = ["MemoryCache", "PVMBlock", "PVMRMSNorm", "PVMShape", "pvm_block_param_count", "rms_norm_no_weight"]
