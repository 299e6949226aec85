"""Progress reporting without a progress bar: library code reports through a `Bar` it is handed.

Stages (pipeline/stages/) hand in `pipeline.stages.bar`, a tqdm bar; everything else gets `no_bar`,
so library code never draws to the terminal and tests stay quiet.
"""

from __future__ import annotations

from typing import Any, Protocol


class BarLike(Protocol):
    def update(self, n: int = 1) -> Any: ...
    def __enter__(self) -> BarLike: ...
    def __exit__(self, *exc) -> Any: ...


class Bar(Protocol):
    """`bar(total=..., desc=..., unit=..., initial=0, unit_scale=False)` → a context with `update(n)`."""

    def __call__(self, **kwargs) -> BarLike: ...


class _NoBar:
    def __init__(self, **_):
        pass

    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc) -> None:
        return None


no_bar: Bar = _NoBar
