"""Input protocols: which system turn and image size limits a run sends, as data.

A protocol names a reference harness whose inputs a run should reproduce. ``default`` is
pvm-bench's own: no system turn, the processor's image size limits (what the checkpoint's
``preprocessor_config.json`` says). ``lmms-eval`` takes the values lmms-eval 0.7.3's model
wrapper for the family uses, from :attr:`pvm_bench.models.families.FamilySpec.protocols` (the
citations live there). Explicit values (``--system-prompt``, ``--min-pixels``, ``--max-pixels``)
always win over the preset; ``--system-prompt ""`` removes the preset's system turn.

The protocol also fixes one scoring rule: an output cut inside an unclosed ``<think>`` scores 0
(``default``) or is parsed as lmms-eval 0.7.3 does (``lmms-eval``; :func:`apply_unfinished_policy`,
:data:`pvm_bench.scoring.extract.UNFINISHED_POLICIES`). The protocol's name in run.json fixes it too.

The resolved values (with where each came from) go to run.json, in every task's ``generation``
settings, so a resume with other inputs is refused like any other generation change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pvm_bench.errors import UserError
from pvm_bench.models.families import FAMILIES, FamilySpec, HarnessSettings
from pvm_bench.scoring import apply_unfinished_policy

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

#: ``--protocol`` values. ``default`` = pvm-bench's own inputs (no preset). ``pvm-paper`` = the PVM
#: paper's evaluation: lmms-eval's inputs and scoring rule, plus temperature 0.7 and 4 repeats
#: (:data:`pvm_bench.paper_table.PAPER_RUN_DEFAULTS`, filled in by the CLI when not given).
PROTOCOLS = ("default", "lmms-eval", "pvm-paper")
#: Protocols that send what another protocol's family preset says.
PRESET_OF = {"pvm-paper": "lmms-eval"}


class ProtocolError(UserError):
    """A protocol that does not apply to the loaded model's family."""


@dataclass(frozen=True)
class InputProtocol:
    """The effective input settings of a run.

    ``min_pixels``/``max_pixels`` are the limits the processor applies after resolution (its own
    when nothing was asked), None for fixed-size families. ``sources`` maps each of
    ``system_prompt``, ``min_pixels``, ``max_pixels`` to ``"user"``, the protocol's name, or
    ``"processor"``/``"none"`` (nothing set).
    """

    name: str = "default"
    system_prompt: str | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The run.json form (merged into each task's generation settings)."""
        return {"protocol": self.name, "system_prompt": self.system_prompt, "min_pixels": self.min_pixels,
                "max_pixels": self.max_pixels, "protocol_sources": dict(self.sources)}


def preset(spec: FamilySpec, name: str) -> HarnessSettings:
    """The family's settings for protocol ``name`` (``default``: none)."""
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown --protocol '{name}'; use one of {', '.join(PROTOCOLS)}")
    if name == "default":
        return HarnessSettings()
    try:
        return spec.protocols[PRESET_OF.get(name, name)]
    except KeyError:
        known = sorted(f.name for f in FAMILIES.values() if PRESET_OF.get(name, name) in f.protocols)
        raise ProtocolError(
            f"--protocol {name}: no {name} settings are known for {spec.name} models (known for {', '.join(known)}); "
            "drop --protocol and pass --system-prompt / --min-pixels / --max-pixels yourself"
        ) from None


def resolve_protocol(
    spec: FamilySpec,
    name: str = "default",
    *,
    system_prompt: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> tuple[InputProtocol, tuple[int | None, int | None]]:
    """Merge the explicit values over protocol ``name``'s preset for family ``spec``.

    Returns the protocol (pixel limits as requested, None = keep the processor's) and the
    (min, max) pixel limits to apply to the processor.
    """
    base = preset(spec, name)
    sources: dict[str, str] = {}
    chosen: dict[str, Any] = {}
    for key, given, from_preset in (
        ("system_prompt", system_prompt, base.system_prompt),
        ("min_pixels", min_pixels, base.min_pixels),
        ("max_pixels", max_pixels, base.max_pixels),
    ):
        if given is not None:
            chosen[key], sources[key] = given, "user"
        elif from_preset is not None:
            chosen[key], sources[key] = from_preset, name
        else:
            chosen[key], sources[key] = None, "none" if key == "system_prompt" else "processor"
    prompt = chosen["system_prompt"] or None  # "" = explicitly no system turn
    limits = (chosen["min_pixels"], chosen["max_pixels"])
    return InputProtocol(name, prompt, *limits, sources=sources), limits


def apply_protocol(
    lm: LoadedModel,
    name: str = "default",
    *,
    system_prompt: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> InputProtocol:
    """Resolve protocol ``name`` for ``lm``'s family, bound its processor's image sizes, and
    return the effective settings (pass ``.system_prompt`` to ``generate``).

    The default protocol without explicit values changes nothing.
    """
    from pvm_bench.models.processor import apply_pixel_limits

    protocol, (low, high) = resolve_protocol(
        lm.spec, name, system_prompt=system_prompt, min_pixels=min_pixels, max_pixels=max_pixels
    )
    eff_low, eff_high = apply_pixel_limits(lm.processor, lm.spec, low, high)
    return InputProtocol(protocol.name, protocol.system_prompt, eff_low, eff_high, sources=protocol.sources)


__all__ = ["PROTOCOLS", "InputProtocol", "ProtocolError", "apply_protocol", "apply_unfinished_policy", "preset",
           "resolve_protocol"]
