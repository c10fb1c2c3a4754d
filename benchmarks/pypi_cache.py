"""PyPI on loopback for the benchmarks: a caching proxy of PyPI's simple index and files.

Both sides of a benchmark install the same kind of packages from PyPI, and on this machine the
download from PyPI takes anywhere from 2 to 15 s for the same 100 MB, from one minute to the next:
more than the difference being measured. Served from here, once a warm-up has filled the folder, a
download costs what reading a local file costs, the same for both sides: the model of a runner whose
network is not the bottleneck (GitHub's hosted runners reach PyPI's CDN at hundreds of MB/s).

Every index page and file the jobs ask for is fetched once from PyPI and kept in `folder` (kept
across runs); index pages are served with the file links pointing here. uv's requests pass through
unchanged otherwise: its JSON or HTML index (by the Accept header), PEP 658 `.metadata` files, and
byte ranges.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

INDEX = "https://pypi.org/simple/"
FILES = "https://files.pythonhosted.org/"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class UpstreamError(Exception):
    """PyPI answered with another status than 200 (the proxy answers with the same)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class PyPICache:
    """`url` is the index to give uv (`UV_DEFAULT_INDEX`); `fetched` counts the upstream requests."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.fetched = 0
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        cache = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self.serve(head=True)

            def do_GET(self) -> None:
                self.serve(head=False)

            def serve(self, *, head: bool) -> None:
                try:
                    if self.path.startswith("/simple/"):
                        accept = self.headers.get("Accept", "")
                        body_path, kind = cache.index(self.path.removeprefix("/simple/"), accept)
                        body = body_path.read_bytes().replace(FILES.encode(), f"{cache.url.removesuffix('simple/')}files/".encode())
                        self.reply(200, body, kind, head=head)
                    elif self.path.startswith("/files/"):
                        self.send_file(cache.file(self.path.removeprefix("/files/")), head=head)
                    else:
                        self.reply(404, b"not found", "text/plain", head=head)
                except UpstreamError as error:
                    self.reply(error.status, b"upstream error", "text/plain", head=head)
                except requests.RequestException:  # PyPI unreachable (after the retries)
                    self.reply(502, b"upstream unreachable", "text/plain", head=head)

            def reply(self, code: int, body: bytes, kind: str, *, head: bool) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=600, public")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def send_file(self, path: Path, *, head: bool) -> None:
                size = path.stat().st_size
                start, end = 0, size - 1
                wanted = _RANGE.match(self.headers.get("Range", "").strip())
                if wanted:
                    first, last = wanted.groups()
                    if first:
                        start, end = int(first), min(int(last), size - 1) if last else size - 1
                    else:  # the last N bytes
                        start = max(0, size - int(last))
                self.send_response(206 if wanted else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                if wanted:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Cache-Control", "max-age=365000000, immutable, public")
                self.end_headers()
                if head:
                    return
                with path.open("rb") as source:
                    source.seek(start)
                    left = end - start + 1
                    while left > 0:
                        chunk = source.read(min(left, 1 << 20))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        left -= len(chunk)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up: nothing to report
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/simple/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _fetch(self, url: str, target: Path, headers: dict[str, str]) -> str:
        """Download `url` into `target` once (a lock per file; a partial file never counts)."""
        with self._lock:
            lock = self._locks.setdefault(str(target), threading.Lock())
        with lock:
            kind_file = target.with_name(target.name + ".type")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                for attempt in range(4):  # this machine's name lookups fail now and then under load
                    try:
                        with requests.get(url, headers=headers, stream=True, timeout=300) as response:
                            if response.status_code != 200:
                                raise UpstreamError(response.status_code)
                            partial = target.with_name(target.name + ".part")
                            with partial.open("wb") as out:
                                for chunk in response.iter_content(1 << 20):
                                    out.write(chunk)
                            kind_file.write_text(response.headers.get("Content-Type", "application/octet-stream"))
                            partial.replace(target)
                        break
                    except requests.RequestException:
                        if attempt == 3:
                            raise
                        time.sleep(0.5 * (attempt + 1))
                with self._lock:
                    self.fetched += 1
            return kind_file.read_text() if kind_file.exists() else "application/octet-stream"

    def index(self, name: str, accept: str) -> tuple[Path, str]:
        key = hashlib.sha256(accept.encode()).hexdigest()[:12]
        target = self.folder / "simple" / name.strip("/").replace("/", "_") / key
        kind = self._fetch(f"{INDEX}{name}", target, {"Accept": accept} if accept else {})
        return target, kind

    def file(self, path: str) -> Path:
        if ".." in Path(path).parts:
            raise UpstreamError(404)
        target = self.folder / "files" / path
        self._fetch(f"{FILES}{path}", target, {})
        return target

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
