import os

import pytest

from matserve.tritonserver import (
    DEFAULT_MODEL_REPOSITORY,
    find_tritonserver,
    render_config,
    render_model_repository,
    runtime_dir,
    server_command,
)


def test_gpu_setting_selects_kind_gpu_without_editing_files(tmp_path):
    rendered = render_model_repository(DEFAULT_MODEL_REPOSITORY, tmp_path / "repo", "gpu", python_env="/opt/venv")
    for name in ("forcefield", "mfd"):
        config = (rendered / name / "config.pbtxt").read_text()
        assert "KIND_GPU" in config and "KIND_CPU" not in config
        assert 'key: "EXECUTION_ENV_PATH" value { string_value: "/opt/venv" }' in config
        assert (rendered / name / "1" / "model.py").exists()
    assert "KIND_CPU" in (DEFAULT_MODEL_REPOSITORY / "forcefield" / "config.pbtxt").read_text()


def test_cpu_is_the_default_kind():
    assert "KIND_CPU" in render_config("instance_group [ { count: 1 kind: KIND_GPU } ]", "cpu", "")


def test_the_pytriton_binary_comes_with_its_libraries_and_a_stub_for_this_python(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no tritonserver on PATH
    installation = find_tritonserver("", tmp_path)
    assert installation.binary.name == "tritonserver" and installation.binary.exists()
    assert (installation.backend_dir / "python" / "triton_python_backend_stub").exists()
    assert (installation.backend_dir / "python" / "libtriton_python.so").exists()
    assert "nvidia_pytriton.libs" in installation.env["LD_LIBRARY_PATH"]


def test_a_configured_binary_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MATSERVE_TRITONSERVER"):
        find_tritonserver(str(tmp_path / "nope"), tmp_path)


def test_server_runs_on_loopback_with_strict_readiness(tmp_path):
    installation = find_tritonserver("", tmp_path)
    command = server_command(installation, tmp_path, grpc_port=1234, http_port=5678)
    for flag in ("--model-control-mode=none", "--strict-readiness=true", "--exit-on-error=true",
                 "--grpc-address=127.0.0.1", "--grpc-port=1234", "--http-address=127.0.0.1",
                 "--exit-timeout-secs=5"):
        assert flag in command


def test_runtime_dirs_of_dead_processes_are_removed(tmp_path):
    stale = tmp_path / "runtime" / "999999999"
    stale.mkdir(parents=True)
    mine = runtime_dir(tmp_path)
    assert mine.name == str(os.getpid()) and mine.is_dir()
    assert not stale.exists()


def test_each_served_forcefield_gets_its_own_triton_model(tmp_path):
    rendered = render_model_repository(DEFAULT_MODEL_REPOSITORY, tmp_path / "repo", "cpu", python_env="",
                                       forcefields=("sevennet-l3i5", "chgnet"))
    default = (rendered / "forcefield" / "config.pbtxt").read_text()
    extra = (rendered / "forcefield-chgnet" / "config.pbtxt").read_text()
    assert default.startswith('name: "forcefield"') or '\nname: "forcefield"\n' in default
    assert 'name: "forcefield-chgnet"' in extra and 'name: "forcefield"\n' not in extra
    assert default.count('key: "FORCEFIELD"') == 1 and 'string_value: "sevennet-l3i5"' in default
    assert extra.count('key: "FORCEFIELD"') == 1 and 'string_value: "chgnet"' in extra
    assert (rendered / "forcefield-chgnet" / "1" / "model.py").read_bytes() == \
        (DEFAULT_MODEL_REPOSITORY / "forcefield" / "1" / "model.py").read_bytes()
    assert sorted(p.name for p in rendered.iterdir() if p.name.startswith("forcefield")) == \
        ["forcefield", "forcefield-chgnet"]


def test_models_left_out_are_not_rendered(tmp_path):
    rendered = render_model_repository(DEFAULT_MODEL_REPOSITORY, tmp_path / "repo", "cpu", python_env="",
                                       forcefields=("chgnet",), left_out=("generator", "alignn", "plmf"))
    assert sorted(p.name for p in rendered.iterdir()) == ["forcefield", "mfd"]
