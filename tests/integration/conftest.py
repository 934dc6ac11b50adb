"""One real ``matserve serve`` (tritonserver + gateway) for the whole test session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gateway.limits import descendant_pids
from matserve.tritonserver import free_port

STARTUP_TIMEOUT_S = 240
QUEUE_ATOMS = 64
FORCEFIELDS = ("chgnet", "sevennet")  # two in one deployment; the default first


@dataclass
class Service:
    process: subprocess.Popen
    url: str
    triton_grpc_port: int
    log_path: Path
    ready_codes_seen: list[int] = field(default_factory=list)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return httpx.post(self.url + path, timeout=kwargs.pop("timeout", 300), **kwargs)

    def triton_pid(self) -> int:
        for pid in descendant_pids(self.process.pid):
            try:
                if b"tritonserver" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                    return pid
            except OSError:
                continue
        raise RuntimeError("no tritonserver child")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def start_service(tmp_path: Path, **env: str) -> Service:
    port, grpc_port = free_port(), free_port()
    log_path = tmp_path / f"serve-{port}.log"
    environment = {
        **os.environ,
        "MATSERVE_PORT": str(port),
        "MATSERVE_TRITON_GRPC_PORT": str(grpc_port),
        "MATSERVE_DATA_DIR": str(tmp_path / "data"),
        "MATSERVE_DRAIN_TIMEOUT_S": "120",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "matserve.cli", "serve"], env=environment,
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    return Service(process, f"http://127.0.0.1:{port}", grpc_port, log_path)


def wait_until_ready(service: Service) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"matserve serve exited with {service.process.returncode}:\n{service.log()}")
        try:
            code = service.get("/v1/health/ready", timeout=5).status_code
            service.ready_codes_seen.append(code)
            if code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {STARTUP_TIMEOUT_S} s:\n{service.log()}")


def stop(service: Service) -> None:
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Service:
    # No checkpoint configured: the generator serves its embedded weights as `small`. A small
    # relaxation queue (64 atoms) lets test_online_batching overfill it with a few crystals;
    # the other tests send one request at a time, which an empty queue always admits. Two
    # force fields: CHGNet (the default, which the other tests use) and SevenNet-0.
    running = start_service(tmp_path_factory.mktemp("serve"), MATSERVE_GENERATOR_SMALL="",
                            MATSERVE_QUEUE_ATOMS=str(QUEUE_ATOMS), MATSERVE_FORCEFIELDS=",".join(FORCEFIELDS))
    try:
        wait_until_ready(running)
        yield running
    finally:
        stop(running)
