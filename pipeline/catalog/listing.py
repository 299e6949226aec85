"""The text of the catalog listings (`camloc backbones|methods|wsol-methods|datasets|metrics|plugins`), as
lines: pure functions over the registries; the CLI prints them. A name a plugin registered says which."""

from __future__ import annotations

from pipeline.catalog.backbones import BACKBONES
from pipeline.catalog.datasets import DATASETS
from pipeline.catalog.methods import METHODS
from pipeline.catalog.metrics import METRICS, ordered
from pipeline.catalog.plugins import discover
from pipeline.catalog.registry import Registry
from pipeline.catalog.wsol import WSOL_METHODS


def _from(reg: Registry, name: str) -> str:
    origin = reg.origin(name)
    return f"  [{origin.split(' (')[0]}]" if origin.startswith("plugin ") else ""


def _width(names: list[str], least: int) -> int:
    """The name column's width: the longest name, so every summary starts in one column."""
    return max([least, *map(len, names)])


def backbones() -> list[str]:
    w = _width(BACKBONES.names(), 22)
    return [f"{n:{w}s} {BACKBONES.get(n).summary}{_from(BACKBONES, n)}" for n in BACKBONES.names()]


def methods() -> list[str]:
    w = _width(METHODS.names(), 12)
    return [f"{n:{w}s} {METHODS.get(n).summary}{_from(METHODS, n)}" for n in METHODS.names()]


def wsol_methods() -> list[str]:
    out = []
    for name in WSOL_METHODS.names():
        info = WSOL_METHODS.get(name)
        hp = ", ".join(f"{k}={v}" for k, v in info.defaults.items()) or "no hyperparameters"
        out.append(f"{name:8s} {info.summary}{_from(WSOL_METHODS, name)}\n         {info.paper}; {info.supervision}; {hp}")
    return out


def datasets() -> list[str]:
    return [f"{n:12s} {DATASETS.get(n).summary}{_from(DATASETS, n)}" for n in DATASETS.names()]


def metrics() -> list[str]:
    """Every metric in leaderboard.csv order: name, direction, family, box kind, label."""
    out = []
    for c in ordered():
        where = f"{c.box_kind} boxes" if c.box_kind else "loc-kind boxes" if c.loc_boxes else ""
        out.append(f"{c.name:30s} {c.direction} {c.family:14s} {where:14s} {c.label}{_from(METRICS, c.name)}")
    return out


def plugins() -> list[str]:
    """One block per installed `camloc.plugins` entry point: distribution, location, names or error."""
    records = discover()
    if not records:
        return ["no camloc plugins installed (entry point group camloc.plugins; docs/plugins.md)"]
    out = []
    for r in records:
        out.append(f"{r.distribution} {r.version} (entry point {r.entry_point} = {r.value}) from {r.location}")
        if r.error:
            out.append(f"  error: {r.error}")
        for axis, name in r.registered:
            out.append(f"  {axis}: {name}")
    return out
