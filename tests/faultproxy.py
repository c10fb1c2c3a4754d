"""A forwarding HTTP proxy on loopback that injects faults into chosen requests: it stands in
front of a real server (S3, MLflow) so a test can make exactly one kind of call fail."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# (method, path, forwarded status or None) -> (status, body) to answer instead, or None to pass
Rule = Callable[[str, str], tuple[int, bytes] | None]


class FaultProxy:
    def __init__(self, upstream: str, rule: Rule, *, after: bool = False, access_key: str | None = None) -> None:
        """With `after`, the request is forwarded first and the fault replaces the answer (the
        server did the work; the client never hears of it). With `access_key`, the proxy is an
        S3-compatible endpoint that checks credentials (as MinIO or R2 do): a request not signed
        with that access key is refused with 403 InvalidAccessKeyId."""
        target = urlsplit(upstream)
        self.rule, self.after, self.hits = rule, after, []
        self.refused = 0
        self.down = self.up = 0  # body bytes forwarded: GET answers, PUT/POST requests
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers `Expect: 100-continue`, as S3 does

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.rule(self.command, self.path)
                if access_key is not None and f"Credential={access_key}/" not in self.headers.get("Authorization", ""):
                    proxy.refused += 1
                    fault = (403, b"<Error><Code>InvalidAccessKeyId</Code></Error>")
                    return self._send(fault[0], {"Content-Type": "application/xml"}, fault[1])
                if fault is not None and not proxy.after:
                    proxy.hits.append((self.command, self.path))
                    return self._send(fault[0], {"Content-Type": "application/xml"}, fault[1])
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                headers["Host"] = target.netloc
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    status, upstream_headers = response.status, dict(response.getheaders())
                finally:
                    conn.close()
                if self.command in ("PUT", "POST"):
                    proxy.up += len(body)
                elif self.command == "GET":
                    proxy.down += len(data)
                if fault is not None:
                    proxy.hits.append((self.command, self.path))
                    return self._send(fault[0], {"Content-Type": "text/plain"}, fault[1])
                self._send(status, upstream_headers, data)

            def _send(self, status: int, headers: dict, body: bytes) -> None:
                self.send_response(status)
                upstream_length = next((v for k, v in headers.items() if k.lower() == "content-length"), None)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                # a HEAD answer has no body but tells the object's length
                length = upstream_length if self.command == "HEAD" and upstream_length else str(len(body))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        self.down = self.up = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


ACCESS_DENIED = (
    403,
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
)
