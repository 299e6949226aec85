"""numba's on-disk cache of camloc's compiled kernels, found by the source's content instead of its path.

numba keeps `cache=True` machine code next to the source (`__pycache__`) or under a directory named after
the source's folder, so every fresh clone, every test's copy of the project and every CI checkout compiled
the faithfulness solver (~10 s on 2 cores) and the evaluator's union-find sweeps (~6 s) again. A module
that calls `by_content(__file__, ...)` before its `@njit(cache=True)` functions keeps them in
`$XDG_CACHE_HOME/camloc/numba/<module>-<digest>/` (default `~/.cache`), the digest being the sha256 of
its source and of the sources its kernels compile in: any copy of the same sources loads them, an edit
gets a folder of its own, and numba's index still checks numba's version and the CPU (machine code is
only loaded by the CPU it was compiled for). `rm -rf ~/.cache/camloc/numba` clears it (~1.4 MB a version).

Where that folder cannot be written, or `NUMBA_CACHE_DIR` is set (the user chose a place), numba's own
locators apply unchanged. The hook is numba's list of cache locators (`numba.core.caching`); should a
numba release change it, caching falls back to numba's default, never to an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from numba.core import caching, config

log = logging.getLogger(__name__)

_FILES: dict[str, str] = {}  # resolved source path → 16 hex digits of its sources' sha256 (by_content)
_IMPL = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # (its name in older numba)
_LOCATORS = getattr(_IMPL, "_locator_classes", None)  # numba's locator classes, tried in order


def cache_root() -> Path:
    """The folder camloc's compiled kernels are kept in."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "camloc" / "numba"


class ContentKeyedLocator(getattr(caching, "_CacheLocator", object)):
    """A function of a registered source file, cached under the digest of its sources' content."""

    def __init__(self, py_func, py_file: str, digest: str):
        self._lineno = py_func.__code__.co_firstlineno
        self._digest = digest
        self._path = str(cache_root() / f"{Path(py_file).stem}-{digest}")

    def get_cache_path(self) -> str:
        return self._path

    def get_source_stamp(self) -> str:
        return self._digest  # numba's own stamp (mtime and size, or content) differs per copy in older releases

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        digest = _FILES.get(str(Path(py_file).resolve()))
        if digest is None or getattr(config, "CACHE_DIR", ""):
            return None  # not registered, or the user named numba's cache folder: numba's own locators
        self = cls(py_func, py_file, digest)
        try:
            self.ensure_cache_path()
        except OSError as e:
            log.info("numba cache: %s is not writable (%s); numba's default cache applies", self._path, e)
            return None
        return self


def by_content(py_file: str, *also: str) -> None:
    """Cache the `cache=True` numba functions of `py_file` by its content and that of `also`: the sources
    whose globals its kernels compile in (imported constants, jitted functions it calls), which numba's
    own cache never checks. Call it before defining them."""
    path = Path(py_file).resolve()
    digest = hashlib.sha256()
    for source in (path, *(Path(a).resolve() for a in also)):
        digest.update(hashlib.sha256(source.read_bytes()).digest())
    _FILES[str(path)] = digest.hexdigest()[:16]
    if not isinstance(_LOCATORS, list) or not hasattr(caching, "_CacheLocator"):
        log.info("this numba has no cache locator list: its default cache applies")
    elif ContentKeyedLocator not in _LOCATORS:
        _LOCATORS.insert(0, ContentKeyedLocator)
