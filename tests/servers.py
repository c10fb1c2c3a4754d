"""Real servers on loopback for the test bed: S3 (moto) and MLflow with the model registry.

Each runs in its own process group, is waited on until it answers, and is stopped by killing
that group (never by name). `Server.stop` asserts that nothing of the group is left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        # Every process of the group must be gone (workers included).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(self.proc.pid, signal.SIGKILL)
        raise AssertionError(f"{self.name}: processes of group {self.proc.pid} were left behind")


def _start(name: str, argv: list[str], env: dict[str, str], log: Path, ready_url: str, timeout: float) -> Server:
    handle = log.open("wb")
    proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    handle.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if requests.get(ready_url, timeout=1).status_code < 500:
                return Server(name, ready_url.rsplit("/", 1)[0] if name == "mlflow" else ready_url, proc, log)
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server = Server(name, ready_url, proc, log)
    server.stop()
    raise RuntimeError(f"{name} did not answer within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_moto(workdir: Path) -> Server:
    port = free_port()
    env = {**os.environ, **AWS_ENV}
    url = f"http://127.0.0.1:{port}"
    return _start(
        "moto",
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env,
        workdir / "moto.log",
        url,
        timeout=30,
    )


def start_mlflow(workdir: Path, s3_url: str, bucket: str) -> Server:
    port = free_port()
    env = {
        **os.environ,
        **AWS_ENV,
        "MLFLOW_S3_ENDPOINT_URL": s3_url,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    argv = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        f"s3://{bucket}/mlflow",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = _start("mlflow", argv, env, workdir / "mlflow.log", f"http://127.0.0.1:{port}/health", timeout=90)
    server.url = f"http://127.0.0.1:{port}"
    return server
