"""A small name → card registry, in the spirit of timm's `register_model`: one per axis (datasets,
backbones, map methods, WSOL training methods, metrics), shared by camloc's built-ins and plugins.

A card is a frozen, torch-free description of one name: what params validation, the CLI listings, the
stages and the report need to know without importing torch. `card.impl`, where an axis has one, names the
implementation as `"package.module:attribute"`; `Registry.load(name)` imports it only when asked, so
listing and validating names never loads torch. Each registration remembers where it came from (the
module that registered it, or a plugin's distribution), so a name registered twice is refused naming both.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pipeline.errors import CamlocError

T = TypeVar("T")


class UnknownNameError(CamlocError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateNameError(CamlocError, ValueError):
    """A name registered twice on one axis; the message names both origins."""


def _caller_module(depth: int) -> str:
    return str(sys._getframe(depth + 1).f_globals.get("__name__", "?"))


def load_object(impl: str) -> Any:
    """Import `"package.module:attribute"` (the attribute may be dotted)."""
    module, _, attr = impl.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loaded: dict[str, Any] = {}

    def add(self, name: str, card: T, origin: str | None = None) -> T:
        """Register `card` under `name`; `origin` (default: the calling module) is named if it clashes."""
        origin = origin or _caller_module(2)
        if name in self._entries:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice: by {self._origins[name]} and by {origin}; "
                "rename one of them")
        self._entries[name] = card
        self._origins[name] = origin
        return card

    def register(self, name: str | None = None, origin: str | None = None) -> Callable[[T], T]:
        """Decorator form: `@REGISTRY.register("name")` (default: the object's `__name__`)."""

        def deco(obj: T) -> T:
            key = name or obj.__name__  # type: ignore[attr-defined]
            return self.add(key, obj, origin or _caller_module(2))

        return deco

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}"
            ) from None

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    def load(self, name: str) -> Any:
        """The implementation named by the card's `impl` (imported on first use, then kept)."""
        if name not in self._loaded:
            impl = getattr(self.get(name), "impl", None)
            if not impl:
                raise CamlocError(f"{self.kind} {name!r} has no implementation (its card names no impl)")
            self._loaded[name] = load_object(impl)
        return self._loaded[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def registered(self) -> list[str]:
        """The names in registration order (built-ins first, then plugins)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
