"""Jobs in one SQLite file (the default; a file under ``MATSERVE_DATA_DIR``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from gateway.jobs.store import UNFINISHED, Job, JobStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, expires REAL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS replicas (id TEXT PRIMARY KEY, seen REAL NOT NULL);
"""


class SQLiteJobStore(JobStore):
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(SCHEMA)
        self._lock = threading.Lock()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple]:
        with self._lock:
            cursor = self._connection.execute(sql, args)
            rows = cursor.fetchall()
            self._last_rowcount = cursor.rowcount
            return rows

    async def _call(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple]:
        return await asyncio.to_thread(self._run, sql, args)

    async def add(self, job: Job) -> None:
        await self._call("INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
                         (job.id, job.owner, job.status.value, job.expires, job.to_json()))

    async def get(self, job_id: str) -> Job | None:
        rows = await self._call("SELECT body FROM jobs WHERE id = ? AND (expires IS NULL OR expires > ?)",
                                (job_id, time.time()))
        return Job.from_json(rows[0][0]) if rows else None

    async def update(self, job: Job) -> None:
        await self._call("UPDATE jobs SET status = ?, expires = ?, body = ? WHERE id = ?",
                         (job.status.value, job.expires, job.to_json(), job.id))

    async def unfinished(self) -> list[Job]:
        marks = ",".join("?" for _ in UNFINISHED)
        rows = await self._call(f"SELECT body FROM jobs WHERE status IN ({marks})", tuple(s.value for s in UNFINISHED))
        return [Job.from_json(row[0]) for row in rows]

    def _adopt(self, job_id: str, old_owner: str, new_owner: str) -> bool:
        with self._lock:
            rows = self._connection.execute("SELECT body FROM jobs WHERE id = ? AND owner = ?",
                                            (job_id, old_owner)).fetchall()
            if not rows:
                return False
            job = Job.from_json(rows[0][0])
            if job.status not in UNFINISHED:
                return False
            job.owner = new_owner
            cursor = self._connection.execute("UPDATE jobs SET owner = ?, body = ? WHERE id = ? AND owner = ?",
                                              (new_owner, job.to_json(), job_id, old_owner))
            return cursor.rowcount == 1

    async def adopt(self, job_id: str, old_owner: str, new_owner: str) -> bool:
        return await asyncio.to_thread(self._adopt, job_id, old_owner, new_owner)

    async def heartbeat(self, replica_id: str, now: float) -> None:
        await self._call("INSERT INTO replicas VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET seen = excluded.seen",
                         (replica_id, now))

    async def last_heartbeat(self, replica_id: str) -> float | None:
        rows = await self._call("SELECT seen FROM replicas WHERE id = ?", (replica_id,))
        return rows[0][0] if rows else None

    async def delete_expired(self, now: float) -> int:
        def delete() -> int:
            with self._lock:
                return self._connection.execute("DELETE FROM jobs WHERE expires IS NOT NULL AND expires <= ?",
                                                (now,)).rowcount

        return await asyncio.to_thread(delete)

    async def close(self) -> None:
        with self._lock:
            self._connection.close()
