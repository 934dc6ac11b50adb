"""The relaxation scheduler: jobs from many callers share one running batch, each answered when
its own structures finish, cancelled ones leave; with the real CHGNet on small crystals."""

import threading

import numpy as np
import pytest

from matserve.relax import RelaxOptions, relax
from matserve.relax_scheduler import RelaxJob, RelaxScheduler
from matserve.structures import System
from tests.crystals import nacl, rattled, si

QUICK = RelaxOptions(fmax=0.05, max_steps=200)
SLOW = RelaxOptions(fmax=1e-9, max_steps=30)  # runs all 30 steps


class Recorder:
    """A job's callbacks: what arrived, in order, and whether the last one said so."""

    def __init__(self, name: str, order: list[str]):
        self.name, self.order = name, order
        self.results: dict = {}
        self.last_seen = False
        self.errors: list[Exception] = []

    def on_result(self, position, result, last):
        self.results[position] = result
        self.last_seen = last
        if last:
            self.order.append(self.name)

    def on_error(self, error):
        self.errors.append(error)


def job(recorder: Recorder, systems, options, **kwargs) -> RelaxJob:
    return RelaxJob(systems, [options] * len(systems), recorder.on_result, recorder.on_error, **kwargs)


def quick_system() -> System:
    return System.from_ase(rattled(nacl(), amount=0.02, seed=1))


def slow_system() -> System:
    return System.from_ase(rattled(si().repeat((2, 1, 1)), amount=0.1, seed=2))


def run_until_idle(scheduler: RelaxScheduler, limit: int = 500) -> int:
    steps = 0
    while not scheduler.relaxer.idle or scheduler.jobs:
        scheduler.step()
        steps += 1
        assert steps < limit
    return steps


def test_a_job_joining_mid_run_finishes_first_with_its_solo_result(chgnet):
    order: list[str] = []
    scheduler = RelaxScheduler(chgnet)
    slow, quick = Recorder("slow", order), Recorder("quick", order)
    scheduler.submit(job(slow, [slow_system()], SLOW))
    for _ in range(5):
        scheduler.step()
    scheduler.submit(job(quick, [quick_system()], QUICK))
    run_until_idle(scheduler)
    assert order == ["quick", "slow"] and quick.last_seen and slow.last_seen
    (alone,) = relax(chgnet, [quick_system()], QUICK)
    shared = quick.results[0]
    assert shared.n_steps == alone.n_steps and shared.converged
    assert shared.energy == pytest.approx(alone.energy, abs=1e-6)
    np.testing.assert_allclose(shared.system.positions, alone.system.positions, atol=1e-6)
    assert slow.results[0].n_steps == SLOW.max_steps


def test_each_result_names_its_position_and_only_the_last_is_final(chgnet):
    order: list[str] = []
    recorder = Recorder("both", order)
    finals: list[bool] = []
    scheduler = RelaxScheduler(chgnet)

    def on_result(position, result, last):
        finals.append(last)
        recorder.on_result(position, result, last)

    scheduler.submit(RelaxJob([slow_system(), quick_system()], [SLOW, QUICK], on_result, recorder.on_error))
    run_until_idle(scheduler)
    assert sorted(recorder.results) == [0, 1] and finals == [False, True]
    assert recorder.results[0].n_steps == SLOW.max_steps  # the slow one came second


def test_a_cancelled_job_leaves_the_batch_and_others_go_on(chgnet):
    order: list[str] = []
    scheduler = RelaxScheduler(chgnet)
    cancelled = threading.Event()
    gone, kept = Recorder("gone", order), Recorder("kept", order)
    scheduler.submit(job(gone, [slow_system(), slow_system()], SLOW, is_cancelled=cancelled.is_set))
    scheduler.submit(job(kept, [quick_system()], QUICK))
    scheduler.step()
    assert scheduler.relaxer.running_atoms == 4 + 4 + 2
    cancelled.set()
    scheduler.step()
    assert scheduler.relaxer.running_atoms in (0, 2)  # only the kept crystal (unless it just finished)
    run_until_idle(scheduler)
    assert gone.results == {} and order == ["kept"]


def test_a_failed_step_fails_the_jobs_in_the_batch_and_the_loop_goes_on(chgnet):
    class Flaky:
        def __init__(self):
            self.calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("out of memory")
            return chgnet(batch)

    order: list[str] = []
    scheduler = RelaxScheduler(Flaky())
    first, second = Recorder("first", order), Recorder("second", order)
    scheduler.submit(job(first, [quick_system()], QUICK))
    scheduler.step()
    assert [str(e) for e in first.errors] == ["out of memory"] and scheduler.relaxer.idle
    scheduler.submit(job(second, [quick_system()], QUICK))
    run_until_idle(scheduler)
    assert order == ["second"] and second.results[0].converged


def test_the_thread_answers_jobs_submitted_from_other_threads(chgnet):
    order: list[str] = []
    scheduler = RelaxScheduler(chgnet, atom_budget=8)
    recorders = [Recorder(f"job{i}", order) for i in range(3)]
    scheduler.start()
    try:
        for recorder in recorders:
            scheduler.submit(job(recorder, [quick_system()], QUICK))
        deadline = threading.Event()
        for _ in range(600):
            if len(order) == 3:
                break
            deadline.wait(0.05)
    finally:
        scheduler.stop()
    assert sorted(order) == ["job0", "job1", "job2"]
