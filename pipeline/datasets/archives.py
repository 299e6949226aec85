"""Archives for the download stage: Oxford-IIIT Pet fetched over HTTP(S), verified and extracted.

Pets archives are downloaded over HTTP(S) with redirects followed, a progress bar, resumption of a
partial `.part` file through Range requests, retries with backoff on transient failures, and an MD5
check before anything is extracted. They are kept in `data/downloads/` (not a DVC output), so a rerun
reuses them. Offline, `--archives DIR` (or `dataset.archives`) points at a folder holding them.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import replace_dir
from pipeline.contracts import RAW_ENTRIES, downloads_dir
from pipeline.datasets.extract import require_free, safe_extract
from pipeline.errors import CamlocError
from pipeline.params import Params
from pipeline.progress import Bar, no_bar

log = logging.getLogger(__name__)
CHUNK = 1 << 20
TIMEOUT_S = 30


@dataclass(frozen=True)
class Archive:
    md5: str
    size: int  # bytes


# The official archives (DESIGN.md). Tests pass their own table to `fetch_pets(table=...)`.
PETS_ARCHIVES: dict[str, Archive] = {
    "images.tar.gz": Archive("5c4f3ee8e5d25df40f4fd59a7f44e54c", 791_918_971),
    "annotations.tar.gz": Archive("95a8c909bbe2e81eed6a22bccdf3f68f", 19_173_078),
}


class Transient(Exception):
    """A failure worth retrying (connection dropped, timeout, 5xx, short read)."""


class CannotResume(Transient):
    """The server refused or misplaced the Range request: the partial file must be dropped."""


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, spec: Archive) -> None:
    """CamlocError naming the file when its size or MD5 is not the expected one."""
    size = path.stat().st_size
    if size != spec.size:
        raise CamlocError(f"{path} has {size:,} bytes, expected {spec.size:,}: it is incomplete or not the "
                          "official archive; delete it and run `camloc download` again")
    got = md5sum(path)
    if got != spec.md5:
        raise CamlocError(f"{path} has MD5 {got}, expected {spec.md5}: it is damaged or not the official "
                          "archive; delete it and run `camloc download` again")


def _offline_error(url: str, why: str) -> CamlocError:
    return CamlocError(
        f"cannot download {url} ({why}): connect to the network and re-run `camloc download`, or fetch "
        "the dataset's archives (Pets: images.tar.gz and annotations.tar.gz; CUB: CUB_200_2011.tgz) "
        "elsewhere and pass their folder with `--archives DIR` (or set dataset.archives in params.yaml)"
    )


def _open(url: str, start: int):
    req = urllib.request.Request(url, headers={"User-Agent": "camloc", "Accept-Encoding": "identity"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT_S)  # follows 301/302/303/307/308
    except urllib.error.HTTPError as e:
        if e.code == 416:
            raise CannotResume("HTTP 416 range not satisfiable") from None
        if e.code in (408, 429) or e.code >= 500:
            raise Transient(f"HTTP {e.code}") from None
        raise CamlocError(f"{url}: the server answered HTTP {e.code} {e.reason}; check "
                          "dataset.base_url in params.yaml") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, socket.gaierror):  # no DNS: offline, retrying will not help
            raise _offline_error(url, f"host not found: {e.reason}") from None
        raise Transient(str(e.reason)) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise Transient(str(e)) from None


def fetch_once(url: str, part: Path, total: int, bar: Bar = no_bar) -> None:
    """Append the missing bytes of `url` to `part` (resuming at its current size)."""
    start = part.stat().st_size if part.exists() else 0
    if start == total:
        return  # complete already (a run killed before the checksum): just verify it
    if start > total:
        start = 0
        part.unlink()
    try:
        resp = _open(url, start)
    except CannotResume:
        part.unlink(missing_ok=True)
        raise
    with resp:
        if start and resp.status != 206:
            start = 0  # the server ignored the Range header: write from the beginning
        elif start and not resp.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
            part.unlink()
            raise CannotResume(f"server resumed at {resp.headers.get('Content-Range')!r}, not byte {start}")
        mode = "ab" if start else "wb"
        written = start
        with open(part, mode) as f, bar(total=total, initial=start, unit="B", unit_scale=True,
                                        desc=part.name[:-5]) as progress:
            try:
                while block := resp.read(CHUNK):
                    f.write(block)
                    progress.update(len(block))
                    written += len(block)
                    if written > total:
                        raise CamlocError(f"{url} sent more than the expected {total:,} bytes: it is "
                                          "not the official archive; check dataset.base_url")
            except http.client.HTTPException as e:
                raise Transient(f"connection lost ({e})") from None
            except OSError as e:  # socket errors are transient; a full disk is not
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise CamlocError(f"disk full while writing {part}; free some space and re-run "
                                      "`camloc download` (it resumes where it stopped)") from None
                raise Transient(f"connection lost ({e})") from None
    got = part.stat().st_size
    if got < total:
        raise Transient(f"connection closed after {got:,} of {total:,} bytes")


def download(url: str, dest: Path, spec: Archive, retries: int = 5, backoff: float = 2.0,
             bar: Bar = no_bar) -> Path:
    """Download `url` to `dest` via `dest.part`, resuming and retrying; verified before the rename."""
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, retries + 1):
        try:
            fetch_once(url, part, spec.size, bar)
            break
        except Transient as e:
            if attempt == retries:
                raise _offline_error(url, str(e)) from None
            delay = backoff * 2 ** (attempt - 1)
            log.warning("%s: %s; retry %d/%d in %.0f s (resuming)", dest.name, e, attempt, retries - 1, delay)
            time.sleep(delay)
    try:
        verify(part, spec)
    except CamlocError:
        part.unlink()  # a finished download with the wrong bytes cannot be resumed into the right ones
        raise
    part.replace(dest)
    return dest


def obtain(name: str, spec: Archive, base_url: str, downloads: Path, archives: Path | None,
           retries: int, backoff: float, bar: Bar = no_bar, url: str | None = None) -> Path:
    """A verified local copy of archive `name`: from `archives`, from an earlier download, or fetched
    (from `url`, default `base_url/name`)."""
    if archives is not None:
        path = archives / name
        if not path.is_file():
            raise CamlocError(f"{path} is missing: put the dataset's archives ({name}) in {archives}, "
                              "or drop --archives (and dataset.archives) to download them")
        verify(path, spec)
        return path
    dest = downloads / name
    if dest.is_file():
        try:
            verify(dest, spec)
            log.info("%s already downloaded and verified", dest)
            return dest
        except CamlocError as e:
            log.warning("%s; downloading it again", e)
            dest.unlink()
    require_free(downloads, _missing_bytes(dest, spec), f"to download {name}")
    return download(url or base_url.rstrip("/") + "/" + name, dest, spec, retries, backoff, bar)


def _missing_bytes(dest: Path, spec: Archive) -> int:
    if dest.is_file():
        return 0 if dest.stat().st_size == spec.size else spec.size
    part = dest.with_name(dest.name + ".part")
    return spec.size - min(part.stat().st_size if part.exists() else 0, spec.size)


def fetch_pets(params: Params, out_dir: Path, archives: Path | None = None, *,
               table: dict[str, Archive] | None = None, downloads: Path | None = None,
               retries: int = 5, backoff: float = 2.0, bar: Bar = no_bar) -> str:
    """Oxford-IIIT Pet into `out_dir` (replaced atomically), from `archives` or downloaded to `downloads`
    (default: a `downloads/` folder beside `out_dir`); returns a one-line summary."""
    table = PETS_ARCHIVES if table is None else table
    downloads = downloads_dir(out_dir) if downloads is None else downloads
    downloads.mkdir(parents=True, exist_ok=True)
    if archives is not None and not archives.is_dir():
        raise CamlocError(f"--archives {archives} is not a folder; give the folder holding "
                          "images.tar.gz and annotations.tar.gz")
    if archives is None:  # say up front how much the whole download needs, not archive by archive
        require_free(downloads, sum(_missing_bytes(downloads / n, s) for n, s in table.items()),
                     "to download the Pets archives")
    paths = [obtain(n, s, params.dataset.base_url, downloads, archives, retries, backoff, bar)
             for n, s in table.items()]
    with replace_dir(out_dir, RAW_ENTRIES) as tmp:
        files = sum(safe_extract(p, tmp) for p in paths)
        missing = [p for p in ("images", "annotations/trainval.txt", "annotations/test.txt")
                   if not (tmp / p).exists()]
        if missing:
            raise CamlocError(f"the archives in {paths[0].parent} do not hold the Pets layout (missing "
                              f"{', '.join(missing)}); they are not the official archives")
    return f"pets: {files} files from {len(paths)} verified archives extracted into {out_dir}"


def fetch_cub(params: Params, out_dir: Path, archives: Path | None = None, *, spec: Archive | None = None,
              downloads: Path | None = None, retries: int = 5, backoff: float = 2.0, bar: Bar = no_bar) -> str:
    """CUB-200-2011 into `out_dir` (replaced atomically): CUB_200_2011.tgz from `archives` or downloaded
    from `dataset.cub.url` (resumed, MD5-checked), then safely extracted; returns a one-line summary."""
    from pipeline.datasets import cub

    spec = Archive(cub.ARCHIVE_MD5, cub.ARCHIVE_BYTES) if spec is None else spec
    downloads = downloads_dir(out_dir) if downloads is None else downloads
    downloads.mkdir(parents=True, exist_ok=True)
    if archives is not None and not archives.is_dir():
        raise CamlocError(f"--archives {archives} is not a folder; give the folder holding {cub.ARCHIVE}")
    path = obtain(cub.ARCHIVE, spec, "", downloads, archives, retries, backoff, bar, url=params.dataset.cub.url)
    with replace_dir(out_dir, RAW_ENTRIES) as tmp:
        files = safe_extract(path, tmp)
        missing = [f"{cub.TREE}/{p}" for p in ("images", *cub.OFFICIAL_FILES) if not (tmp / cub.TREE / p).exists()]
        if missing:
            raise CamlocError(f"{path} does not hold the CUB-200-2011 layout (missing {', '.join(missing)}); "
                              "it is not the official archive")
    return f"cub: {files} files from the verified {cub.ARCHIVE} extracted into {out_dir}"
