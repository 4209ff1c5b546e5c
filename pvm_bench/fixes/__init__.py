"""Training-free baselines ("fixes") run as variants next to ``base`` and ``pvm``.

Each fix is a small module whose variant's context manager installs hooks on the shared
:class:`~pvm_bench.models.loading.LoadedModel` (through the instrument's sites and attention
site) on enter and removes every one of them on exit (also when generation raises):

- ``pai``     :mod:`pvm_bench.fixes.pai`      boost attention logits on image keys plus image-free
  guidance (:mod:`pvm_bench.fixes.pai_guidance`), as in the official code (Liu et al. 2024);
- ``memvr``   :mod:`pvm_bench.fixes.memvr`    visual retracing into the FFN after an uncertain layer,
  as in the official code (Zou et al. 2025);
- ``reinject`` :mod:`pvm_bench.fixes.reinject` add the mean visual embedding every k tokens (ours).

Hyperparameters are given in the variant name: ``pai:alpha=0.2:start_layer=2`` (colon separated
because ``--variants`` is comma separated and ``+`` joins compositions). A bare fix is base + fix
(PVM branch off; ``pvm+pai`` composes with the branch on, :mod:`pvm_bench.variants`), so every
fix's zero-strength setting is bit-identical to ``base``. Registration is by name in
:data:`pvm_bench.variants.BUILTIN_VARIANTS`
(no import side effects); what the fixes share is in :mod:`pvm_bench.fixes.base`.
"""

from pvm_bench.fixes.base import VisualState, capture_visual, fix_variant, hidden_arg, parse_params, replace_hidden_arg

__all__ = ["VisualState", "capture_visual", "fix_variant", "hidden_arg", "parse_params", "replace_hidden_arg"]
