"""Find, prepare and start a real ``tritonserver`` process.

On a plain Linux machine the binary comes from the ``nvidia-pytriton`` wheel: its
bundled libraries go on ``LD_LIBRARY_PATH`` and the Python-backend stub built for
the running Python is copied into a backend directory of our own. The model
repository is rendered into the data directory so that the instance kind (CPU or
GPU), the Python environment and the force fields served are set by configuration,
not by editing files: the ``forcefield`` model serves the default force field, and
each further one is a copy of it named ``forcefield-<name>``, told which by its
config's ``FORCEFIELD`` parameter.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_REPOSITORY = PACKAGE_ROOT / "model_repository"


@dataclass
class TritonInstallation:
    binary: Path
    backend_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)


def runtime_dir(data_dir: Path) -> Path:
    """A directory of this process's own under ``data_dir/runtime``; those of dead processes are removed.

    A Triton still shutting down after its parent was killed keeps its backend
    library and model files mapped: a restart must never overwrite them in place.
    """
    root = data_dir / "runtime"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and not Path(f"/proc/{old.name}").exists():
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir()
    return mine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pytriton_root() -> Path | None:
    try:
        import pytriton
    except ImportError:
        return None
    root = Path(pytriton.__file__).parent / "tritonserver"
    return root if (root / "bin" / "tritonserver").exists() else None


def _prepare_pytriton_backends(pytriton_root: Path, work_dir: Path) -> Path:
    """Copy the Python backend and the stub matching this interpreter into ``work_dir/backends``."""
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = pytriton_root / "python_backend_stubs" / python_version / "triton_python_backend_stub"
    if not stub.exists():
        raise FileNotFoundError(f"the pytriton wheel has no Python-backend stub for Python {python_version}")
    target = work_dir / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    for source in [*sorted((pytriton_root / "backends" / "python").glob("*.*")), stub]:
        if source.is_file():
            shutil.copy2(source, target / source.name)
    return target.parent


def find_tritonserver(configured: str, work_dir: Path) -> TritonInstallation:
    """``configured`` path, else ``tritonserver`` on PATH, else the pytriton wheel's binary."""
    if configured:
        binary = Path(configured)
        if not binary.exists():
            raise FileNotFoundError(f"MATSERVE_TRITONSERVER={configured} does not exist")
        return TritonInstallation(binary)
    on_path = shutil.which("tritonserver")
    if on_path:
        return TritonInstallation(Path(on_path))
    pytriton_root = _pytriton_root()
    if pytriton_root is None:
        raise FileNotFoundError("no tritonserver: set MATSERVE_TRITONSERVER or install nvidia-pytriton")
    libs = Path(pytriton_root).parent.parent / "nvidia_pytriton.libs"
    lib_dirs = [str(libs), sysconfig.get_config_var("LIBDIR") or "", os.environ.get("LD_LIBRARY_PATH", "")]
    return TritonInstallation(
        binary=pytriton_root / "bin" / "tritonserver",
        backend_dir=_prepare_pytriton_backends(pytriton_root, work_dir),
        env={"LD_LIBRARY_PATH": ":".join(d for d in lib_dirs if d)},
    )


def render_config(config_text: str, device: str, python_env: str) -> str:
    """Set the instance kind and the Python environment of one ``config.pbtxt``."""
    kind = "KIND_GPU" if device == "gpu" else "KIND_CPU"
    text = re.sub(r"KIND_(CPU|GPU)", kind, config_text)
    if python_env and "EXECUTION_ENV_PATH" not in text:
        text += (
            '\nparameters { key: "EXECUTION_ENV_PATH" '
            f'value {{ string_value: "{python_env}" }} }}\n'
        )
    return text


FORCEFIELD_MODEL = "forcefield"


def forcefield_parameter(config_text: str, name: str, forcefield: str) -> str:
    """A copy of the forcefield model's config named ``name``, serving ``forcefield``."""
    text = re.sub(r'^name: "[^"]*"', f'name: "{name}"', config_text, count=1, flags=re.M)
    return text + f'\nparameters {{ key: "FORCEFIELD" value {{ string_value: "{forcefield}" }} }}\n'


def render_model_repository(source: Path, target: Path, device: str, python_env: str = sys.prefix,
                            forcefields: tuple[str, ...] = (), left_out: tuple[str, ...] = ()) -> Path:
    """``source`` copied to ``target`` and configured, without the models ``left_out``; ``forcefields``
    (default first) each get a forcefield model."""
    if target.exists():
        shutil.rmtree(target)
    def ignored(directory: str, names: list[str]) -> set[str]:
        return {"__pycache__"} | (set(left_out) if Path(directory) == source else set())

    shutil.copytree(source, target, ignore=ignored)
    template = target / FORCEFIELD_MODEL
    template_config = (template / "config.pbtxt").read_text()
    for index, forcefield in enumerate(forcefields):
        name = FORCEFIELD_MODEL if index == 0 else f"{FORCEFIELD_MODEL}-{forcefield}"
        if index > 0:
            shutil.copytree(template, target / name, ignore=shutil.ignore_patterns("config.pbtxt"))
        (target / name / "config.pbtxt").write_text(forcefield_parameter(template_config, name, forcefield))
    for config in target.glob("*/config.pbtxt"):
        config.write_text(render_config(config.read_text(), device, python_env))
    return target


TRITON_EXIT_TIMEOUT_S = 5


def server_command(
    installation: TritonInstallation, model_repository: Path, grpc_port: int, http_port: int
) -> list[str]:
    command = [
        str(installation.binary),
        f"--model-repository={model_repository}",
        "--model-control-mode=none",
        "--strict-readiness=true",
        "--exit-on-error=true",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--log-verbose=0",
        # On SIGTERM Triton waits this long for in-flight requests and model unloads (default 30 s).
        # The gateway has drained its requests by then, and a Python stub that does not unload
        # within a few seconds (the force field's sometimes hangs in its teardown) is killed
        # anyway at the end: waiting 30 s for it only delays the pod's exit.
        f"--exit-timeout-secs={TRITON_EXIT_TIMEOUT_S}",
    ]
    if installation.backend_dir is not None:
        command.append(f"--backend-directory={installation.backend_dir}")
    return command


def start_tritonserver(
    installation: TritonInstallation,
    model_repository: Path,
    grpc_port: int,
    http_port: int,
    extra_env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen:
    env = {**os.environ, **installation.env, **(extra_env or {})}
    # The stub runs Python in isolated mode: our venv must come first on PATH as well.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return subprocess.Popen(
        server_command(installation, model_repository, grpc_port, http_port),
        env=env,
        start_new_session=True,  # a terminal's Ctrl-C reaches us only; we stop Triton ourselves
        preexec_fn=preexec_fn,
    )


STUB_BINARY = "triton_python_backend_stub"


def process_alive(pid: int) -> bool:
    """Running, not a zombie: a dead stub stays in /proc until Triton reaps it, which it may never do."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def python_stubs(triton_pid: int) -> dict[int, str]:
    """The Python-backend stub processes of a running Triton: pid -> model instance name (``forcefield_0_0``)."""
    stubs = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent != triton_pid:
                continue
            args = (stat.parent / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if args and args[0].endswith(STUB_BINARY):
            # args: stub, model.py, shm region, shm sizes, parent pid, backend dir, ..., instance name, ...
            names = [a for a in args if re.fullmatch(r"\w+_\d+_\d+", a)]
            stubs[int(stat.parent.name)] = names[0] if names else "unknown"
    return stubs
