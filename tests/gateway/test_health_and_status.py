from gateway.property_models import load_registry
from matserve.alignn.checkpoint import EMBEDDED_DIR
from matserve.contract import sha256_file
from tests.gateway.conftest import make_client
from tests.gateway.fakes import FakeTriton

MODELS = 2 + len(load_registry())  # forcefield, generator and every property model


def test_live_never_asks_triton():
    with make_client(FakeTriton(ready=False)) as client:
        response = client.get("/v1/health/live")
        assert response.status_code == 200
        assert response.json() == {"status": "live"}


def test_not_ready_while_triton_is_not():
    with make_client(FakeTriton(ready=False)) as client:
        response = client.get("/v1/health/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "not ready", "backends_alive": 0, "backends_total": MODELS,
                                   "backends_not_ready": ["forcefield", "generator", "mfd", "alignn", "plmf"]}
        assert response.headers["retry-after"] == "5"


def test_ready_when_models_are(client):
    response = client.get("/v1/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "backends_alive": MODELS, "backends_total": MODELS}


def test_draining_turns_not_ready(client):
    client.app.state.service_state.draining = True
    assert client.get("/v1/health/ready").json()["status"] == "not ready"
    response = client.post("/v1/infer", json={"atoms": [{"coord": [0, 0, 0, 0, 0, 1], "numbers": [1, 1]}]})
    assert response.status_code == 503
    assert response.json()["error"] == "not ready: draining"


def test_status_counts_requests_and_tasks(client):
    body = {"atoms": [{"coord": [0, 0, 0, 0, 0, 1], "numbers": [1, 1]}] * 3}
    assert client.post("/v1/infer", json=body).status_code == 200
    status = client.get("/v1/status").json()
    assert status["total"] == {
        "tasks_received": 3, "tasks_completed": 3, "queue_size_atoms": 0, "queue_size_tasks": 0,
        "requests_received": 1, "requests_completed": 1, "requests_in_progress": 0, "max_system_size": 50,
    }
    (worker,) = status["workers"]
    assert set(worker) == {"device", "tasks_received", "tasks_completed", "queue_size_atoms", "queue_size_tasks",
                           "batch_size", "max_batch_size", "gpu_model"}
    assert worker["device"] == "cpu" and worker["batch_size"] == 64 and worker["tasks_completed"] == 3
    assert worker["gpu_model"]  # the CPU's name on a CPU host


def test_metrics_are_prometheus_text_with_routes_and_queues(client):
    client.get("/v1/health/live")
    text = client.get("/v1/metrics").text
    assert 'matserve_requests_total{method="GET",route="/v1/health/live",status="200"} 1.0' in text
    assert "matserve_request_duration_seconds_bucket" in text
    assert "matserve_queue_size_atoms 0.0" in text
    assert "matserve_queue_size_tasks 0.0" in text


def test_metadata_names_weights_with_checksum(client):
    body = client.get("/v1/metadata").json()
    assert body["name"] == "matserve"
    model, generator, alignn, mfd, plmf = body["models"]
    assert [m["name"] for m in body["models"]] == ["forcefield", "generator/small", "alignn", "mfd", "plmf"]
    assert mfd["weights"] == model["weights"]  # phonons from the served force field
    assert plmf["weights"]["name"] == "embedded plmf/models (8 LightGBM models)"
    assert len(plmf["weights"]["sha256"]) == 64
    assert generator["name"] == "generator/small" and generator["weights"]["file"] == "small.pt"
    assert alignn["weights"]["name"] == "embedded formation_energy/checkpoint_final.pt"
    assert alignn["weights"]["sha256"] == sha256_file(EMBEDDED_DIR / "checkpoint_final.pt")
    assert model["name"] == "forcefield"
    assert model["weights"]["name"] == "CHGNet 0.3.0"
    assert model["weights"]["file"].endswith(".pth.tar")
    assert len(model["weights"]["sha256"]) == 64


def test_request_id_is_echoed(client):
    response = client.get("/v1/health/live", headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert len(client.get("/v1/health/live").headers["x-request-id"]) == 32


def test_each_request_is_logged_with_its_request_id(client, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="matserve.access"):
        client.get("/v1/health/live", headers={"X-Request-Id": "req-42"})
    (record,) = [r for r in caplog.records if r.name == "matserve.access"]
    assert (record.request_id, record.method, record.path, record.status) == ("req-42", "GET", "/v1/health/live", 200)
    assert record.duration_ms >= 0


def test_metadata_of_a_missing_configured_checkpoint_has_no_checksum():
    with make_client(FakeTriton(), generator_medium="/nonexistent/ckpt.pt") as client:
        response = client.get("/v1/metadata")
    assert response.status_code == 200
    (medium,) = [m for m in response.json()["models"] if m["name"] == "generator/medium"]
    assert medium["weights"] == {"name": "configured nonexistent/ckpt.pt", "file": "ckpt.pt", "sha256": None}
