"""Plugins: installed distributions that add backbones, map methods, WSOL methods, datasets or metrics
(docs/plugins.md). A distribution declares an entry point in the group `camloc.plugins`:

    [project.entry-points."camloc.plugins"]
    my_plugin = "my_package.cards"          # a torch-free module that registers cards on import
    # or "my_package.cards:register", a function called with no arguments that registers them

Discovery runs once, before the first read of any registry, and imports only those entry points: a
plugin's cards name their torch implementations by `impl` strings, loaded when used, so listing and
validating a plugin's names never imports its torch code. Its registrations join the built-in
registries, each remembered with the plugin's distribution as its origin.

A plugin that fails to import, or that reuses a name already registered (a built-in's or another
plugin's), is refused as a whole: what it had registered is removed again, one error line naming the
distribution (and both origins of a reused name) is logged, `camloc plugins` shows it, and everything
else runs as if it were not installed.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
from dataclasses import dataclass

from pipeline.catalog import backbones, datasets, methods, metrics, registry, wsol

log = logging.getLogger(__name__)

GROUP = "camloc.plugins"
AXES = {"backbone": backbones.BACKBONES, "map method": methods.METHODS, "WSOL method": wsol.WSOL_METHODS,
        "dataset": datasets.DATASETS, "metric": metrics.METRICS}


@dataclass(frozen=True)
class PluginRecord:
    """One `camloc.plugins` entry point: where it came from, what it registered, or why it was refused."""

    entry_point: str  # its name
    value: str  # "module" or "module:function"
    distribution: str
    version: str
    location: str  # the folder the distribution is installed in
    registered: tuple[tuple[str, str], ...] = ()  # (axis, name)
    error: str = ""  # "" when it loaded


RECORDS: list[PluginRecord] = []


def _distribution(ep: md.EntryPoint) -> tuple[str, str, str]:
    dist = ep.dist
    if dist is None:
        return "?", "?", "?"
    location = str(dist.locate_file("")) if hasattr(dist, "locate_file") else "?"
    return dist.metadata["Name"] or "?", dist.version or "?", location


def _load_one(ep: md.EntryPoint) -> PluginRecord:
    name, version, location = _distribution(ep)
    registry._plugin_origin = f"plugin {name} {version} (entry point {ep.name} = {ep.value})"
    start = len(registry._journal)
    try:
        obj = ep.load()
        if ep.attr and callable(obj):
            obj()
    except registry.DuplicateNameError as e:
        error = f"plugin distribution {name} refused: {e}"
    except Exception as e:  # noqa: BLE001 (any failure of outside code is reported, never fatal for the rest)
        detail = " ".join(f"{type(e).__name__}: {e}".split())
        error = (f"plugin distribution {name} {version} failed to import (entry point {ep.name} = {ep.value}): "
                 f"{detail}; fix it or uninstall {name}")
    else:
        error = ""
    finally:
        registry._plugin_origin = None
    added = registry._journal[start:]
    del registry._journal[start:]
    if error:
        for reg, key in added:
            reg.remove(key)
        log.error("%s", error)
        added = []
    kinds = {id(reg): kind for kind, reg in AXES.items()}
    return PluginRecord(ep.name, ep.value, name, version, location,
                        tuple((kinds.get(id(reg), reg.kind), key) for reg, key in added), error)


def discover() -> list[PluginRecord]:
    """Import every `camloc.plugins` entry point once (sorted by distribution and name); the records."""
    if RECORDS:
        return RECORDS
    eps = sorted(md.entry_points(group=GROUP), key=lambda ep: (_distribution(ep)[0], ep.name))
    seen: set[tuple[str, str]] = set()
    for ep in eps:
        if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        RECORDS.append(_load_one(ep))
    return RECORDS


registry.before_first_read(discover)
