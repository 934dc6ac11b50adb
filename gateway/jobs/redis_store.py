"""Jobs in Redis (``MATSERVE_REDIS_URL``), shared by several gateway replicas."""

from __future__ import annotations

import redis.asyncio as aioredis

from gateway.jobs.store import UNFINISHED, Job, JobStore

PREFIX = "matserve:"
UNFINISHED_SET = PREFIX + "unfinished"

# Change the owner only if the stored job still names the old one and is unfinished (atomic on the server).
ADOPT_SCRIPT = """
local body = redis.call('GET', KEYS[1])
if not body then return 0 end
local job = cjson.decode(body)
if job['owner'] ~= ARGV[1] then return 0 end
if job['status'] ~= 'PENDING' and job['status'] ~= 'STARTED' then return 0 end
job['owner'] = ARGV[2]
redis.call('SET', KEYS[1], cjson.encode(job))
return 1
"""


class RedisJobStore(JobStore):
    def __init__(self, url: str):
        self._redis = aioredis.from_url(url)
        self._adopt = self._redis.register_script(ADOPT_SCRIPT)

    @staticmethod
    def _key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}"

    async def add(self, job: Job) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(job.id), job.to_json())
            pipe.sadd(UNFINISHED_SET, job.id)
            await pipe.execute()

    async def get(self, job_id: str) -> Job | None:
        body = await self._redis.get(self._key(job_id))
        return Job.from_json(body) if body else None

    async def update(self, job: Job) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            if job.expires is not None:
                pipe.set(self._key(job.id), job.to_json(), exat=max(int(job.expires), 1))
                pipe.srem(UNFINISHED_SET, job.id)
            else:
                pipe.set(self._key(job.id), job.to_json())
            await pipe.execute()

    async def unfinished(self) -> list[Job]:
        ids = [i.decode() for i in await self._redis.smembers(UNFINISHED_SET)]
        jobs = []
        for job_id in ids:
            job = await self.get(job_id)
            if job is None or job.status not in UNFINISHED:
                await self._redis.srem(UNFINISHED_SET, job_id)
            else:
                jobs.append(job)
        return jobs

    async def adopt(self, job_id: str, old_owner: str, new_owner: str) -> bool:
        return bool(await self._adopt(keys=[self._key(job_id)], args=[old_owner, new_owner]))

    async def heartbeat(self, replica_id: str, now: float) -> None:
        await self._redis.hset(PREFIX + "replicas", replica_id, str(now))

    async def last_heartbeat(self, replica_id: str) -> float | None:
        seen = await self._redis.hget(PREFIX + "replicas", replica_id)
        return float(seen) if seen else None

    async def delete_expired(self, now: float) -> int:
        return 0  # Redis expires finished jobs itself (EXAT)

    async def close(self) -> None:
        await self._redis.aclose()
