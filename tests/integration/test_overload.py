"""Overload, bounded: many clients at once asking for twice what the relaxation queue holds, in
rounds. Nothing crashes, nothing but 200 or 503 (with Retry-After) comes back, every accepted
request is answered in full, and the memory of the gateway and the force-field process stays flat."""

import asyncio
from pathlib import Path

import httpx
import pytest

from matserve.tritonserver import python_stubs
from tests.integration.conftest import QUEUE_ATOMS

pytestmark = pytest.mark.integration

CLIENTS = QUEUE_ATOMS  # each sends a 2-atom molecule: twice what the queue holds, at once
ROUNDS = 6
MOLECULE = {"atoms": [{"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 0.9], "numbers": [1, 1]}], "max_steps": 5}
RSS_GROWTH_LIMIT_MB = 30.0  # over the last rounds, after the first has warmed every cache


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def one_round(url: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=CLIENTS)) as client:
        return await asyncio.gather(*(client.post("/v1/infer", json=MOLECULE) for _ in range(CLIENTS)))


def test_twice_the_queue_from_many_clients_gets_200_or_503_and_memory_stays_flat(service):
    (forcefield_pid,) = [pid for pid, name in python_stubs(service.triton_pid()).items() if name == "forcefield_0_0"]
    watched = {"gateway": service.process.pid, "forcefield": forcefield_pid}
    memory = []
    accepted = refused = 0
    for _ in range(ROUNDS):
        responses = asyncio.run(one_round(service.url))
        memory.append({name: rss_mb(pid) for name, pid in watched.items()})
        for response in responses:
            assert response.status_code in (200, 503), response.text
            if response.status_code == 200:
                (result,) = response.json()["atoms"]
                assert result["optimizer_nsteps"] <= 5 and len(result["forces"]) == 6
                accepted += 1
            else:
                assert int(response.headers["retry-after"]) >= 1
                refused += 1
    assert accepted + refused == ROUNDS * CLIENTS and accepted > 0 and refused > 0
    status = service.get("/v1/status").json()["total"]
    assert status["queue_size_atoms"] == 0 and status["requests_in_progress"] == 0
    for name in watched:
        growth = memory[-1][name] - memory[1][name]
        assert growth < RSS_GROWTH_LIMIT_MB, f"{name} grew {growth:.1f} MB: {[m[name] for m in memory]}"
    print(f"overload: {accepted} accepted, {refused} refused with 503; RSS MB {memory}")
