"""Admission control of relaxations: the bound, Retry-After from throughput, and figures that come back to zero."""

import asyncio

import numpy as np
import pytest

from gateway.admission import RETRY_AFTER_UNKNOWN_S, QueueFull, Throughput
from gateway.relax_queue import RelaxationQueue
from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import System

OPTIONS = RelaxOptions()


def system(n_atoms: int) -> System:
    return System(np.arange(3 * n_atoms, dtype=float).reshape(-1, 3), [1] * n_atoms)


async def finishing_in_reverse(systems, options, atom_budget):
    for index in reversed(range(len(systems))):
        await asyncio.sleep(0)
        s = systems[index]
        yield index, RelaxResult(s, 0.0, np.zeros((s.n_atoms, 3)), np.zeros((3, 3)), True, 0)


def test_an_empty_queue_admits_any_request_and_a_full_one_refuses():
    queue = RelaxationQueue(finishing_in_reverse, atom_budget=10, max_atoms=20)
    big = queue.admit([system(30)], [OPTIONS])  # larger than the bound, but nothing else waits
    assert (queue.queue_size_atoms, queue.queue_size_tasks) == (30, 1)
    with pytest.raises(QueueFull, match="30 atoms queued, this request adds 2, the bound is 20") as refused:
        queue.admit([system(2)], [OPTIONS])
    assert refused.value.retry_after_s == RETRY_AFTER_UNKNOWN_S
    big.release()
    assert (queue.queue_size_atoms, queue.queue_size_tasks) == (0, 0)
    queue.admit([system(12), system(8)], [OPTIONS] * 2)  # exactly the bound
    with pytest.raises(QueueFull):
        queue.admit([system(1)], [OPTIONS])


def test_atoms_leave_the_queue_as_structures_finish():
    queue = RelaxationQueue(finishing_in_reverse, atom_budget=10, max_atoms=100)
    admission = queue.admit([system(3), system(5)], [OPTIONS] * 2)
    seen = []

    async def consume():
        async for index, _ in admission.results():
            seen.append((index, queue.queue_size_atoms, queue.queue_size_tasks))

    asyncio.run(consume())
    assert seen == [(1, 3, 1), (0, 0, 0)]


def test_release_after_a_failure_empties_the_figures_once():
    async def failing(systems, options, atom_budget):
        s = systems[0]
        yield 0, RelaxResult(s, 0.0, np.zeros((s.n_atoms, 3)), np.zeros((3, 3)), True, 0)
        raise RuntimeError("backend gone")

    queue = RelaxationQueue(failing, atom_budget=10, max_atoms=100)
    admission = queue.admit([system(3), system(5), system(7)], [OPTIONS] * 3)

    async def consume():
        async for _ in admission.results():
            pass

    with pytest.raises(RuntimeError):
        asyncio.run(consume())
    admission.release()
    assert (queue.queue_size_atoms, queue.queue_size_tasks) == (0, 0)


def test_retry_after_is_the_excess_over_the_recent_throughput():
    now = [0.0]
    throughput = Throughput(window_s=60, clock=lambda: now[0])
    queue = RelaxationQueue(finishing_in_reverse, atom_budget=10, max_atoms=100)
    queue.atoms.throughput = throughput
    for _ in range(11):  # 10 atoms a second
        throughput.add(1)
        now[0] += 0.1
    queue.admit([system(90)], [OPTIONS])
    with pytest.raises(QueueFull) as refused:
        queue.admit([system(50)], [OPTIONS])  # 40 atoms too many: 4 s at 10 atoms/s
    assert refused.value.retry_after_s == 4
