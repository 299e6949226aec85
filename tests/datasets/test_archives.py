"""Pets download against a real HTTP server on 127.0.0.1 serving generated archives."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.contracts import Paths
from pipeline.datasets import archives as dl
from pipeline.datasets.archives import Archive, fetch_pets
from pipeline.datasets.extract import member_problem, safe_extract
from pipeline.errors import CamlocError
from pipeline.params import DatasetParams, Params
from pipeline.stages import download


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _spec(data: bytes) -> Archive:
    return Archive(hashlib.md5(data).hexdigest(), len(data))


@pytest.fixture(scope="module")
def archives(synthpets_raw) -> dict[str, bytes]:
    """images.tar.gz / annotations.tar.gz of the tiny synthpets tree (the real archives' layout)."""
    out = {}
    for part in ("images", "annotations"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            tf.add(synthpets_raw / part, arcname=part)
        out[f"{part}.tar.gz"] = buf.getvalue()
    return out


class Server:
    """Serves `files` under /data/, redirects /moved/ there, honours Range; can cut or fail on demand."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.cut_once, self.fail_once, self.no_range = files, set(), set(), False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path.startswith("/moved/"):
                    self.send_response(302)
                    self.send_header("Location", "/data/" + self.path.split("/")[-1])
                    self.end_headers()
                    return
                name = self.path.split("/")[-1]
                if not self.path.startswith("/data/") or name not in server.files:
                    self.send_error(404)
                    return
                if name in server.fail_once:
                    server.fail_once.discard(name)
                    self.send_error(503)
                    return
                data, start = server.files[name], 0
                rng = self.headers.get("Range")
                if rng and not server.no_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in server.cut_once:  # promise everything, send half, hang up
                    server.cut_once.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(archives):
    s = Server(dict(archives))
    yield s
    s.close()


def _params(url: str) -> Params:
    return Params(dataset=DatasetParams(name="pets", base_url=url))


def _fetch(server, tmp_path, url_path="/moved/", **kw):
    table = {n: _spec(d) for n, d in server.files.items()} | kw.pop("table", {})
    return fetch_pets(_params(server.url + url_path), tmp_path / "raw", table=table,
                      downloads=tmp_path / "downloads", retries=kw.pop("retries", 3), backoff=0, **kw)


def test_download_follows_redirect_verifies_and_extracts(server, tmp_path, synthpets_raw):
    summary = _fetch(server, tmp_path)
    assert "verified" in summary
    raw = tmp_path / "raw"
    assert (raw / "annotations" / "trainval.txt").read_bytes() == \
        (synthpets_raw / "annotations" / "trainval.txt").read_bytes()
    assert len(list((raw / "images").iterdir())) == len(list((synthpets_raw / "images").iterdir()))
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == ["annotations.tar.gz", "images.tar.gz"]
    n = len(server.requests)
    _fetch(server, tmp_path)  # a rerun reuses the verified archives: no new request
    assert len(server.requests) == n


def test_cut_off_download_resumes_to_the_right_bytes(server, tmp_path, archives):
    server.cut_once.add("images.tar.gz")
    server.fail_once.add("annotations.tar.gz")  # a 503 is retried too
    _fetch(server, tmp_path)
    assert (tmp_path / "downloads" / "images.tar.gz").read_bytes() == archives["images.tar.gz"]
    ranges = [r for p, r in server.requests if p.endswith("images.tar.gz") and r]
    half = (len(archives["images.tar.gz"])) // 2
    assert ranges and ranges[0] == f"bytes={half}-"  # resumed, not restarted


def test_resume_from_a_leftover_part_file(server, tmp_path, archives):
    data = archives["images.tar.gz"]
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "images.tar.gz.part").write_bytes(data[:1000])
    _fetch(server, tmp_path)
    assert (tmp_path / "downloads" / "images.tar.gz").read_bytes() == data
    assert ("/data/images.tar.gz", "bytes=1000-") in server.requests


def test_server_without_range_support_restarts_cleanly(server, tmp_path, archives):
    server.no_range = True
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "images.tar.gz.part").write_bytes(b"x" * 50)
    _fetch(server, tmp_path)
    assert (tmp_path / "downloads" / "images.tar.gz").read_bytes() == archives["images.tar.gz"]


def test_wrong_checksum_extracts_nothing(server, tmp_path):
    bad = {"images.tar.gz": Archive("0" * 32, len(server.files["images.tar.gz"]))}
    with pytest.raises(CamlocError, match="MD5 .* expected 0{32}"):
        _fetch(server, tmp_path, table=bad)
    assert not (tmp_path / "raw").exists()
    assert not (tmp_path / "downloads" / "images.tar.gz").exists()
    assert not (tmp_path / "downloads" / "images.tar.gz.part").exists()


def test_http_404_names_the_url_and_key(server, tmp_path):
    with pytest.raises(CamlocError, match="HTTP 404.*dataset.base_url"):
        _fetch(server, tmp_path, url_path="/nothing-here/")


def test_no_network_and_no_archives_says_both_ways_out(tmp_path):
    with pytest.raises(CamlocError) as e:
        fetch_pets(_params("http://127.0.0.1:9/"), tmp_path / "raw", downloads=tmp_path / "dl",
                   retries=2, backoff=0)
    msg = str(e.value)
    assert "connect to the network" in msg and "--archives DIR" in msg and "dataset.archives" in msg
    assert "\n" not in msg


def test_offline_archives_folder(archives, tmp_path, synthpets_raw):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, data in archives.items():
        (folder / name).write_bytes(data)
    table = {n: _spec(d) for n, d in archives.items()}
    params = Params(dataset=DatasetParams(name="pets", base_url="http://127.0.0.1:9/", archives=str(folder)))
    dl.PETS_ARCHIVES, saved = table, dl.PETS_ARCHIVES
    try:
        summary = download.run(params, Paths(raw=tmp_path / "raw"))
    finally:
        dl.PETS_ARCHIVES = saved
    assert "extracted" in summary and (tmp_path / "raw" / "annotations" / "test.txt").is_file()
    assert sorted(p.name for p in folder.iterdir()) == sorted(archives)  # the user's files untouched
    data = archives["images.tar.gz"]
    (folder / "images.tar.gz").write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(CamlocError, match="images.tar.gz has MD5"):
        fetch_pets(params, tmp_path / "raw2", folder, table=table, downloads=tmp_path / "dl")
    (folder / "images.tar.gz").unlink()
    with pytest.raises(CamlocError, match="images.tar.gz is missing"):
        fetch_pets(params, tmp_path / "raw2", folder, table=table, downloads=tmp_path / "dl")


def _evil(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ok = tarfile.TarInfo("images/fine.jpg")
        ok.size = 3
        tf.addfile(ok, io.BytesIO(b"abc"))
        info = tarfile.TarInfo({"abs": "/tmp/camloc-evil.txt", "dotdot": "images/../../evil.txt"}.get(kind, "images/x"))
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "../../outside"
        elif kind == "device":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        else:
            info.size = 4
        tf.addfile(info, io.BytesIO(b"evil") if info.isfile() else None)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["abs", "dotdot", "symlink", "hardlink", "device", "fifo"])
def test_escaping_members_rejected_before_anything_is_written(tmp_path, kind):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_evil(kind))
    dest = tmp_path / "a" / "b"
    with pytest.raises(CamlocError, match="nothing was extracted"):
        safe_extract(archive, dest)
    assert not dest.exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz"]


def test_escaping_archive_served_over_http(server, tmp_path):
    server.files["images.tar.gz"] = _evil("dotdot")
    with pytest.raises(CamlocError, match="'..'"):
        _fetch(server, tmp_path)
    assert not (tmp_path / "raw").exists() and not (tmp_path / "evil.txt").exists()


def test_member_problem_accepts_plain_members():
    assert member_problem(tarfile.TarInfo("annotations/xmls/a.xml")) is None
    assert member_problem(tarfile.TarInfo("C:/windows")) is not None


def test_not_enough_space_says_how_much(server, tmp_path, monkeypatch):
    import shutil as sh

    monkeypatch.setattr(sh, "disk_usage", lambda p: sh._ntuple_diskusage(10**9, 10**9 - 10, 10))
    with pytest.raises(CamlocError, match=r"needs .* MB free in .*only 0.0 MB available"):
        _fetch(server, tmp_path)


def test_corrupt_archive_is_a_clear_error(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(CamlocError, match="not a readable tar archive"):
        safe_extract(tmp_path / "x.tar.gz", tmp_path / "out")


def test_user_folder_is_never_replaced(archives, tmp_path):
    folder = tmp_path / "arch"
    folder.mkdir()
    for name, data in archives.items():
        (folder / name).write_bytes(data)
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(CamlocError, match="holiday.jpg"):
        fetch_pets(_params("http://127.0.0.1:9/"), out, folder,
                   table={n: _spec(d) for n, d in archives.items()}, downloads=tmp_path / "dl")
    assert (out / "holiday.jpg").read_bytes() == b"precious"




def test_complete_part_file_is_verified_not_downloaded_again(server, tmp_path, archives):
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "images.tar.gz.part").write_bytes(archives["images.tar.gz"])
    _fetch(server, tmp_path)
    assert not [p for p, _ in server.requests if p.endswith("images.tar.gz")]
    assert (tmp_path / "downloads" / "images.tar.gz").read_bytes() == archives["images.tar.gz"]
