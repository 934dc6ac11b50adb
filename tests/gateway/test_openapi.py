"""/openapi.json declares what the routes answer; /docs and /redoc work without a network."""

import re

import pytest

from gateway.errors import ErrorEnvelope

ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}

# Every status each operation can answer (tests/integration/test_fuzz.py checks the running service against it).
DECLARED = {
    ("get", "/v1/health/live"): {"200", "413", "500"},
    ("get", "/v1/health/ready"): {"200", "503", "413", "500"},
    ("get", "/v1/status"): {"200", "413", "500"},
    ("get", "/v1/metrics"): {"200", "413", "500"},
    ("get", "/v1/metadata"): {"200", "413", "500"},
    ("post", "/v1/infer"): {"200", "400", "401", "413", "422", "500", "503", "504"},
    ("post", "/v1/{model}/prediction"): {"200", "400", "401", "404", "413", "422", "500", "503"},
    ("get", "/v1/prediction/result/{job_id}"): {"200", "404", "413", "500"},
    ("post", "/v1/{model}/predict"): {"200", "400", "401", "404", "413", "422", "500", "503"},
    ("post", "/v1/generate"): {"200", "400", "401", "413", "500", "503", "504"},
}


@pytest.fixture
def doc(client):
    return client.get("/openapi.json").json()


def operations(doc):
    return {(method, path): op for path, ops in doc["paths"].items() for method, op in ops.items()}


def test_every_operation_declares_exactly_the_statuses_it_can_answer(doc):
    assert {key: set(op["responses"]) for key, op in operations(doc).items()} == DECLARED


def test_every_error_response_has_the_envelope_schema_as_json(doc):
    for key, op in operations(doc).items():
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")) and key != ("get", "/v1/health/ready"):
                assert response["content"] == {"application/json": {"schema": ENVELOPE}}, (key, status)
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorEnvelope"]["required"] == ["error", "detail"]
    assert schemas["ErrorDetail"]["required"] == ["loc", "msg", "type"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas


def test_only_the_routes_with_a_deadline_declare_504(doc):
    with_deadline = {key for key, op in operations(doc).items() if "timeout_s" in str(op.get("requestBody", ""))
                     or "timeout_s" in str(doc["components"]["schemas"].get(_body_schema(op), ""))}
    assert {key for key, op in operations(doc).items() if "504" in op["responses"]} == with_deadline
    assert with_deadline == {("post", "/v1/infer"), ("post", "/v1/generate")}


def _body_schema(op) -> str:
    ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1]


def test_503s_declare_retry_after(doc):
    for key, op in operations(doc).items():
        if "503" in op["responses"]:
            assert "Retry-After" in op["responses"]["503"]["headers"], key


def test_readiness_declares_its_own_body_for_200_and_503(doc):
    responses = operations(doc)[("get", "/v1/health/ready")]["responses"]
    for status in ("200", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema["required"] == ["status", "backends_alive", "backends_total"]


def test_metrics_is_plain_text_and_infer_keeps_ndjson(doc):
    assert set(operations(doc)[("get", "/v1/metrics")]["responses"]["200"]["content"]) == {"text/plain"}
    infer_200 = operations(doc)[("post", "/v1/infer")]["responses"]["200"]["content"]
    assert set(infer_200) == {"application/json", "application/x-ndjson"}


def test_request_schemas_carry_the_enforced_constraints(doc):
    schemas = doc["components"]["schemas"]
    atoms = schemas["AtomicData"]["properties"]
    assert schemas["AtomicData"]["additionalProperties"] is False
    assert atoms["numbers"]["minItems"] == 1
    assert atoms["numbers"]["items"] == {"type": "integer", "minimum": 1, "maximum": 118}
    assert atoms["coord"]["minItems"] == 3
    cell = next(choice for choice in atoms["cell"]["anyOf"] if choice.get("type") == "array")
    assert (cell["minItems"], cell["maxItems"]) == (9, 9)
    pbc = next(choice for choice in atoms["pbc"]["anyOf"] if choice.get("type") == "array")
    assert (pbc["minItems"], pbc["maxItems"]) == (3, 3)
    assert atoms["mult"]["minimum"] == 1
    request = schemas["InferRequest"]["properties"]
    assert schemas["InferRequest"]["required"] == ["atoms"]
    assert next(c for c in request["optimizer"]["anyOf"] if "enum" in c)["enum"] == ["fire", "fire2"]
    assert next(c for c in request["opttol"]["anyOf"] if c.get("type") == "number")["exclusiveMinimum"] == 0
    generate = schemas["GenerateRequest"]["properties"]
    assert (generate["n"]["minimum"], generate["n"]["maximum"]) == (1, 32)


def test_prediction_routes_declare_their_body_and_their_models(doc, client):
    for path in ("/v1/{model}/prediction", "/v1/{model}/predict"):
        op = operations(doc)[("post", path)]
        body = op["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == {"application/x-www-form-urlencoded", "multipart/form-data",
                                        "application/json", "text/plain"}
        (model,) = op["parameters"]
        assert model["schema"]["enum"] == sorted(client.app.state.services.property_models)


def test_strings_are_not_numbers_nor_booleans(client):
    """The document says integer, number and boolean: the service takes nothing else for them."""
    h2 = {"coord": [0, 0, 0, 0, 0, 0.74], "numbers": [1, 1]}
    for body, where in [({"atoms": [{**h2, "charge": "0"}]}, ["body", "atoms", 0, "charge"]),
                        ({"atoms": [h2], "opttol": "0.1"}, ["body", "opttol"]),
                        ({"atoms": [h2], "cellopt": 1}, ["body", "cellopt"]),
                        ({"atoms": [{**h2, "numbers": ["1", 1]}]}, ["body", "atoms", 0, "numbers", 0])]:
        response = client.post("/v1/infer", json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"] == where
    assert client.post("/v1/infer", json={"atoms": [{**h2, "coord": [0, 0, 0, 0, 0, 1]}]}).status_code == 200


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("post", "/v1/infer", {"content": b"{", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/v1/infer", {"json": {"atoms": []}}, 422),
    ("post", "/v1/generate", {"json": {"model": "small"}}, 400),
    ("post", "/v1/plmf/predict", {"content": b"{", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/v1/nonesuch/prediction", {"data": {"file": "x"}}, 404),
    ("post", "/v1/mfd/prediction", {"data": {"file": "x"}}, 422),
    ("get", "/v1/prediction/result/nonesuch", {}, 404),
])
def test_error_answers_are_declared_and_have_the_envelope(client, doc, method, path, kwargs, status):
    response = getattr(client, method)(path, **kwargs) if kwargs else getattr(client, method)(path)
    assert response.status_code == status
    template = re.sub(r"^/v1/(nonesuch|mfd|plmf)/", "/v1/{model}/", path).replace("/result/nonesuch", "/result/{job_id}")
    assert str(status) in operations(doc)[(method, template)]["responses"]
    ErrorEnvelope.model_validate(response.json())


LOCAL_URL = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'|spec-url=["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    urls = [next(u for u in match if u) for match in LOCAL_URL.findall(html)]
    assert "/openapi.json" in urls and len(urls) >= 3
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200 and asset.content, url


def test_docs_assets_are_the_real_bundles(client):
    swagger = client.get("/docs/assets/swagger-ui-bundle.js")
    assert swagger.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert b"SwaggerUIBundle" in swagger.content and len(swagger.content) > 500_000
    redoc = client.get("/docs/assets/redoc.standalone.js")
    assert b"Redoc" in redoc.content and len(redoc.content) > 500_000
    assert client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert client.get("/docs/assets/nonesuch.js").status_code == 404
