"""Both job stores, for real: SQLite in a temporary file, Redis in a real redis-server."""

import asyncio
import time
import uuid

import pytest

from gateway.jobs.redis_store import RedisJobStore
from gateway.jobs.sqlite_store import SQLiteJobStore
from gateway.jobs.store import Job, JobStatus

STRUCTURE = {"positions": [[0, 0, 0]], "numbers": [29], "cell": [[2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5]]}


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request, tmp_path, redis_url):
    made = []

    def make():
        if request.param == "sqlite":
            store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
        else:
            store = RedisJobStore(redis_url)
        made.append(store)
        return store

    yield make


def run(coro):
    return asyncio.run(coro)


def new_job(owner="a") -> Job:
    return Job(id=uuid.uuid4().hex, model="mfd", structure=STRUCTURE, owner=owner)


def test_a_job_written_by_one_store_is_read_by_another(make_store):
    async def scenario():
        writer, reader = make_store(), make_store()
        job = new_job()
        await writer.add(job)
        seen = await reader.get(job.id)
        job.status, job.result, job.expires = JobStatus.SUCCESS, {"ml_Cv": 2.9}, time.time() + 60
        await writer.update(job)
        done = await reader.get(job.id)
        for store in (writer, reader):
            await store.close()
        return job, seen, done

    job, seen, done = run(scenario())
    assert seen.status == JobStatus.PENDING and seen.structure == STRUCTURE
    assert done.status == JobStatus.SUCCESS and done.result == {"ml_Cv": 2.9}


def test_unfinished_lists_pending_and_started_only(make_store):
    async def scenario():
        store = make_store()
        pending, started, finished = new_job(), new_job(), new_job()
        for job in (pending, started, finished):
            await store.add(job)
        started.status = JobStatus.STARTED
        await store.update(started)
        finished.status, finished.expires = JobStatus.FAILURE, time.time() + 60
        await store.update(finished)
        ids = {job.id for job in await store.unfinished()}
        await store.close()
        return ids, {pending.id, started.id}

    ids, expected = run(scenario())
    assert expected <= ids and len(ids & expected) == 2


def test_adoption_is_atomic_and_only_from_the_named_owner(make_store):
    async def scenario():
        store = make_store()
        job = new_job(owner="dead")
        await store.add(job)
        wins = await asyncio.gather(*(store.adopt(job.id, "dead", f"r{i}") for i in range(5)))
        wrong = await store.adopt(job.id, "someone-else", "r9")
        owner = (await store.get(job.id)).owner
        await store.close()
        return wins, wrong, owner

    wins, wrong, owner = run(scenario())
    assert sum(wins) == 1 and not wrong and owner == f"r{wins.index(True)}"


def test_finished_jobs_expire(make_store):
    async def scenario():
        store = make_store()
        job = new_job()
        await store.add(job)
        job.status, job.expires = JobStatus.SUCCESS, time.time() + 1
        await store.update(job)
        before = await store.get(job.id)
        await asyncio.sleep(2.1)
        await store.delete_expired(time.time())
        after = await store.get(job.id)
        await store.close()
        return before, after

    before, after = run(scenario())
    assert before is not None and after is None


def test_heartbeats(make_store):
    async def scenario():
        store = make_store()
        await store.heartbeat("replica-1", 123.5)
        seen = await store.last_heartbeat("replica-1"), await store.last_heartbeat("nobody")
        await store.close()
        return seen

    assert run(scenario()) == (123.5, None)
