"""Every user mistake gets its status and the documented envelope; the server stays up."""

import pytest

from tests.gateway.conftest import make_client, wait_ready

H2 = {"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 0.74], "numbers": [1, 1]}


def with_atoms(**changes):
    return {"atoms": [{**H2, **changes}]}


def test_malformed_json_is_400(client):
    response = client.post("/v1/infer", content=b'{"atoms": [', headers={"content-type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "malformed JSON body"
    assert body["detail"][0]["type"] == "json_invalid"


def test_unknown_route_is_404_with_envelope(client):
    response = client.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json() == {
        "error": "no route GET /v1/nothing",
        "detail": [{"loc": ["path"], "msg": "no route GET /v1/nothing", "type": "http_404"}],
    }


def test_missing_atoms_is_422_with_location(client):
    response = client.post("/v1/infer", json={"opttol": 0.01})
    assert response.status_code == 422
    assert response.json() == {
        "error": "atoms: Field required",
        "detail": [{"loc": ["body", "atoms"], "msg": "Field required", "type": "missing"}],
    }


@pytest.mark.parametrize(
    ("body", "location", "fragment"),
    [
        ({"atoms": []}, ["body", "atoms"], "at least 1 item"),
        (with_atoms(coord=[0, 0, 0, 0, 0]), ["body", "atoms", 0], "3 x 2 atoms"),
        (with_atoms(cell=[1, 0, 0, 0, 1, 0, 0, 0]), ["body", "atoms", 0, "cell"], "at least 9 items"),
        (with_atoms(numbers=[0, 1]), ["body", "atoms", 0, "numbers", 0], "greater than or equal to 1"),
        (with_atoms(numbers=[1, 119]), ["body", "atoms", 0, "numbers", 1], "less than or equal to 118"),
        (with_atoms(active_mask=[True]), ["body", "atoms", 0], "active_mask has 1 entries for 2 atoms"),
        ({**with_atoms(), "opttol": -0.1}, ["body", "opttol"], "greater than 0"),
        ({**with_atoms(), "opttol_pressure": 0}, ["body", "opttol_pressure"], "greater than 0"),
        (with_atoms(pbc=[True, True, True]), ["body", "atoms", 0], "no cell"),
    ],
)
def test_invalid_values_are_422(client, body, location, fragment):
    response = client.post("/v1/infer", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["detail"][0]["loc"] == location
    assert fragment in payload["detail"][0]["msg"]
    assert fragment in payload["error"]


def test_nan_and_infinity_are_422(client):
    for literal in (b"NaN", b"Infinity"):
        body = b'{"atoms": [{"coord": [0, 0, 0, 0, 0, ' + literal + b'], "numbers": [1, 1]}]}'
        response = client.post("/v1/infer", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "atoms", 0, "coord", 5]
        assert response.json()["detail"][0]["type"] == "finite_number"


def test_atoms_too_close_is_422(client):
    response = client.post("/v1/infer", json=with_atoms(coord=[0, 0, 0, 0, 0, 0.3]))
    assert response.status_code == 422
    assert response.json() == {
        "error": "atoms.0.coord: two atoms are 0.300 Å apart; the minimum is 0.5 Å",
        "detail": [{"loc": ["body", "atoms", 0, "coord"], "msg": "two atoms are 0.300 Å apart; the minimum is 0.5 Å",
                    "type": "value_error"}],
    }


def test_atoms_too_close_through_a_periodic_boundary_is_422(client):
    body = with_atoms(coord=[0, 0, 0.1, 0, 0, 3.9], cell=[4, 0, 0, 0, 4, 0, 0, 0, 4])
    response = client.post("/v1/infer", json=body)
    assert response.status_code == 422
    assert "0.200 Å apart" in response.json()["error"]


def test_structure_larger_than_max_system_size_is_422(client):
    n = 51
    body = {"atoms": [{"coord": [c for i in range(n) for c in (i * 1.0, 0, 0)], "numbers": [1] * n}]}
    response = client.post("/v1/infer", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "atoms.0.numbers: structure has 51 atoms; max_system_size is 50"


def test_unsupported_element_is_422_naming_it(client):
    response = client.post("/v1/infer", json=with_atoms(numbers=[1, 100]))
    assert response.status_code == 422
    assert response.json()["error"] == "atoms.0.numbers: force field 'chgnet' does not support atomic numbers [100]"


@pytest.mark.parametrize("field,value", [("charge", 1), ("mult", 3)])
def test_charge_or_spin_on_a_force_field_without_them_is_422(client, field, value):
    response = client.post("/v1/infer", json=with_atoms(**{field: value}))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "atoms", 0, field]
    assert "cannot use charge or spin" in response.json()["error"]


def test_unknown_field_is_422_not_silently_ignored(client):
    response = client.post("/v1/infer", json={**with_atoms(), "opttoll": 0.01})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "opttoll"]


def test_body_too_large_is_413(fake):
    with make_client(fake, max_body_bytes=100) as client:
        wait_ready(client)
        response = client.post("/v1/infer", json={"atoms": [H2] * 10})
        assert response.status_code == 413
        assert response.json()["error"] == "request body larger than 100 bytes"


def test_api_key_is_checked_when_configured(fake):
    with make_client(fake, api_keys="k1,k2") as client:
        wait_ready(client)
        assert client.post("/v1/infer", json=with_atoms()).json()["error"] == "missing API key: send it in the x-api-key header"
        assert client.post("/v1/infer", json=with_atoms(), headers={"x-api-key": "nope"}).status_code == 401
        assert client.post("/v1/infer", json=with_atoms(), headers={"x-api-key": "k2"}).status_code == 200
        assert client.post("/v1/infer", json=with_atoms(), headers={"Authorization": "Bearer k1"}).status_code == 200
        assert client.get("/v1/health/ready").status_code == 200  # probes need no key


def test_server_still_serves_after_bad_requests(client):
    for body in ({"atoms": []}, {"atoms": [{"coord": [], "numbers": []}]}):
        client.post("/v1/infer", json=body)
    assert client.post("/v1/infer", json=with_atoms()).status_code == 200
