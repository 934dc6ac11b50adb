"""/v1/generate through the real Triton generator model, serving the embedded weights as `small`."""

import threading
import time

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


def test_the_embedded_small_model_writes_cifs(service):
    body = {"model": "small", "message": {"comp": "NaCl", "z": 4, "sg": "Fm-3m"}, "n": 4, "all": True, "seed": 0}
    cifs = service.post("/v1/generate", json=body).json()["cifs"]
    assert len(cifs) == 4
    for entry in cifs:  # every candidate ended and was post-processed into a CIF with the full operator loop
        assert entry["generated"].startswith("data_Na4Cl4\n") and "_symmetry_equiv_pos_as_xyz" in entry["generated"]
        assert not any(m and m.startswith("cif:") for m in entry["messages"])


def test_an_unconfigured_model_is_400_naming_the_available_ones(service):
    response = service.post("/v1/generate", json={**SEED_EXAMPLE, "model": "large"})
    assert response.status_code == 400
    assert response.json()["error"] == "model 'large' is not available; models available: small"


def generator_counts(service) -> tuple[int, int]:
    """Triton's (requests, executions) of the generator model so far."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{service.triton_grpc_port}")
    try:
        (stats,) = client.get_inference_statistics("generator", as_json=True)["model_stats"]
    finally:
        client.close()
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def test_concurrent_requests_are_sampled_in_one_batch(service):
    busy = {"model": "small", "message": {"comp": "Si"}, "n": 4, "all": True, "seed": 3}  # 6 Z values x 4: 24 prompts
    bodies = [{"model": "small", "message": {"comp": "NaCl", "z": 4, "sg": "Fm-3m"}, "seed": 1},
              {"model": "small", "message": {"comp": "BaTe", "z": 4}, "seed": 2, "all": True}]
    alone = [service.post("/v1/generate", json=body).json() for body in bodies]

    answers: dict[str, dict] = {}

    def post(name: str, body: dict) -> None:
        answers[name] = service.post("/v1/generate", json=body).json()

    before = generator_counts(service)
    threads = [threading.Thread(target=post, args=("busy", busy))]
    threads[0].start()
    time.sleep(0.5)  # the busy request is being sampled; the next two queue behind it
    threads += [threading.Thread(target=post, args=(str(i), body)) for i, body in enumerate(bodies)]
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    requests, executions = (after - start for after, start in zip(generator_counts(service), before))

    assert requests == 3 and executions == 2  # the busy request, then the two queued ones together
    assert [answers["0"], answers["1"]] == alone  # each kept its own seed inside the shared batch
    assert len(answers["busy"]["cifs"]) == 24


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


def test_fe_is_the_alignn_formation_energy_of_the_generated_cif(service):
    from pymatgen.core import Structure

    from matserve.alignn.predictor import FormationEnergyModel
    from matserve.structures import System

    body = {"model": "small", "message": {"comp": "NaCl", "z": 4, "sg": "Fm-3m"}, "n": 8, "all": True, "seed": 0,
            "fe": True}
    cifs = service.post("/v1/generate", json=body).json()["cifs"]
    with_fe = [entry for entry in cifs if "fe" in entry]  # those whose CIF pymatgen reads
    assert with_fe
    for entry in with_fe:
        generated = System.from_pymatgen(Structure.from_str(entry["generated"], fmt="cif"))
        assert entry["fe"] == pytest.approx(float(FormationEnergyModel().predict([generated])[0]), abs=1e-5)
        assert -5 < entry["fe"] < 5  # eV/atom; how good the number is depends on the generated cell
    for entry in cifs:
        if "fe" not in entry:
            assert any(m and m.startswith("fe:") for m in entry["messages"])
