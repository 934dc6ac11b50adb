"""``matserve serve``: one process tree — tritonserver on loopback, the gateway in front.

The gateway starts at once so liveness answers while models load; readiness
follows Triton. SIGTERM/SIGINT: turn not-ready, let in-flight requests finish
(up to ``drain_timeout_s``), stop the gateway, stop Triton, exit 0. If Triton
dies, or one of its model processes (a Python-backend stub) does, turn not-ready,
answer the requests in flight with 503, and exit 1 so that an orchestrator
restarts the pod: Triton does not restart a dead stub, and a decoupled model's
requests would otherwise wait for answers that never come.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import uvicorn

from matserve.logs import configure_logging
from matserve.settings import OPTIONAL_MODELS, Settings
from matserve.tritonserver import (
    DEFAULT_MODEL_REPOSITORY,
    find_tritonserver,
    free_port,
    process_alive,
    python_stubs,
    render_model_repository,
    runtime_dir,
    start_tritonserver,
)

log = logging.getLogger("matserve.serve")

WATCH_INTERVAL_S = 0.25
TRITON_STOP_TIMEOUT_S = 30.0
FAILED_TRITON_STOP_TIMEOUT_S = 5.0


class GatewayServer(uvicorn.Server):
    """uvicorn, but signals are ours: we drain before we stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _die_with_parent() -> None:
    """Triton gets SIGTERM if this process dies without stopping it (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)
    except OSError:
        pass


def stop_process(process: subprocess.Popen, timeout_s: float = TRITON_STOP_TIMEOUT_S) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def run_gateway(settings: Settings, triton: subprocess.Popen, triton_grpc_port: int) -> int:
    from gateway.app import create_app

    app = create_app(settings, f"127.0.0.1:{triton_grpc_port}", triton.pid)
    server = GatewayServer(uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                                          timeout_graceful_shutdown=5))
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    serving = asyncio.create_task(server.serve())
    exit_code = 0
    stubs: dict[int, str] = {}  # taken once the models are loaded (the service has its limits)
    while not serving.done():
        failure = None
        if triton.poll() is not None:
            failure = f"tritonserver exited with code {triton.returncode}"
        elif not stubs and app.state.service_state.limits is not None:
            stubs = python_stubs(triton.pid)
        dead = [name for pid, name in stubs.items() if not process_alive(pid)]
        if failure is None and dead:
            failure = f"Triton model process {', '.join(dead)} died"
        if failure is not None:
            log.error("%s: not ready, failing the requests in flight, exiting", failure)
            app.state.service_state.triton_failed = True
            app.state.services.triton.fail(failure)
            exit_code = 1
            break
        if stop_requested.is_set():
            log.info("stop requested: draining")
            break
        await asyncio.sleep(WATCH_INTERVAL_S)
    if serving.done():  # the gateway could not start (e.g. port in use)
        return 1 if serving.exception() or not server.started else exit_code
    state = app.state.service_state
    state.draining = True
    deadline = time.monotonic() + settings.drain_timeout_s
    while state.http_in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    server.should_exit = True
    await serving
    return exit_code


def serve(settings: Settings | None = None) -> int:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    work_dir = runtime_dir(data_dir)
    installation = find_tritonserver(settings.tritonserver, work_dir)
    source = Path(settings.model_repository) if settings.model_repository else DEFAULT_MODEL_REPOSITORY
    repository = render_model_repository(source, work_dir / "model_repository", settings.device,
                                         forcefields=tuple(settings.served_forcefields),
                                         left_out=tuple(set(OPTIONAL_MODELS) - set(settings.served_models)))
    grpc_port = settings.triton_grpc_port or free_port()
    http_port = settings.triton_http_port or free_port()
    log.info("starting tritonserver %s (gRPC 127.0.0.1:%d)", installation.binary, grpc_port)
    triton = start_tritonserver(installation, repository, grpc_port, http_port, preexec_fn=_die_with_parent)
    exit_code = 1
    try:
        exit_code = asyncio.run(run_gateway(settings, triton, grpc_port))
    finally:
        # A Triton with a dead model process waits for it until its own timeout: do not wait as long.
        stop_process(triton, TRITON_STOP_TIMEOUT_S if exit_code == 0 else FAILED_TRITON_STOP_TIMEOUT_S)
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("stopped with exit code %d", exit_code)
    return exit_code
