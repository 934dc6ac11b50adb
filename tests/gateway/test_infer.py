from tests.gateway.fakes import FakeTriton

PERIODIC = {"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "numbers": [1, 1], "cell": [10, 0, 0, 0, 10, 0, 0, 0, 10],
            "structure_id": "box"}
MOLECULE = {"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "numbers": [1, 1]}


def test_response_has_the_documented_fields(client):
    response = client.post("/v1/infer", json={"atoms": [PERIODIC, MOLECULE], "info": "run-7"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"atoms", "status", "info"}
    assert body["status"] == "Success" and body["info"] == "run-7"
    periodic, molecule = body["atoms"]
    assert set(periodic) == {"coord", "numbers", "cell", "pbc", "energy", "forces", "stress", "converged",
                             "optimizer_nsteps", "structure_id"}
    assert periodic["structure_id"] == "box" and periodic["pbc"] == [True, True, True]
    assert len(periodic["stress"]) == 9 and len(periodic["forces"]) == 6
    assert set(molecule) == {"coord", "numbers", "pbc", "energy", "forces", "converged", "optimizer_nsteps"}
    assert molecule["pbc"] == [False, False, False]


def test_request_options_override_defaults(client, fake: FakeTriton):
    client.post("/v1/infer", json={"atoms": [MOLECULE]})
    client.post("/v1/infer", json={"atoms": [PERIODIC], "opttol": 0.01, "opttol_pressure": 2, "cellopt": True,
                                   "max_steps": 7})
    default, custom = fake.options
    assert (default.fmax, default.pressure_tol_kbar, default.cellopt, default.max_steps) == (0.005, 0.5, False, 2000)
    assert (custom.fmax, custom.pressure_tol_kbar, custom.cellopt, custom.max_steps) == (0.01, 2.0, True, 7)
