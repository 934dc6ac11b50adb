"""The Helm chart, checked offline: lint, render, Kubernetes schemas, and agreement with the code.

Helm runs as a library (helm-python-sdk: Helm's Go SDK behind ctypes); manifests are
validated against the Kubernetes JSON schemas that kubernetes-validate ships. The
ServiceMonitor is a Prometheus Operator CRD with no schema there: its structure is
checked with a small schema of the fields the operator needs.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="pip install -r requirements-dev.lock")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -r requirements-dev.lock")
jsonschema = pytest.importorskip("jsonschema")

from gateway.metrics import Metrics  # noqa: E402
from gateway.routes import health, system  # noqa: E402
from matserve.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "matserve"
ALL_FEATURES = CHART / "ci" / "all-features-values.yaml"
RELEASE, NAMESPACE = "matserve", "science"
# The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest schemas shipped.
KUBERNETES_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
STARTUP_BUDGET_S = 15 * 60


def render(values: dict | None = None) -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    documents = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


def notes(values: dict | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def all_features_values() -> dict:
    return yaml.safe_load(ALL_FEATURES.read_text())


def only(documents: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(documents: list[dict]) -> dict:
    deployment = only(documents, "Deployment")
    (main,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "matserve"]
    return main


def env(main: dict) -> dict[str, dict]:
    return {item["name"]: item for item in main["env"]}


def route_path(router, endpoint_name: str) -> str:
    (path,) = [r.path for r in router.routes if r.name == endpoint_name]
    return path


@pytest.fixture(scope="module")
def default_docs() -> list[dict]:
    return render()


@pytest.fixture(scope="module")
def full_docs() -> list[dict]:
    return render(all_features_values())


@pytest.fixture
def settings(monkeypatch) -> Settings:
    """matserve's defaults, whatever MATSERVE_ variables the test run has."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("MATSERVE_"):
            monkeypatch.delenv(name)
    return Settings()


# --- lint and render --------------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, ALL_FEATURES], ids=["defaults", "all-features"])
def test_helm_lint_is_clean(values_file):
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert problems == []


def test_default_render_has_only_the_core_objects(default_docs):
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds == ["Deployment", "Service"]


def test_all_features_render_has_every_optional_object(full_docs):
    kinds = sorted(d["kind"] for d in full_docs)
    assert kinds == sorted([
        "Deployment", "Service", "HorizontalPodAutoscaler", "ServiceMonitor", "PersistentVolumeClaim",
        "Secret", "StatefulSet", "Service",
    ])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("which", ["defaults", "all-features"])
def test_manifests_match_the_kubernetes_schemas(which, version, default_docs, full_docs):
    documents = default_docs if which == "defaults" else full_docs
    checked = 0
    for document in documents:
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: see test_service_monitor_structure
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    assert checked == len(documents) - (1 if which == "all-features" else 0)


SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name", "labels"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "namespaceSelector": {
                    "type": "object",
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port", "path"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                    },
                },
            },
        },
    },
}


def test_service_monitor_structure(full_docs):
    monitor = only(full_docs, "ServiceMonitor")
    jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == route_path(system.router, "metrics")
    service = only(full_docs, "Service", "matserve")
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


# --- agreement with the gateway and the settings -------------------------------------


@pytest.mark.parametrize("which", ["defaults", "all-features"])
def test_probes_use_the_gateway_routes_and_port(which, default_docs, full_docs, settings):
    documents = default_docs if which == "defaults" else full_docs
    main = container(documents)
    health_paths = [r.path for r in health.router.routes]
    live, ready = route_path(health.router, "live"), route_path(health.router, "ready")
    assert sorted(health_paths) == sorted([live, ready])

    assert main["livenessProbe"]["httpGet"]["path"] == live
    assert main["readinessProbe"]["httpGet"]["path"] == ready
    assert main["startupProbe"]["httpGet"]["path"] == ready
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert main[probe]["httpGet"]["port"] == "http"

    (port,) = [p for p in main["ports"] if p["name"] == "http"]
    assert port["containerPort"] == settings.port
    assert env(main)["MATSERVE_PORT"]["value"] == str(settings.port)
    service = only(documents, "Service", "matserve")
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    assert service_port["port"] == settings.port


