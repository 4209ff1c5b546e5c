"""How a variant replays: which steps must start a new forward, or one row per forward.

Replay feeds many query rows per forward. That is exact for a variant whose effect on a row does
not depend on which rows share its forward:

- ``base`` and ``pvm``: the PVM branch acts on every text query position of every forward
  (prefill and decode alike), so a chunk of rows gets what each row got alone;
- ``blind:after=K``: per FORWARD, from step K on (image keys ``-inf`` for every text row, PVM
  off). Cutting the chunks at step K (:func:`pvm_bench.replay.forward.chunk_cuts`) makes every
  forward wholly before or wholly after K, i.e. exactly the decode-time rows.

Variants whose decode-time effect is specific to the LAST query row of each forward (PAI's logit
boost, MemVR's entropy trigger and retrace, ``reinject``'s residual add) would act on one row per
chunk only; they -- and any variant pvm-bench does not know (a plugin) -- are replayed with ONE
row per forward after the prompt, which is the decode-time computation itself: exact, at decode
speed (the note says so). Nothing is ever approximated.
"""

from __future__ import annotations

from dataclasses import dataclass

from pvm_bench.errors import UserError

ROW_INDEPENDENT = ("base", "pvm")
"""Variants whose effect on a query row is the same whatever other rows its forward holds."""
LAST_ROW = {
    "pai": "PAI boosts the image logits of the LAST query row of every forward",
    "memvr": "MemVR triggers per forward on the last position's entropy",
    "reinject": "reinject adds to the last position's residual every N steps",
}
"""Built-in variants with a last-row / per-forward effect, and why."""


class ReplayPlanError(UserError):
    """A variant spec that replay cannot read."""


@dataclass(frozen=True)
class ReplayPlan:
    """``boundaries``: steps that must start a forward; ``one_row``: one row per forward; ``note``: why."""

    boundaries: tuple[int, ...] = ()
    one_row: bool = False
    note: str | None = None


def _blind_after(part: str) -> int:
    params = dict(p.partition("=")[::2] for p in part.split(":")[1:])
    try:
        return int(params.get("after", "0"))
    except ValueError:
        raise ReplayPlanError(f"variant '{part}': after must be an integer") from None


def plan_for(variant: str) -> ReplayPlan:
    """The replay plan of a variant spec (``pvm+blind:after=16``, ``pai:alpha=0.2``, ...)."""
    boundaries: list[int] = []
    reasons: list[str] = []
    for part in variant.split("+"):
        name = part.split(":")[0]
        if name in ROW_INDEPENDENT:
            continue
        if name == "blind":
            boundaries.append(_blind_after(part))
        elif name in LAST_ROW:
            reasons.append(LAST_ROW[name])
        else:
            reasons.append(f"'{name}' is not a built-in variant, so its per-row behaviour is unknown")
    if reasons:
        note = (f"variant '{variant}': {'; '.join(reasons)}, so it is replayed one row per forward "
                "(exact, at decode speed)")
        return ReplayPlan(tuple(boundaries), one_row=True, note=note)
    return ReplayPlan(tuple(boundaries))
