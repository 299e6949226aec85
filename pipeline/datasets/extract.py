"""Safe tar extraction for the download stage: every member is checked before a single byte is written.

Rejected: absolute paths, `..` components, links of any kind (the Pets archives hold none, so a link
means the archive is not the official one), device files and FIFOs. Extraction then also runs with
tarfile's "data" filter, so a check missed here would still be refused by the standard library.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from pipeline.errors import CamlocError

log = logging.getLogger(__name__)


def member_problem(m: tarfile.TarInfo) -> str | None:
    """Why a member may not be extracted, or None when it is a plain file or folder inside the target."""
    name = m.name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "climbs out of the folder with '..'"
    if m.issym() or m.islnk():
        return f"is a {'symbolic' if m.issym() else 'hard'} link (to {m.linkname!r})"
    if m.isdev() or not (m.isfile() or m.isdir()):
        return "is a device file, FIFO or other special file"
    return None


def checked_members(archive: Path) -> list[tarfile.TarInfo]:
    """All members of a .tar(.gz), validated; raises CamlocError on the first unsafe one."""
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise CamlocError(f"{archive} is not a readable tar archive ({e}); delete it and run "
                          "`camloc download` again") from None
    for m in members:
        why = member_problem(m)
        if why:
            raise CamlocError(f"{archive}: member {m.name!r} {why}; nothing was extracted. This is not "
                              "the official archive: delete it and download it again")
    files = {str(PurePosixPath(m.name.replace("\\", "/"))): m.name for m in members if m.isfile()}
    folders = {str(p) for m in members for p in PurePosixPath(m.name.replace("\\", "/")).parents} | {
        str(PurePosixPath(m.name.replace("\\", "/"))) for m in members if m.isdir()}
    both = sorted(set(files) & folders)
    if both:
        raise CamlocError(f"{archive}: {files[both[0]]!r} is both a file and a folder in the archive; nothing "
                          "was extracted. This is not the official archive: delete it and download it again")
    return members


def safe_extract(archive: Path, dest: Path) -> int:
    """Extract `archive` into `dest` after checking every member and the free space; returns file count."""
    members = checked_members(archive)
    need = sum(m.size for m in members)
    dest.mkdir(parents=True, exist_ok=True)
    require_free(dest, need, f"to extract {archive.name}")
    try:
        with tarfile.open(archive, "r:*") as tf:
            tf.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise CamlocError(f"{archive}: extraction failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                          "delete it and download it again") from None
    return sum(m.isfile() for m in members)


def require_free(folder: Path, need: int, why: str) -> None:
    """CamlocError with both figures when `folder`'s file system has less than `need` bytes free."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise CamlocError(f"not enough disk space {why}: needs {_gb(need)} free in {probe}, "
                          f"only {_gb(free)} available; free some space or choose another folder")
    log.debug("%s: %s needed, %s free in %s", why, _gb(need), _gb(free), probe)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
