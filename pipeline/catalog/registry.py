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


def _failed_plugins_note() -> str:
    """"(plugins that failed to load: ...)" when some did: the unknown name may be one of theirs."""
    failed = [r.distribution for r in getattr(sys.modules.get("pipeline.catalog.plugins"), "RECORDS", []) if r.error]
    return f" (plugins that failed to load: {', '.join(failed)}; `camloc plugins` says why)" if failed else ""


def load_object(impl: str) -> Any:
    """Import `"package.module:attribute"` (the attribute may be dotted)."""
    module, _, attr = impl.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


# Set by pipeline.catalog.plugins while it imports one plugin: the origin its registrations get, and the
# journal of what it added (removed again when the plugin fails, so a broken plugin leaves nothing behind).
_plugin_origin: str | None = None
_journal: list[tuple[Registry, str]] = []
# Run once, before the first read of any registry (plugin discovery: pipeline.catalog.plugins).
_first_read_hooks: list[Callable[[], None]] = []
_hooks_ran = False


def before_first_read(hook: Callable[[], None]) -> None:
    _first_read_hooks.append(hook)


def _run_first_read_hooks() -> None:
    global _hooks_ran
    if not _hooks_ran:
        _hooks_ran = True  # first: a hook that reads a registry does not recurse
        for hook in _first_read_hooks:
            hook()


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loaded: dict[str, Any] = {}

    def add(self, name: str, card: T, origin: str | None = None) -> T:
        """Register `card` under `name`; `origin` (default: the calling module, or the plugin being
        loaded) is named if it clashes."""
        origin = origin or _plugin_origin or _caller_module(1)
        if name in self._entries:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice: by {self._origins[name]} and by {origin}; "
                "rename one of them")
        self._entries[name] = card
        self._origins[name] = origin
        if _plugin_origin is not None:
            _journal.append((self, name))
        return card

    def remove(self, name: str) -> None:
        """Forget `name` (a plugin that failed half-way); built-ins are never removed."""
        self._entries.pop(name, None)
        self._origins.pop(name, None)
        self._loaded.pop(name, None)

    def register(self, name: str | None = None, origin: str | None = None) -> Callable[[T], T]:
        """Decorator form: `@REGISTRY.register("name")` (default: the object's `__name__`)."""

        def deco(obj: T) -> T:
            key = name or obj.__name__  # type: ignore[attr-defined]
            return self.add(key, obj, origin or _plugin_origin or _caller_module(1))

        return deco

    def get(self, name: str) -> T:
        _run_first_read_hooks()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}{_failed_plugins_note()}"
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
        _run_first_read_hooks()
        return sorted(self._entries)

    def registered(self) -> list[str]:
        """The names in registration order (built-ins first, then plugins)."""
        _run_first_read_hooks()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        _run_first_read_hooks()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        _run_first_read_hooks()
        return len(self._entries)
