"""Small helpers for forward hooks that must work across transformers releases."""

from __future__ import annotations

from typing import Any

#: Keyword under which decoders receive the KV cache: ``past_key_values`` up to transformers
#: 5.23, ``cache`` from 5.24 on.
CACHE_KWARGS = ("past_key_values", "cache")


def cached_length(kwargs: dict[str, Any]) -> int:
    """Number of positions already in the KV cache passed to a forward (0 at prefill)."""
    for name in CACHE_KWARGS:
        cache = kwargs.get(name)
        if cache is not None and hasattr(cache, "get_seq_length"):
            return int(cache.get_seq_length())
    return 0
