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


def post_in_background(service, body: dict, answers: dict, name: str) -> threading.Thread:
    """POST in a thread; answers[name] = (monotonic time it returned, JSON body)."""
    def post() -> None:
        response = service.post("/v1/generate", json=body)
        answers[name] = (time.monotonic(), response.json())

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_concurrent_requests_are_sampled_in_one_batch(service):
    busy = {"model": "small", "message": {"comp": "Si"}, "n": 4, "all": True, "seed": 3}  # 6 Z values x 4: 24 prompts
    bodies = [{"model": "small", "message": {"comp": "NaCl", "z": 4, "sg": "Fm-3m"}, "seed": 1},
              {"model": "small", "message": {"comp": "BaTe", "z": 4}, "seed": 2, "all": True}]
    alone = [service.post("/v1/generate", json=body).json() for body in bodies]

    answers: dict[str, tuple[float, dict]] = {}
    before = generator_counts(service)
    threads = [post_in_background(service, busy, answers, "busy")]
    time.sleep(0.5)  # the busy request is being sampled; the next two join its running batch
    threads += [post_in_background(service, body, answers, str(i)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.join(timeout=300)
    requests, executions = (after - start for after, start in zip(generator_counts(service), before))

    assert requests == 3 and executions == 3  # one execute() per request: each hands its prompts to the loop
    assert [answers["0"][1], answers["1"][1]] == alone  # each kept its own seed inside the shared batch
    assert len(answers["busy"][1]["cifs"]) == 24
    assert max(answers["0"][0], answers["1"][0]) < answers["busy"][0]  # neither waited for the busy batch


def test_a_short_request_overtakes_a_long_batch_with_its_solo_text(service):
    long = {"model": "small", "message": {"comp": "Ba2MnCr", "z": 3}, "n": 8, "all": True, "seed": 4}  # 12-atom cells
    short = {"model": "small", "message": {"comp": "NaCl", "z": 1}, "seed": 5}
    alone = service.post("/v1/generate", json=short).json()

    answers: dict[str, tuple[float, dict]] = {}
    slow = post_in_background(service, long, answers, "long")
    time.sleep(1.0)  # the long request's eight prompts are sampling
    quick = post_in_background(service, short, answers, "short")
    quick.join(timeout=120)
    slow.join(timeout=120)
    short_done, shared = answers["short"]
    long_done, long_answer = answers["long"]
    assert short_done < long_done
    assert shared == alone  # exactly its solo text, for the same seed
    assert len(long_answer["cifs"]) == 8


def test_a_cancelled_request_leaves_the_batch(service):
    """Through the gateway's Triton client: a generate call abandoned while it samples (its
    stream closed) makes Triton cancel the request, and the model drops its sequences."""
    import asyncio

    from gateway.triton_client import TritonClient
    from matserve.generator.prompt import build_prompt

    async def abandon() -> None:
        client = TritonClient(f"127.0.0.1:{service.triton_grpc_port}")
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.generate("small", [build_prompt("Ba2MnCr", 3)] * 16, seed=6), 2.0)
        finally:
            await client.close()

    asyncio.run(abandon())
    deadline = time.monotonic() + 15
    while ": cancelled by its caller" not in service.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the model never dropped the abandoned sequences"
        time.sleep(0.2)


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


def test_relaxed_candidates_come_lowest_energy_first(service, tmp_path):
    import subprocess
    import sys

    from pymatgen.core import Structure

    body = {"model": "small", "message": {"comp": "NaCl", "z": 2}, "n": 4, "seed": 0, "relax": True, "all": True}
    cifs = service.post("/v1/generate", json=body).json()["cifs"]
    assert len(cifs) == 4
    relaxed = [entry for entry in cifs if "relaxed" in entry]
    assert relaxed and cifs[:len(relaxed)] == relaxed  # the relaxed ones first, then those that could not be
    for entry in relaxed:
        structure = Structure.from_str(entry["relaxed"], fmt="cif")
        assert structure.composition.reduced_formula == "NaCl" and entry["relaxed"].startswith("data_Na")
        assert -6 < entry["energy_per_atom"] < -2 and isinstance(entry["relax_converged"], bool)  # CHGNet, eV/atom
    for valid in (True, False):  # valid after relaxation first, each group by energy
        energies = [e["energy_per_atom"] for e in relaxed if e["validity"]["valid"] is valid]
        assert energies == sorted(energies)
    assert [e["validity"]["valid"] for e in relaxed] == sorted((e["validity"]["valid"] for e in relaxed), reverse=True)
    for entry in cifs[len(relaxed):]:
        assert any(m and m.startswith("relax: ") for m in entry["messages"])

    out = tmp_path / "best.cif"  # the CLI, through MatserveClient.generate(..., relax=True): the best one
    done = subprocess.run([sys.executable, "-m", "matserve.cli", "generate", "--comp", "Si", "--z", "2", "--n", "2",
                           "--seed", "1", "--relax", "--out", str(out), "--url", service.url],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("1\tSi2\t") and " eV/atom\t" in done.stdout
    assert Structure.from_file(out).composition.reduced_formula == "Si"
