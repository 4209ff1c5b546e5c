"""Plugin registries for probes and variants: built-ins by name, runtime registration, entry points.

A registry maps a name to an object (a probe factory, a variant). Built-in entries are
``"module:attribute"`` strings imported on first use, so registering needs no import side
effect and no module of the package imports the registry's users at import time. Third parties
add entries from their own distribution through an entry point (group ``pvm_bench.probes`` or
``pvm_bench.variants``; the entry point's name is the registry name and it loads the object),
or at runtime with :meth:`PluginRegistry.register`, as tasks do with ``pvm_bench.tasks``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
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


class PluginRegistry(Mapping[str, T], Generic[T]):
    """Name -> object, with lazily imported built-ins and entry points of ``group``."""

    def __init__(self, kind: str, group: str, builtin: Mapping[str, str]) -> None:
        self.kind = kind
        self.group = group
        self._refs: dict[str, str] = dict(builtin)
        self._objects: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str, obj: T | str) -> None:
        """Add (or replace) ``name``; ``obj`` may be a ``"module:attribute"`` reference."""
        self.unregister(name)
        if isinstance(obj, str):
            self._refs[name] = obj
        else:
            self._objects[name] = obj

    def unregister(self, name: str) -> None:
        self._objects.pop(name, None)
        self._refs.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
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
