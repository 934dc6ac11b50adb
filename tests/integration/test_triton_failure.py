"""If Triton dies, the gateway turns not-ready and ``matserve serve`` exits non-zero."""

import os
import signal
import time

import httpx
import pytest

from tests.integration.conftest import start_service, stop, wait_until_ready

pytestmark = pytest.mark.integration


def test_triton_death_makes_the_service_not_ready_and_exit_non_zero(tmp_path):
    service = start_service(tmp_path, MATSERVE_BATCH_SIZE="256")  # a set budget skips the start-up probe
    try:
        wait_until_ready(service)
        os.kill(service.triton_pid(), signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            assert service.get("/v1/health/ready", timeout=5).status_code == 503
        except httpx.TransportError:
            pass  # already gone: that is also not ready
        assert service.process.wait(timeout=15) != 0
        assert time.monotonic() - killed_at < 10
    finally:
        stop(service)
