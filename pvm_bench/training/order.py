"""Batch orders that are pure functions of their arguments (a resumed run needs no loader state)."""

from __future__ import annotations

import torch


def sample_indices(n_rows: int, seed: int, start: int, count: int) -> list[int]:
    """Positions ``start .. start+count-1`` of the infinite stream of per-epoch permutations of
    ``range(n_rows)`` (epoch ``e`` is permuted with seed ``seed * 100_003 + e``).

    Pure function of (seed, position): resuming at any step needs no data-loader state, and data
    parallel ranks take disjoint positions of the same stream.
    """
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n_rows)
        perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        take = min(count - len(out), n_rows - offset)
        out.extend(perm[offset : offset + take])
        pos += take
    return out


def bucketed_batches(
    lengths: list[int], steps: int, batch_size: int, seed: int, bucket_edge: int = 160
) -> list[list[int]]:
    """``steps`` batches of sample indices, grouped by length; a pure function of the arguments.

    Samples are split into two length buckets (``< bucket_edge`` and the rest), so a batch of short
    sequences is not padded to a long one (about 2x less compute on CPU); each epoch permutes each
    bucket with one generator seeded once, cuts full batches and shuffles the batch list. A bucket
    smaller than a batch is left out.
    """
    gen = torch.Generator().manual_seed(seed)
    pools = [
        [i for i, n in enumerate(lengths) if n < bucket_edge],
        [i for i, n in enumerate(lengths) if n >= bucket_edge],
    ]
    pools = [p for p in pools if len(p) >= batch_size]
    if not pools:
        raise ValueError(f"{len(lengths)} samples make no full batch of {batch_size} in either length bucket")
    batches: list[list[int]] = []
    while len(batches) < steps:
        epoch: list[list[int]] = []
        for pool in pools:
            perm = [pool[j] for j in torch.randperm(len(pool), generator=gen).tolist()]
            epoch.extend(perm[k : k + batch_size] for k in range(0, len(perm) - batch_size + 1, batch_size))
        batches.extend(epoch[j] for j in torch.randperm(len(epoch), generator=gen).tolist())
    return batches[:steps]
