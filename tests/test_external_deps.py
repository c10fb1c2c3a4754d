"""A stage that depends on data outside the repository by its URL (`deps: [https://.../wine.data]`,
as `dvc import-url` and hand-written download stages do): what it downloads changes outside git,
so the lock check neither goes to the network for it nor calls it stale, and names it as written.
The server is real (loopback HTTP, stopped or changed between the lock and the check)."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lockstep import dvcrepo

from conftest import _rebind_dvc_logging, git
from localbed import _dvc_repo

pytestmark = pytest.mark.unit


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        self.server.requests += 1  # type: ignore[attr-defined]
        return super().send_head()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "upstream"
    root.mkdir()
    (root / "wine.data").write_text("1,14.23,1.71\n2,13.2,1.78\n")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.requests = 0  # type: ignore[attr-defined]
    yield httpd, root
    httpd.shutdown()
    httpd.server_close()


def project(tmp_path: Path, url: str) -> Path:
    from dvc.repo import Repo

    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "download.py").write_text(
        "import sys, urllib.request\nurllib.request.urlretrieve(sys.argv[1], 'raw.csv')\n")
    (folder / "src" / "count.py").write_text("rows = open('raw.csv').read().splitlines()\nopen('rows.txt', 'w').write(str(len(rows)))\n")
    (folder / "dvc.yaml").write_text(
        "stages:\n"
        "  download:\n"
        f"    cmd: python src/download.py {url}\n"
        f"    deps: [{url}, src/download.py]\n"
        "    outs: [raw.csv]\n"
        "  count:\n"
        "    cmd: python src/count.py\n"
        "    deps: [raw.csv, src/count.py]\n"
        "    outs: [rows.txt]\n")
    git("init", "-q", "-b", "main", str(folder), cwd=tmp_path)
    _rebind_dvc_logging()
    Repo.init(str(folder)).close()
    with _dvc_repo(folder) as repo:
        repo.reproduce()
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", "download and count", cwd=folder)
    return folder


def stale(folder: Path) -> list[str]:
    return [s.describe() for s in dvcrepo.stale_stages(dvcrepo.open_repo(folder))]


def test_a_url_dependency_is_not_stale_when_its_server_is_gone_or_its_file_changed(tmp_path, server):
    httpd, root = server
    url = f"http://127.0.0.1:{httpd.server_address[1]}/wine.data"
    folder = project(tmp_path, url)
    lock = (folder / "dvc.lock").read_text()
    assert url in lock  # DVC recorded the file's state at the server (its ETag or checksum)

    (root / "wine.data").write_text("1,14.23,1.71\n2,13.2,1.78\n3,13.16,2.36\n")  # upstream moved on
    httpd.requests = 0
    assert stale(folder) == []
    assert httpd.requests == 0  # the check asked the server nothing
    httpd.shutdown()  # and CI cannot reach it at all
    httpd.server_close()
    assert stale(folder) == []

    # code is still compared: the download script changed without a new lock
    (folder / "src" / "download.py").write_text("# retries\n" + (folder / "src" / "download.py").read_text())
    assert stale(folder) == ["stage 'download' would re-run because src/download.py was modified"]


def test_a_url_dependency_the_lock_does_not_have_yet_is_named_as_written(tmp_path, server):
    httpd, _root = server
    url = f"http://127.0.0.1:{httpd.server_address[1]}/wine.data"
    folder = project(tmp_path, url)
    other = f"http://127.0.0.1:{httpd.server_address[1]}/names.txt"
    text = (folder / "dvc.yaml").read_text().replace(f"deps: [{url}, ", f"deps: [{url}, {other}, ")
    (folder / "dvc.yaml").write_text(text)
    # the URL as dvc.yaml writes it, not made a path (`../http:/127.0.0.1:.../names.txt`)
    assert stale(folder) == [f"stage 'download' would re-run because {other} is a dependency in dvc.yaml but not in dvc.lock"]
