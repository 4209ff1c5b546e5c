"""An independent plain-torch reimplementation of the reference PVM forward (DESIGN.md maths).

Written from the maths, not from pvm_bench.pvm.block: functional, on a dict of weights named
as in the reference checkpoints, with an explicit softmax and -inf masking.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F


def _rms(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    y = x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)
    return y if weight is None else y * weight


def reference_pvm(
    h: torch.Tensor,
    V: torch.Tensor,
    V_valid: torch.Tensor,
    is_image: torch.Tensor,
    W: dict[str, torch.Tensor],
    head_dim: int,
    eps: float,
) -> torch.Tensor:
    """out for h [B, L, H], memory V [B, N, H] with V_valid [B, N], is_image [B, L]."""
    B, L, _ = h.shape
    N = V.shape[1]
    s = h @ W["text_reducer.weight"].T
    v = V @ W["vision_reducer.weight"].T
    x = _rms(s, W["input_norm.weight"], eps)
    q = (x @ W["cross_attn.q_proj.weight"].T).reshape(B, L, -1, head_dim)
    k = (v @ W["cross_attn.k_proj.weight"].T).reshape(B, N, -1, head_dim)
    val = (v @ W["cross_attn.v_proj.weight"].T).reshape(B, N, -1, head_dim)
    q = _rms(q, W["cross_attn.q_norm.weight"], eps)
    k = _rms(k, W["cross_attn.k_norm.weight"], eps)
    n_heads, n_kv = q.shape[2], k.shape[2]
    group = n_heads // n_kv
    m = torch.zeros(B, L, n_heads, head_dim, dtype=h.dtype)
    for head in range(n_heads):
        kh, vh = k[:, :, head // group], val[:, :, head // group]  # [B, N, hd]
        scores = torch.einsum("bld,bnd->bln", q[:, :, head], kh) / head_dim**0.5
        scores = scores.masked_fill(~V_valid[:, None, :], float("-inf"))
        m[:, :, head] = torch.einsum("bln,bnd->bld", scores.softmax(-1), vh)
    m = m.reshape(B, L, n_heads * head_dim) @ W["cross_attn.o_proj.weight"].T
    y = _rms(m, W["post_attn_norm.weight"], eps)
    y = (F.silu(y @ W["mlp.gate_proj.weight"].T) * (y @ W["mlp.up_proj.weight"].T)) @ W["mlp.down_proj.weight"].T
    m = m + y
    out = W["gate_alpha"].reshape(()) * _rms(m @ W["output_expander.weight"].T, None, eps)
    return out * (1.0 - is_image.to(out.dtype))[..., None]


def patch_reference_layers(hf_model, layers_path_modules, weights: dict[int, dict[str, torch.Tensor]],
                           memory: dict, head_dim: int, eps: float) -> None:
    """Replace the forward of chosen decoder layers with the reference PVM decoder layer.

    ``memory`` holds V, V_valid and prompt_image (the prompt's image mask, used when the call
    processes the prompt); decode calls have no image queries.
    """
    for idx, W in weights.items():
        layer = layers_path_modules[idx]

        def forward(self, hidden_states, position_embeddings=None, attention_mask=None, position_ids=None,
                    past_key_values=None, use_cache=False, _W=W, **kwargs):
            residual = hidden_states
            x = self.input_layernorm(hidden_states)
            x, _ = self.self_attn(hidden_states=x, attention_mask=attention_mask, position_ids=position_ids,
                                  past_key_values=past_key_values, use_cache=use_cache,
                                  position_embeddings=position_embeddings, **kwargs)
            h = residual + x
            L = h.shape[1]
            prompt_image = memory["prompt_image"]
            is_image = prompt_image if L == prompt_image.shape[1] else torch.zeros(h.shape[:2], dtype=torch.bool)
            out = reference_pvm(h, memory["V"], memory["V_valid"], is_image, _W, head_dim, eps)
            return h + self.mlp(self.post_attention_layernorm(h)) + out

        layer.forward = types.MethodType(forward, layer)
