"""Runs jobs inside the gateway: bounded concurrency, recovery after a restart, adoption of orphans.

- ``submit`` stores the job (PENDING) and queues it locally.
- Workers mark it STARTED, call the model, store SUCCESS or FAILURE with an expiry.
- On start, and then every ``sweep_s``: heartbeat; queue this replica's own unfinished
  jobs that no local worker holds, oldest first (a restart re-runs what was PENDING or
  STARTED in the order it was submitted);
  adopt unfinished jobs of replicas whose heartbeat is older than ``orphan_after_s``;
  delete expired results.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from gateway.admission import Bound
from gateway.jobs.store import UNFINISHED, Job, JobStatus, JobStore

log = logging.getLogger("matserve.jobs")

# (model, structure) -> (description, fields); raises ValueError for a structure the model cannot take.
RunModel = Callable[[str, dict[str, Any]], Awaitable[tuple[str, dict[str, Any]]]]

MAX_ATTEMPTS = 3


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        run_model: RunModel,
        replica_id: str,
        workers: int = 2,
        ttl_s: float = 86400.0,
        sweep_s: float = 5.0,
        orphan_after_s: float = 30.0,
        max_jobs: int = 10000,
    ):
        self.store = store
        self.run_model = run_model
        self.replica_id = replica_id
        self.workers = workers
        self.ttl_s = ttl_s
        self.sweep_s = sweep_s
        self.orphan_after_s = orphan_after_s
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._known: set[str] = set()  # queued or running here
        self.jobs = Bound("prediction", "jobs", max_jobs)  # the same, counted for admission
        self._tasks: list[asyncio.Task] = []

    @property
    def queue_size(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        await self.sweep()
        self._tasks = [asyncio.create_task(self._work(), name=f"job-worker-{i}") for i in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="job-sweeper"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, model: str, structure: dict[str, Any]) -> Job:
        """Store and queue a new job; QueueFull when this replica already holds ``max_jobs``."""
        self.jobs.take(1)
        job = Job(id=Job.new_id(), model=model, structure=structure, owner=self.replica_id)
        try:
            await self.store.add(job)
        except BaseException:
            self.jobs.give_back(1, finished=False)
            raise
        self._enqueue(job.id, held=True)
        return job

    def _enqueue(self, job_id: str, held: bool = False) -> None:
        """Queue a job (adopted ones too: past the bound, since they were accepted once)."""
        if job_id not in self._known:
            self._known.add(job_id)
            if not held:
                self.jobs.take(1, check=False)
            self._queue.put_nowait(job_id)

    async def sweep(self) -> None:
        now = time.time()
        await self.store.heartbeat(self.replica_id, now)
        for job in sorted(await self.store.unfinished(), key=lambda job: job.created):
            if job.owner == self.replica_id:
                self._enqueue(job.id)
                continue
            seen = await self.store.last_heartbeat(job.owner)
            if (seen is None or now - seen > self.orphan_after_s) and await self.store.adopt(
                job.id, job.owner, self.replica_id
            ):
                log.info("adopted job %s of silent replica %s", job.id, job.owner)
                self._enqueue(job.id)
        await self.store.delete_expired(now)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("job sweep failed; retrying")

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            try:
                await self._run(job_id)
            except Exception:
                log.exception("job %s: could not record its outcome; it stays unfinished and is retried", job_id)
                await asyncio.sleep(1.0)
            finally:
                self._known.discard(job_id)
                self.jobs.give_back(1)

    async def _run(self, job_id: str) -> None:
        job = await self.store.get(job_id)
        if job is None or job.status not in UNFINISHED or job.owner != self.replica_id:
            return
        if job.attempts >= MAX_ATTEMPTS:
            await self._finish(job, JobStatus.FAILURE, f"gave up after {job.attempts} attempts", {})
            return
        job.status, job.description, job.attempts = JobStatus.STARTED, "running", job.attempts + 1
        job.updated = time.time()
        await self.store.update(job)
        try:
            description, fields = await self.run_model(job.model, job.structure)
        except ValueError as error:  # the structure or model cannot be used: final
            await self._finish(job, JobStatus.FAILURE, str(error), {})
            return
        except Exception as error:  # backend trouble: leave it STARTED, the next sweep queues it again
            log.warning("job %s attempt %d failed: %s", job.id, job.attempts, error)
            job.description = f"retrying after: {error}"
            await self.store.update(job)
            return
        await self._finish(job, JobStatus.SUCCESS, description, fields)

    async def _finish(self, job: Job, status: JobStatus, description: str, fields: dict[str, Any]) -> None:
        job.status, job.description, job.result = status, description, fields
        job.updated = time.time()
        job.expires = job.updated + self.ttl_s
        await self.store.update(job)
