"""The one output guard, used by every command: write to a temporary sibling, rename into place when whole,
and never over what camloc did not write.

An interrupted stage (SIGKILL included) never leaves a half-written file under its final name. An existing
output is replaced only when camloc owns it:
- a file: a marker beside it (``.camloc-own.<name>``, the SHA-256 of what camloc wrote there) matches its
  contents; a user's file, or camloc's file edited since, is refused;
- a folder: every entry in it (recursively) is one the new output holds too, or matches the caller's
  ``owned`` patterns (names a previous run of the same output writes); a user's folder is refused;
- never a symlink, and never a path whose last part is empty, ``.`` or ``..`` (it would name a parent).
A refusal is one line naming the path and the fix, raised before the old output is touched: nothing changes.
Paths inside a temporary folder being built (``.camloc-tmp-*``) are fresh and get neither check nor marker.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.errors import CamlocError

TMP_PREFIX = ".camloc-tmp-"
OWN_PREFIX = ".camloc-own."  # marker of a file camloc wrote: OWN_PREFIX + name, holding its SHA-256
NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # a name that becomes a path: no leading dot, no '/'


def bad_name(name) -> str | None:
    """Why ``name`` cannot become one path component (a backbone key, a method name), or None if it can."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return ("letters, digits, '_', '.' and '-' only, not starting with '.' (so not '.' or '..'), "
                "as it becomes a file or folder name")
    return None


def child(parent: str | os.PathLike, name: str, what: str = "name") -> Path:
    """``parent / name``, refused unless ``name`` is a plain name and the path resolves inside ``parent``
    (a symlink at ``parent/name`` could point anywhere)."""
    if (why := bad_name(name)) is not None:
        raise CamlocError(f"{what} {name!r} cannot name a path under {parent}: use {why}")
    path = Path(parent) / name
    root = Path(parent).resolve()
    if path.resolve().parent != root:
        raise CamlocError(f"{path} resolves to {path.resolve()}, outside {root}: remove that link or "
                          "choose another name")
    return path


def _building(final: Path) -> bool:
    """Whether ``final`` lies inside a temporary output folder being built (fresh, camloc's own)."""
    return any(part.startswith(TMP_PREFIX) for part in final.parent.parts)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _marker(final: Path) -> Path:
    return final.parent / (OWN_PREFIX + final.name)


def _foreign(existing: Path, new: Path | None, owned: tuple[str, ...], rel: str = "", limit: int = 6) -> list[str]:
    """Entries of the folder ``existing`` camloc cannot vouch for (at most ``limit``): neither in the new
    tree ``new`` (same relative path and type) nor matching an ``owned`` pattern (fnmatch on the relative
    path, '*' crossing '/'). A folder is judged by what it holds."""
    out: list[str] = []
    for e in sorted(existing.iterdir(), key=lambda p: p.name):
        if len(out) >= limit:
            break
        path = f"{rel}{e.name}"
        if e.name.startswith((TMP_PREFIX, OWN_PREFIX)) or any(fnmatch.fnmatchcase(path, p) for p in owned):
            continue
        twin = None if new is None else new / e.name
        if e.is_symlink():
            out.append(path)
        elif e.is_dir():
            sub = twin if twin is not None and twin.is_dir() and not twin.is_symlink() else None
            if sub is None and not owned:
                out.append(path + "/")
            else:
                out += _foreign(e, sub, owned, path + "/", limit - len(out))
        elif twin is None or not twin.is_file() or twin.is_symlink():
            out.append(path)
    return out


def check_replaceable(final: str | os.PathLike, kind: str | None = None, owned: Iterable[str] = (),
                      new: Path | None = None) -> None:
    """Refuse (CamlocError, one line) unless camloc may put an output of ``kind`` ('file' | 'dir' | None)
    at ``final``: see the module docstring. ``new``: the finished temporary output, when there is one."""
    final, owned = Path(final), tuple(owned)
    if final.name in ("", ".", ".."):
        raise CamlocError(f"{final} names the folder {final.resolve()} itself, not a new file or folder "
                          "inside it: give a new name (nothing was changed)")
    if _building(final) or not (final.exists() or final.is_symlink()):
        return
    if final.is_symlink():
        raise CamlocError(f"{final} is a symlink camloc did not write (to {os.readlink(final)}); remove the link "
                          "or choose another path (nothing was changed)")
    is_dir = final.is_dir()
    if kind is None and new is not None:
        kind = "dir" if new.is_dir() else "file"
    if kind == "file" and is_dir:
        raise CamlocError(f"{final} is an existing folder; this output is a file and never replaces a folder: "
                          "choose a new file name (nothing was changed)")
    if kind == "dir" and not is_dir:
        raise CamlocError(f"{final} is an existing file; this output is a folder and never replaces a file: "
                          "choose a new folder name (nothing was changed)")
    if not is_dir:
        marker = _marker(final)
        try:
            mine = marker.read_text().strip() == _sha256(final)
        except OSError:
            mine = False
        if not mine:
            why = "changed since camloc wrote it" if marker.exists() else "camloc did not write it"
            raise CamlocError(f"{final} exists and {why}: move it away or choose another path (nothing was "
                              "changed)")
        return
    foreign = _foreign(final, new, owned) if (new is not None or owned) else None
    if foreign is None:  # no tree to compare with yet: the check runs again once the output is whole
        return
    if foreign:
        raise CamlocError(f"{final} holds files camloc did not write ({', '.join(foreign[:5])}"
                          f"{', ...' if len(foreign) > 5 else ''}); move them away or choose another path "
                          "(nothing was changed)")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "", kind: str | None = None,
                owned: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success rename it over `final`, when camloc owns it.

    Works for files and folders: whatever the caller creates at the yielded path replaces `final`.
    The suffix keeps extensions that writers sniff (np.save adds `.npy` when it is missing). ``kind``
    ('file' | 'dir') lets a wrong existing `final` be refused before any work; ``owned``: fnmatch patterns
    of relative paths a previous run of this output may have left that the new one does not hold.
    """
    final, owned = Path(final), tuple(owned)
    check_replaceable(final, kind, owned)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + final.name + ".", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    try:
        yield tmp
        check_replaceable(final, kind, owned, new=tmp)
        building = _building(final)
        if not building and tmp.is_file():
            digest = _sha256(tmp)
        _marker(final).unlink(missing_ok=True)
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
        if not building and final.is_file():
            _marker(final).write_text(digest + "\n")
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path, kind="file") as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    """Deterministic JSON (sorted keys, fixed indent) so identical results give identical bytes."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_parquet(path: str | os.PathLike, df) -> None:
    with atomic_path(path, suffix=".parquet", kind="file") as tmp:
        df.to_parquet(tmp, index=False)


def clean_own_tmp(final: str | os.PathLike) -> None:
    """Remove the temporaries a killed earlier run left for this output (`atomic_path`'s siblings of
    `final`, and only those: other outputs in the same folder may be being written right now)."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    for p in final.parent.glob(f"{TMP_PREFIX}{final.name}.*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


@contextlib.contextmanager
def replace_dir(final: str | os.PathLike, owned: Iterable[str]) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `final` when the block succeeds.

    An existing `final` is replaced only if it holds nothing but entries named in `owned` (what a
    previous run wrote): a user's folder passed by mistake as --out is refused, never deleted.
    """
    final = Path(final)
    check_replaceable(final, "dir", tuple(owned) or ("\0",))  # checked now: nothing is fetched for nothing
    clean_own_tmp(final)  # left by a killed earlier run
    with atomic_path(final, kind="dir", owned=owned) as tmp:
        tmp.mkdir(parents=True)
        yield tmp
