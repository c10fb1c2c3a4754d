"""A DVC HTTP remote on loopback with HTTP basic authentication, as a team would serve one behind a
web server (or DagsHub's basic auth): HEAD and GET serve objects, POST and PUT store them. Every
request without the right credentials gets 401, and is counted."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HttpRemote:
    def __init__(self, root: Path, user: str, password: str) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.refused = 0
        self.stored: list[str] = []
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _path(self) -> Path | None:
                relative = self.path.split("?", 1)[0].lstrip("/")
                target = (remote.root / relative).resolve()
                return target if target.is_relative_to(remote.root.resolve()) else None

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == remote.expected:
                    return True
                remote.refused += 1
                self._drain()
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="dvc"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def _drain(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return body
                        body += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _read(self, head: bool) -> None:
                if not self._authorized():
                    return
                target = self._path()
                if target is None or not target.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:
                self._read(head=True)

            def do_GET(self) -> None:
                self._read(head=False)

            def _write(self) -> None:
                if not self._authorized():
                    return
                target = self._path()
                body = self._drain()
                if target is None:
                    self.send_response(400)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(body)
                    remote.stored.append(self.path)
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _write
            do_PUT = _write

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