def test_startup_probe_allows_a_long_model_load(default_docs):
    startup = container(default_docs)["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= STARTUP_BUDGET_S


@pytest.mark.parametrize(
    "values",
    [None, "all-features", {"drainTimeoutSeconds": 300}, {"drainTimeoutSeconds": 12.5, "preStopSleepSeconds": 0}],
    ids=["defaults", "all-features", "drain-300", "fractional-drain"],
)
def test_grace_period_outlasts_the_drain(values):
    values = all_features_values() if values == "all-features" else values
    documents = render(values)
    main = container(documents)
    pod = only(documents, "Deployment")["spec"]["template"]["spec"]
    drain = float(env(main)["MATSERVE_DRAIN_TIMEOUT_S"]["value"])
    pre_stop = 0
    if "lifecycle" in main:
        pre_stop = int(main["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain
    assert pod["terminationGracePeriodSeconds"] > drain


def test_default_drain_matches_the_settings(default_docs, settings):
    assert float(env(container(default_docs))["MATSERVE_DRAIN_TIMEOUT_S"]["value"]) == settings.drain_timeout_s


def test_a_grace_period_shorter_than_the_drain_is_refused():
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds"):
        render({"drainTimeoutSeconds": 60, "terminationGracePeriodSeconds": 60})


def test_every_setting_is_an_environment_variable(full_docs, settings):
    variables = env(container(full_docs))
    expected = {f"MATSERVE_{field.upper()}" for field in Settings.model_fields}
    assert expected <= variables.keys(), f"missing: {sorted(expected - variables.keys())}"


def test_values_config_mirrors_the_settings():
    """config: holds every setting except those with a value of their own."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    own_values = {"port", "drain_timeout_s", "device", "api_keys", "redis_url"}
    assert set(values["config"]) == set(Settings.model_fields) - own_values
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]
    assert set(schema["properties"]) == set(values["config"]) == set(schema["required"])
    assert schema["additionalProperties"] is False


def test_schema_choices_match_the_settings():
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]["properties"]
    for name, field in Settings.model_fields.items():
        if typing.get_origin(field.annotation) is typing.Literal and name in schema:
            assert sorted(schema[name]["enum"]) == sorted(typing.get_args(field.annotation)), name


def test_default_settings_values_parse_back_to_the_same_settings(default_docs, settings, monkeypatch):
    """The rendered strings are what pydantic-settings reads; defaults stay defaults (bar HOST)."""
    for item in container(default_docs)["env"]:
        monkeypatch.setenv(item["name"], item["value"])
    rendered = Settings()
    differs = {
        name for name in Settings.model_fields if getattr(rendered, name) != getattr(settings, name)
    }
    assert differs == {"host", "data_dir"}
    assert rendered.host == "0.0.0.0"
    assert str(rendered.data_dir) == "/data"


def test_large_numbers_render_without_an_exponent():
    main = container(render({"config": {"max_body_bytes": 1073741824, "batch_size": 123456789}}))
    assert env(main)["MATSERVE_MAX_BODY_BYTES"]["value"] == "1073741824"
    assert env(main)["MATSERVE_BATCH_SIZE"]["value"] == "123456789"


def test_unknown_or_misplaced_settings_are_rejected_by_the_schema():
    with pytest.raises(helm.HelmValuesError, match="bogus"):
        render({"config": {"bogus": 1}})
    with pytest.raises(helm.HelmValuesError, match="port"):
        render({"config": {"port": 9000}})  # MATSERVE_PORT comes from containerPort
    with pytest.raises(helm.HelmValuesError):
        render({"config": {"forcefield": "lammps"}})
    with pytest.raises(helm.HelmValuesError):
        render({"gpu": {"enabled": True, "count": 0}})


def test_mace_takes_a_mounted_model_file_and_only_mace_does():
    path = "/data/models/mace-mpa-0-medium.model"  # on the model-cache volume at data_dir
    main = container(render({"config": {"forcefield": "mace", "forcefield_model": path}}))
    assert env(main)["MATSERVE_FORCEFIELD"]["value"] == "mace"
    assert env(main)["MATSERVE_FORCEFIELD_MODEL"]["value"] == path
    with pytest.raises(helm.HelmValuesError, match="forcefield_model"):
        render({"config": {"forcefield": "mace"}})
    with pytest.raises(helm.HelmValuesError, match="forcefield_model"):
        render({"config": {"forcefield": "chgnet", "forcefield_model": path}})


# --- the pieces of the pod ----------------------------------------------------------


def test_dev_shm_is_memory_backed(full_docs):
    main = container(full_docs)
    pod = only(full_docs, "Deployment")["spec"]["template"]["spec"]
    (mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}


def test_gpu_settings(default_docs, full_docs):
    main = container(full_docs)
    pod = only(full_docs, "Deployment")["spec"]["template"]["spec"]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env(main)["MATSERVE_DEVICE"]["value"] == "gpu"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}

    cpu = container(default_docs)
    cpu_pod = only(default_docs, "Deployment")["spec"]["template"]["spec"]
    assert env(cpu)["MATSERVE_DEVICE"]["value"] == "cpu"
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})
    assert "tolerations" not in cpu_pod


def test_runs_as_the_images_non_root_user(default_docs):
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"^ARG MATSERVE_UID=(\d+)$", dockerfile, re.M).group(1))
    gid = int(re.search(r"^ARG MATSERVE_GID=(\d+)$", dockerfile, re.M).group(1))
    security = only(default_docs, "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (uid, gid, gid)


def test_data_volume_is_the_data_dir(default_docs, full_docs):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"MATSERVE_DATA_DIR=/data\b", dockerfile)
    for documents, claim in [(default_docs, None), (full_docs, "matserve-data")]:
        main = container(documents)
        pod = only(documents, "Deployment")["spec"]["template"]["spec"]
        data_dir = env(main)["MATSERVE_DATA_DIR"]["value"]
        assert data_dir == "/data"
        (mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == data_dir]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        if claim is None:
            assert volume["emptyDir"] == {}
        else:
            assert volume["persistentVolumeClaim"]["claimName"] == claim
            pvc = only(documents, "PersistentVolumeClaim", claim)
            assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_existing_claim_is_used_and_not_created():
    documents = render({"persistence": {"enabled": True, "existingClaim": "models"}})
    assert not [d for d in documents if d["kind"] == "PersistentVolumeClaim"]
    pod = only(documents, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "models"}} in pod["volumes"]


def test_api_keys_from_the_chart_secret(full_docs):
    reference = env(container(full_docs))["MATSERVE_API_KEYS"]["valueFrom"]["secretKeyRef"]
    secret = only(full_docs, "Secret", reference["name"])
    assert secret["stringData"][reference["key"]] == "key-one,key-two"


def test_api_keys_from_an_existing_secret():
    documents = render({"apiKeys": {"existingSecret": "matserve-keys", "secretKey": "keys"}})
    assert not [d for d in documents if d["kind"] == "Secret"]
    reference = env(container(documents))["MATSERVE_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "matserve-keys", "key": "keys"}


def test_several_replicas_without_redis_are_warned_about():
    assert "WARNING: several replicas without Redis" in notes({"replicaCount": 3})
    assert "WARNING" not in notes({"replicaCount": 3, "redis": {"enabled": True}})
    assert "WARNING" not in notes()


def test_no_api_keys_by_default(default_docs):
    assert "MATSERVE_API_KEYS" not in env(container(default_docs))
    assert "open to anyone" in notes()


def test_redis_url_points_at_the_redis_service(full_docs):
    url = env(container(full_docs))["MATSERVE_REDIS_URL"]["value"]
    match = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)/0", url)
    assert match
    service = only(full_docs, "Service", match.group(1))
    (port,) = service["spec"]["ports"]
    assert port["port"] == int(match.group(2))
    statefulset = only(full_docs, "StatefulSet", match.group(1))
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # The matserve Service must not select the Redis pod, nor the Redis Service matserve's.
    matserve_service = only(full_docs, "Service", "matserve")
    assert not matserve_service["spec"]["selector"].items() <= pod_labels.items()
    matserve_pod_labels = only(full_docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= matserve_pod_labels.items()


def test_external_redis_url():
    documents = render({"redis": {"externalUrl": "redis://jobs.example.internal:6379/2"}})
    assert env(container(documents))["MATSERVE_REDIS_URL"]["value"] == "redis://jobs.example.internal:6379/2"
    assert not [d for d in documents if d["kind"] == "StatefulSet"]


def test_hpa_scales_the_deployment_on_cpu_and_queued_atoms(full_docs):
    hpa = only(full_docs, "HorizontalPodAutoscaler")
    deployment = only(full_docs, "Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    by_type = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert by_type["Resource"]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}
    queue = by_type["Pods"]["pods"]
    assert queue["target"] == {"type": "AverageValue", "averageValue": "4096"}
    # The metric the HPA asks for is one the gateway exports.
    from prometheus_client import generate_latest

    exported = generate_latest(Metrics().registry).decode()
    assert re.search(rf"^{queue['metric']['name']} ", exported, re.M)


def test_hpa_without_a_metric_is_refused():
    with pytest.raises(helm.HelmError, match="autoscaling"):
        render({"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}})


def test_secret_changes_roll_the_pods():
    def checksum(keys):
        documents = render({"apiKeys": {"create": True, "keys": keys}})
        return only(documents, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/api-keys"]

    assert checksum(["a"]) != checksum(["b"])


def test_startup_budget_in_notes_matches_the_probe(default_docs):
    startup = container(default_docs)["startupProbe"]
    seconds = startup["periodSeconds"] * startup["failureThreshold"]
    assert f"allows {seconds} s" in notes()
