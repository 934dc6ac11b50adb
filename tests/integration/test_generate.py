"""/v1/generate through the real Triton generator model (a small random-weight checkpoint in CrystaLLM's format)."""

import pytest

pytestmark = pytest.mark.integration

SEED_EXAMPLE = {"model": "small", "message": {"comp": "Ba2MnCr", "z": 3, "sg": "R-3m"}}


def test_seed_example_has_the_documented_shape_and_is_reproducible(service):
    first = service.post("/v1/generate", json={**SEED_EXAMPLE, "seed": 7})
    assert first.status_code == 200
    (entry,) = first.json()["cifs"]
    assert set(entry) == {"input", "generated", "valid", "messages"}
    assert entry["input"] == {"comp": "Ba2Mn1Cr1", "z": 3, "sg": "R-3m"}
    assert entry["generated"].startswith("data_Ba6Mn3Cr3\n")
    assert isinstance(entry["valid"], bool) and len(entry["messages"]) >= 1
    again = service.post("/v1/generate", json={**SEED_EXAMPLE, "seed": 7}).json()
    assert again == first.json()


def test_an_unconfigured_model_is_400_naming_the_available_ones(service):
    response = service.post("/v1/generate", json={**SEED_EXAMPLE, "model": "large"})
    assert response.status_code == 400
    assert response.json()["error"] == "model 'large' is not available; models available: small"


def test_cli_and_client_generate(service):
    import json
    import subprocess
    import sys

    from matserve.client import MatserveClient

    done = subprocess.run([sys.executable, "-m", "matserve.cli", "generate", "--comp", "NaCl", "--z", "4",
                           "--url", service.url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cifs"][0]["input"] == {"comp": "Na1Cl1", "z": 4}
    with MatserveClient(service.url) as client:
        assert client.generate("NaCl", 4, "Fm-3m")["cifs"][0]["input"]["sg"] == "Fm-3m"
