import asyncio

import numpy as np

from gateway.batcher import AtomBatcher
from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import System

OPTIONS = RelaxOptions()


def system(n_atoms: int, tag: float = 0.0) -> System:
    return System(np.arange(3 * n_atoms, dtype=float).reshape(-1, 3) + tag, [1] * n_atoms)


class Recorder:
    def __init__(self, fail_on_tag: float | None = None):
        self.calls: list[list[int]] = []
        self.fail_on_tag = fail_on_tag

    async def __call__(self, systems, options, budget):
        self.calls.append([s.n_atoms for s in systems])
        if self.fail_on_tag is not None and any(s.positions[0, 0] == self.fail_on_tag for s in systems):
            raise ValueError("bad structure")
        await asyncio.sleep(0.01)
        return [RelaxResult(s, float(s.n_atoms), np.zeros((s.n_atoms, 3)), np.zeros((3, 3)), True, 1) for s in systems]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_one_call_under_the_atom_budget():
    async def scenario():
        recorder = Recorder()
        batcher = AtomBatcher(recorder, batch_size=10, wait_s=0.02)  # a call carries up to 40 atoms
        batcher.start()
        results = await asyncio.gather(
            batcher.submit([system(5), system(5)], [OPTIONS] * 2),
            batcher.submit([system(20)], [OPTIONS]),
            batcher.submit([system(15)], [OPTIONS]),
        )
        await batcher.stop()
        return recorder.calls, results

    calls, results = run(scenario())
    assert calls == [[5, 5, 20], [15]]
    assert [[r.energy for r in rs] for rs in results] == [[5.0, 5.0], [20.0], [15.0]]


def test_a_structure_larger_than_a_call_still_runs_alone():
    async def scenario():
        recorder = Recorder()
        batcher = AtomBatcher(recorder, batch_size=2)
        batcher.start()
        (result,) = await batcher.submit([system(30)], [OPTIONS])
        await batcher.stop()
        return recorder.calls, result

    calls, result = run(scenario())
    assert calls == [[30]] and result.energy == 30.0


def test_one_bad_structure_does_not_fail_its_neighbours():
    async def scenario():
        recorder = Recorder(fail_on_tag=100.0)
        batcher = AtomBatcher(recorder, batch_size=100, wait_s=0.02)
        batcher.start()
        good = batcher.submit([system(2), system(3)], [OPTIONS] * 2)
        bad = batcher.submit([system(4, tag=100.0)], [OPTIONS])
        outcome = await asyncio.gather(good, bad, return_exceptions=True)
        await batcher.stop()
        return outcome

    good, bad = run(scenario())
    assert [r.energy for r in good] == [2.0, 3.0]
    assert isinstance(bad, ValueError)


def test_queue_sizes_count_waiting_and_running_work():
    async def scenario():
        gate = asyncio.Event()

        async def slow(systems, options, budget):
            await gate.wait()
            return [RelaxResult(s, 0.0, np.zeros((s.n_atoms, 3)), np.zeros((3, 3)), True, 0) for s in systems]

        batcher = AtomBatcher(slow, batch_size=1000, wait_s=0.0)
        batcher.start()
        pending = asyncio.create_task(batcher.submit([system(3), system(4)], [OPTIONS] * 2))
        await asyncio.sleep(0.05)
        sizes = (batcher.queue_size_tasks, batcher.queue_size_atoms)
        gate.set()
        await pending
        after = (batcher.queue_size_tasks, batcher.queue_size_atoms)
        await batcher.stop()
        return sizes, after

    assert run(scenario()) == ((2, 7), (0, 0))
