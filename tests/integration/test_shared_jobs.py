"""Two gateway replicas sharing Redis; a replica killed mid-job and restarted; 1,000 submissions at once."""

import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.gateway.test_predict import NACL_POSCAR
from tests.integration.conftest import start_service, stop, wait_until_ready

pytestmark = pytest.mark.integration

SLOW_POSCAR = NACL_POSCAR  # with a 12 Å supercell the phonons take several seconds


def replica(tmp_path, name, redis_url, **env):
    return start_service(tmp_path / name, MATSERVE_REDIS_URL=redis_url, MATSERVE_REPLICA_ID=name,
                         MATSERVE_BATCH_SIZE="512", MATSERVE_MODELS="mfd", **env)  # the jobs' model only


def poll(service, job_id, statuses=("SUCCESS", "FAILURE"), timeout_s=180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = service.get(f"/v1/prediction/result/{job_id}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}")


async def submit_many(url, count):
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        async def one(_):
            response = await client.post("/v1/mfd/prediction", data={"file": NACL_POSCAR})
            response.raise_for_status()
            return response.json()["id"]

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_replicas_share_jobs_and_a_killed_replica_finishes_its_job_after_restart(tmp_path, redis_url):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    slow = {"MATSERVE_PHONON_SUPERCELL_MIN_LENGTH": "12"}
    first = replica(tmp_path, "a", redis_url, **slow)
    second = replica(tmp_path, "b", redis_url)
    restarted = None
    try:
        wait_until_ready(first)
        wait_until_ready(second)
        # A job submitted to replica a is seen running through replica b. Kill a while it runs;
        # restarted under the same name, a finishes the job, and b reads the same result.
        # (Before the 1,000 submissions below, so that the job does not queue behind them.)
        job_id = first.post("/v1/mfd/prediction", data={"file": SLOW_POSCAR}).json()["id"]
        assert poll(second, job_id, statuses=("STARTED",))["status"] == "STARTED"
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=30)
        restarted = replica(tmp_path, "a", redis_url, **slow)
        wait_until_ready(restarted)
        done = poll(restarted, job_id)
        assert done["status"] == "SUCCESS" and done == second.get(f"/v1/prediction/result/{job_id}").json()

        # 1,000 submissions at once: every id is stored and readable from the other replica.
        ids = asyncio.run(submit_many(second.url, 1000))
        assert len(set(ids)) == 1000
        statuses = {second.get(f"/v1/prediction/result/{i}").json()["status"] for i in ids[::50]}
        assert statuses <= {"PENDING", "STARTED", "SUCCESS"}
        missing = [i for i in ids if restarted.get(f"/v1/prediction/result/{i}").status_code != 200]
        assert missing == []
    finally:
        for service in (first, second, restarted):
            if service is not None:
                stop(service)
