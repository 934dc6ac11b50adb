"""Start-up estimate of the atom budget, by probing the served model on growing batches.

As the BGR NIM does: run the force field on batches of increasing size, measure the
peak memory each one needs, fit memory per atom, and divide the free memory by it.
On a GPU the memory is the device's (NVML); on a CPU it is the peak resident size
of Triton's model processes (``VmHWM``) against what the host or cgroup has left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from ase.build import bulk

from gateway.state import BatchLimits
from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import System

log = logging.getLogger("matserve.gateway")

PROBE_REPEATS = ((2, 2, 1), (4, 4, 2))  # 32 and 256 atoms of diamond Si
MEMORY_FRACTION = 0.8  # leave head-room for fragmentation and the gateway
MIN_BYTES_PER_ATOM = 20_000
CPU_BATCH_CAP = 2048  # on a CPU, larger steps only add latency: the model costs the same per atom


def probe_system(repeat: tuple[int, int, int]) -> System:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(repeat)
    atoms.rattle(0.01, seed=0)
    return System.from_ase(atoms)


class MemoryProbe:
    """Peak bytes used by the model, and bytes still free."""

    def peak_bytes(self) -> int:
        raise NotImplementedError

    def free_bytes(self) -> int:
        raise NotImplementedError


def descendant_pids(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found += [child, *descendant_pids(child)]
    return found


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def host_free_bytes() -> int:
    """MemAvailable, or what the cgroup still allows if that is less (a Kubernetes memory limit)."""
    available = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    limit_file, usage_file = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    try:
        limit = limit_file.read_text().strip()
        if limit != "max":
            available = min(available, int(limit) - int(usage_file.read_text()))
    except (OSError, ValueError):
        pass
    return available


class ProcessTreeMemory(MemoryProbe):
    """CPU: the Triton server and its Python-backend stubs."""

    def __init__(self, pid: int):
        self.pid = pid

    def peak_bytes(self) -> int:
        return sum(_status_kib(p, "VmHWM") for p in [self.pid, *descendant_pids(self.pid)]) * 1024

    def free_bytes(self) -> int:
        return host_free_bytes()


class GpuMemory(MemoryProbe):
    """GPU: device memory as NVML sees it (PyTorch's cache keeps the peak reserved)."""

    def __init__(self, index: int = 0):
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)

    def peak_bytes(self) -> int:
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def free_bytes(self) -> int:
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self.handle).free)


@dataclass
class ProbePoint:
    atoms: int
    peak_bytes: int


RunBatch = Callable[[list[System], list[RelaxOptions], int], Awaitable[list[RelaxResult]]]


def limits_from_probe(points: list[ProbePoint], free_bytes: int, on_gpu: bool) -> BatchLimits:
    (small, large) = points[0], points[-1]
    per_atom = max((large.peak_bytes - small.peak_bytes) / max(large.atoms - small.atoms, 1), MIN_BYTES_PER_ATOM)
    max_batch = max(int(free_bytes * MEMORY_FRACTION / per_atom), large.atoms)
    batch = max_batch if on_gpu else min(max_batch, CPU_BATCH_CAP)
    return BatchLimits(atom_budget=batch, max_atom_budget=max_batch, max_system_size=max_batch)


async def estimate_limits(run_batch: RunBatch, memory: MemoryProbe, on_gpu: bool) -> BatchLimits:
    points = []
    single_point = RelaxOptions(max_steps=0)
    for repeat in PROBE_REPEATS:
        system = probe_system(repeat)
        await run_batch([system], [single_point], 0)
        points.append(ProbePoint(system.n_atoms, memory.peak_bytes()))
    limits = limits_from_probe(points, memory.free_bytes(), on_gpu)
    log.info("atom budget estimated from %s: %s", points, limits)
    return limits
