"""One generic registry: name -> object, lazily imported references, entry points, "did you mean".

Every by-name lookup of the package goes through :class:`Registry`: probes
(:data:`pvm_bench.probes.registry.PROBES`), variants (:data:`pvm_bench.variants.VARIANTS`), and the
tasks and groups of a :class:`pvm_bench.tasks.registry.TaskRegistry`. Built-in entries may be
``"module:attribute"`` strings imported on first use, so registering needs no import side effect;
third parties add entries through an entry point of the registry's ``group`` (its name is the
registry name) or at runtime with :meth:`Registry.register`.

The shape follows lm-evaluation-harness's ``Registry[T]`` (lm_eval/api/registry.py at commit
4e7e0d4: placeholders, a ``"module:object"`` string or an ``EntryPoint``, materialised on first
``get`` by ``_materialise_placeholder``, lines 100-122; ``Registry.get``, lines 278-310). An unknown
name differs: lm-eval suggests names by prefix/substring and then lists up to 20 known names
(``_suggest_similar`` / ``_build_key_error_msg``, lines 125-153); here :meth:`Registry.unknown`
names only the close matches (``difflib``), and the place that lists every name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar

from pvm_bench.errors import UserError

T = TypeVar("T")


class PluginLoadError(UserError, RuntimeError):
    """A registered plugin could not be imported; the message names it and its source."""


def load_reference(ref: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def close_matches(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``names`` most like ``name`` (``difflib`` ratio >= 0.6, best first)."""
    return difflib.get_close_matches(name, list(names), n=n, cutoff=0.6)


def unknown_message(kind: str, name: str, names: Iterable[str], listing: str = "") -> str:
    """``unknown <kind> '<name>'; did you mean 'a' or 'b'?`` (close matches only, never every name);
    with no close match, ``listing`` says where the known names are shown."""
    matches = close_matches(name, names)
    message = f"unknown {kind} '{name}'"
    if matches:
        quoted = [f"'{m}'" for m in matches]
        alternatives = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        return f"{message}; did you mean {alternatives}?"
    return f"{message}; {listing}" if listing else message


class Registry(Mapping[str, T], Generic[T]):
    """Name -> object, with lazily imported references and the entry points of ``group``.

    ``registry[name]`` raises ``KeyError`` for an unknown name (the Mapping contract); callers that
    report to a user word the error with :meth:`unknown`.
    """

    def __init__(self, kind: str, group: str | None = None, builtin: Mapping[str, str] | None = None,
                 listing: str = "") -> None:
        self.kind = kind
        self.group = group
        #: Where a user sees every name (``pvm-bench tasks``...), said when nothing is close.
        self.listing = listing
        self._refs: dict[str, str] = dict(builtin or {})
        self._objects: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str, obj: T | str) -> None:
        """Add (or replace) ``name``; a ``str`` is a ``"module:attribute"`` reference, loaded on first use."""
        self.unregister(name)
        if isinstance(obj, str):
            self._refs[name] = obj
        else:
            self._objects[name] = obj

    def unregister(self, name: str) -> None:
        self._objects.pop(name, None)
        self._refs.pop(name, None)

    def unknown(self, name: str) -> str:
        """The one-line message for a name this registry lacks (close matches, or :attr:`listing`)."""
        return unknown_message(self.kind, name, self, self.listing)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or self.group is None:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.group):
            if ep.name not in self._refs and ep.name not in self._objects:
                self._refs[ep.name] = ep.value

    def __getitem__(self, name: str) -> T:
        if name in self._objects:
            return self._objects[name]
        if name not in self._refs:
            self._load_entry_points()
        ref = self._refs.get(name)
        if ref is None:
            raise KeyError(name)
        try:
            obj = load_reference(ref)
        except (ImportError, AttributeError) as exc:
            raise PluginLoadError(f"{self.kind} '{name}' ({ref}) cannot be loaded: {exc}") from exc
        self._objects[name] = obj
        return obj

    def __contains__(self, name: object) -> bool:
        if name in self._objects or name in self._refs:
            return True
        self._load_entry_points()
        return name in self._refs

    def __iter__(self) -> Iterator[str]:
        self._load_entry_points()
        return iter(dict.fromkeys([*self._refs, *self._objects]))

    def __len__(self) -> int:
        return sum(1 for _ in self)
