"""What the workers run on, for /v1/status."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path


@cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def gpu_names() -> list[str]:
    """Names of the visible NVIDIA GPUs (nvidia-ml-py), empty when there are none."""
    try:
        import pynvml

        pynvml.nvmlInit()
        names = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
            names.append(name.decode() if isinstance(name, bytes) else name)
        return names
    except Exception:  # no driver, no library: a CPU host
        return []


def worker_devices(device_setting: str) -> list[tuple[str, str]]:
    """(device, model name) per worker: one per GPU with MATSERVE_DEVICE=gpu, else the CPU."""
    if device_setting == "gpu" and gpu_names():
        return [(f"cuda:{i}", name) for i, name in enumerate(gpu_names())]
    return [("cpu", cpu_name())]
