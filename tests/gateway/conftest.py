import tempfile
import time

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from matserve.settings import Settings
from tests.gateway.fakes import FakeTriton


def make_client(fake: FakeTriton, **settings) -> TestClient:
    defaults = {"batch_size": 64, "max_system_size": 50, "data_dir": tempfile.mkdtemp(prefix="matserve-test-")}
    app = create_app(Settings(**{**defaults, **settings}), "unused:0", triton=fake)
    return TestClient(app, raise_server_exceptions=False)


def wait_ready(client: TestClient, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/v1/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "gateway never became ready"
        time.sleep(0.02)


@pytest.fixture
def fake() -> FakeTriton:
    return FakeTriton()


@pytest.fixture
def client(fake):
    with make_client(fake) as test_client:
        wait_ready(test_client)
        yield test_client
