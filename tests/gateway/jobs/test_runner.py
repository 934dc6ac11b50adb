"""The job runner over a real SQLite store: runs, recovers after a restart, adopts orphans, loses nothing."""

import asyncio
import time

from gateway.jobs.runner import JobRunner
from gateway.jobs.sqlite_store import SQLiteJobStore
from gateway.jobs.store import Job, JobStatus

STRUCTURE = {"positions": [[0, 0, 0]], "numbers": [29], "cell": [[2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5]]}


async def model_ok(model, structure):
    await asyncio.sleep(0.001)
    return "ok", {"ml_x": float(structure["numbers"][0])}


async def wait_finished(store, ids, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = [await store.get(i) for i in ids]
        if all(j.status in (JobStatus.SUCCESS, JobStatus.FAILURE) for j in jobs):
            return jobs
        await asyncio.sleep(0.05)
    raise AssertionError("jobs did not finish")


def run_one_job(tmp_path, model, **runner_options) -> Job:
    """Submit one job to a fresh runner and return it once finished."""

    async def scenario():
        store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
        runner = JobRunner(store, model, "r1", **runner_options)
        await runner.start()
        job = await runner.submit("mfd", STRUCTURE)
        (done,) = await wait_finished(store, [job.id])
        await runner.stop()
        return done

    return asyncio.run(scenario())


def test_jobs_run_to_success_with_fields(tmp_path):
    done = run_one_job(tmp_path, model_ok, workers=2)
    assert done.status == JobStatus.SUCCESS and done.result == {"ml_x": 29.0} and done.description == "ok"
    assert done.expires > time.time()


def test_a_bad_structure_fails_with_the_reason(tmp_path):
    async def refuse(model, structure):
        raise ValueError("no phonons for a single atom in a box")

    done = run_one_job(tmp_path, refuse)
    assert done.status == JobStatus.FAILURE and done.description == "no phonons for a single atom in a box"


def test_a_restarted_replica_runs_its_pending_and_started_jobs(tmp_path):
    async def scenario():
        store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
        pending = Job(Job.new_id(), "mfd", STRUCTURE, owner="r1")
        started = Job(Job.new_id(), "mfd", STRUCTURE, owner="r1", status=JobStatus.STARTED, attempts=1)
        for job in (pending, started):
            await store.add(job)
        runner = JobRunner(store, model_ok, "r1")  # the same replica, after a restart
        await runner.start()
        jobs = await wait_finished(store, [pending.id, started.id])
        await runner.stop()
        return jobs

    assert [j.status for j in asyncio.run(scenario())] == [JobStatus.SUCCESS, JobStatus.SUCCESS]


def test_a_restarted_replica_runs_its_jobs_in_the_order_they_were_submitted(tmp_path):
    ran = []

    async def record(model, structure):
        ran.append(structure["numbers"][0])
        return "ok", {}

    async def scenario():
        store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
        jobs = [Job(Job.new_id(), "mfd", {**STRUCTURE, "numbers": [number]}, owner="r1", created=1000.0 + number)
                for number in (5, 3, 8, 1, 9, 2)]
        for job in jobs:
            await store.add(job)
        runner = JobRunner(store, record, "r1", workers=1)
        await runner.start()
        await wait_finished(store, [job.id for job in jobs])
        await runner.stop()

    asyncio.run(scenario())
    assert ran == [1, 2, 3, 5, 8, 9]


def test_jobs_of_a_silent_replica_are_adopted_but_a_live_ones_are_not(tmp_path):
    async def scenario():
        store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
        await store.heartbeat("dead", time.time() - 120)
        await store.heartbeat("alive", time.time())
        orphan = Job(Job.new_id(), "mfd", STRUCTURE, owner="dead", status=JobStatus.STARTED)
        owned = Job(Job.new_id(), "mfd", STRUCTURE, owner="alive")
        for job in (orphan, owned):
            await store.add(job)
        runner = JobRunner(store, model_ok, "r2", orphan_after_s=30)
        await runner.start()
        (done,) = await wait_finished(store, [orphan.id])
        untouched = await store.get(owned.id)
        await runner.stop()
        return done, untouched

    done, untouched = asyncio.run(scenario())
    assert done.status == JobStatus.SUCCESS and done.owner == "r2"
    assert untouched.status == JobStatus.PENDING and untouched.owner == "alive"


def test_backend_trouble_is_retried_not_failed(tmp_path):
    calls = []

    async def flaky(model, structure):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("triton restarting")
        return "ok", {}

    done = run_one_job(tmp_path, flaky, sweep_s=0.1)
    assert done.status == JobStatus.SUCCESS and done.attempts == 2


def test_a_thousand_submissions_at_once_lose_none(tmp_path):
    async def scenario():
        store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
        runner = JobRunner(store, model_ok, "r1", workers=4)
        await runner.start()
        jobs = await asyncio.gather(*(runner.submit("mfd", STRUCTURE) for _ in range(1000)))
        done = await wait_finished(store, [j.id for j in jobs], timeout_s=120)
        await runner.stop()
        return jobs, done

    jobs, done = asyncio.run(scenario())
    assert len({j.id for j in jobs}) == 1000
    assert all(j.status == JobStatus.SUCCESS for j in done)
