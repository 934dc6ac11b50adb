"""Every user mistake gets its status and the documented envelope; the server stays up."""

import pytest

from tests.gateway.conftest import make_client, wait_ready
from tests.gateway.fakes import FakeTriton

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


@pytest.mark.parametrize("wrong", ["k3", "a-much-longer-wrong-key", ""])
def test_a_wrong_key_of_any_length_is_401_with_the_envelope(fake, wrong):
    """k3 is as long as the real keys; the others are not: every one is refused the same way."""
    with make_client(fake, api_keys="k1,k2") as client:
        wait_ready(client)
        for headers in ({"x-api-key": wrong}, {"Authorization": f"Bearer {wrong}"}):
            response = client.post("/v1/infer", json=with_atoms(), headers=headers)
            assert response.status_code == 401
            assert response.json() == {
                "error": "invalid API key",
                "detail": [{"loc": [], "msg": "invalid API key", "type": "unauthorized"}],
            }


def test_keys_are_compared_in_constant_time_with_each_configured_key(monkeypatch):
    import hmac

    from gateway import auth

    compared = []

    def compare_digest(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", compare_digest)
    assert auth.key_matches("k2", frozenset({"k1", "k2", "k3"}))
    assert sorted(b for _, b in compared) == [b"k1", b"k2", b"k3"]  # no early exit at the match
    assert not auth.key_matches("k", frozenset({"k1"}))


def test_api_keys_are_never_logged(fake, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    with make_client(fake, api_keys="secret-key-1") as client:
        wait_ready(client)
        client.post("/v1/infer", json=with_atoms(), headers={"x-api-key": "secret-key-1"})
        client.post("/v1/infer", json=with_atoms(), headers={"x-api-key": "guessed-key-2"})
        client.post("/v1/infer", json=with_atoms(), headers={"Authorization": "Bearer guessed-key-3"})
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records and not any(key in logged for key in ("secret-key-1", "guessed-key-2", "guessed-key-3"))


class UnavailableTriton(FakeTriton):
    async def relax_stream(self, systems, options, atom_budget=0, model="forcefield"):
        from gateway.triton_client import TritonUnavailable

        raise TritonUnavailable("forcefield", "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1")
        yield  # an async generator, as the real one


def test_an_unavailable_backend_is_503_without_the_client_library_text():
    with make_client(UnavailableTriton()) as client:
        wait_ready(client)
        response = client.post("/v1/infer", json=with_atoms())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        message = "backend unavailable: the force field is not answering; retry later"
        assert response.json() == {"error": message, "detail": [{"loc": [], "msg": message, "type": "not_ready"}]}


def test_a_validator_message_has_no_pydantic_prefix(client):
    response = client.post("/v1/infer", json=with_atoms(active_mask=[True]))
    assert response.json() == {
        "error": "atoms.0: active_mask has 1 entries for 2 atoms",
        "detail": [{"loc": ["body", "atoms", 0], "msg": "active_mask has 1 entries for 2 atoms", "type": "value_error"}],
    }


def test_an_unreadable_poscar_says_what_is_wrong_in_the_files_terms(client):
    poscar = "Si2\n1.0\n0 2.7 2.7\n2.7 0 2.7\n2.7 2.7 0\nSi\n2\nDirect\n0 0 0\n"
    response = client.post("/v1/mfd/prediction", data={"file": poscar})
    message = "the POSCAR counts 2 atoms but has 1 coordinate lines after line 8"
    assert response.status_code == 422
    assert response.json() == {"error": message, "detail": [{"loc": ["body", "file"], "msg": message,
                                                             "type": "value_error"}]}


def test_a_cif_without_a_cell_names_the_missing_tags(client):
    response = client.post("/v1/mfd/prediction", data={"file": "data_x\n_cell_length_a 3\n_cell_length_b 3\n"})
    message = ("the CIF has no _cell_length_c, _cell_angle_alpha, _cell_angle_beta, _cell_angle_gamma; a CIF needs "
               "its cell lengths and angles (_cell_length_a, _cell_angle_alpha, ...) and an _atom_site_ loop with "
               "element symbols and fractional coordinates")
    assert response.status_code == 422
    assert response.json() == {"error": message, "detail": [{"loc": ["body", "file"], "msg": message,
                                                             "type": "value_error"}]}


def test_a_json_body_that_is_not_utf8_is_400_not_500(client):
    response = client.post("/v1/mfd/predict", content=b'{"file": "\x93"}', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "malformed JSON body",
                               "detail": [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]}


def test_an_atom_without_neighbours_is_422_before_it_reaches_the_batch(client, fake):
    """CHGNet's graph refuses it; in the running batch that failed every structure with 503 (a fuzz finding)."""
    response = client.post("/v1/infer", json={"atoms": [{"coord": [0, 0, 0], "numbers": [1]}]})
    message = "atom 0 has no neighbour within 6 Å, which the chgnet force field needs"
    assert response.status_code == 422
    assert response.json() == {"error": f"atoms.0.coord: {message}",
                               "detail": [{"loc": ["body", "atoms", 0, "coord"], "msg": message, "type": "value_error"}]}
    assert fake.calls == []
