"""What a job is and what every job store must do.

A job belongs to the replica that owns it (the one that accepted it, or one that
adopted it after its owner stopped sending heartbeats). Only the owner runs it,
so jobs shared through Redis by several gateway replicas run exactly once, and
a restarted replica (same ``replica_id``) picks up its own unfinished jobs.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class JobStatus(str, Enum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


UNFINISHED = (JobStatus.PENDING, JobStatus.STARTED)


@dataclass
class Job:
    id: str
    model: str
    structure: dict[str, Any]  # {"positions", "numbers", "cell"} as lists
    owner: str
    status: JobStatus = JobStatus.PENDING
    description: str = "waiting in the queue"
    result: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    expires: float | None = None  # set when the job finishes
    attempts: int = 0

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "status": self.status.value})

    @classmethod
    def from_json(cls, text: str | bytes) -> "Job":
        data = json.loads(text)
        data["status"] = JobStatus(data["status"])
        return cls(**data)


class JobStore(ABC):
    """Jobs by id, with atomic ownership changes. Every method is safe to call from several processes."""

    @abstractmethod
    async def add(self, job: Job) -> None: ...

    @abstractmethod
    async def get(self, job_id: str) -> Job | None:
        """The job, or None if unknown or expired."""

    @abstractmethod
    async def update(self, job: Job) -> None:
        """Write the job's status, description, result, expiry and attempts."""

    @abstractmethod
    async def unfinished(self) -> list[Job]:
        """Every PENDING or STARTED job, of any owner."""

    @abstractmethod
    async def adopt(self, job_id: str, old_owner: str, new_owner: str) -> bool:
        """Take the job over if ``old_owner`` still owns it and it is unfinished; True if taken."""

    @abstractmethod
    async def heartbeat(self, replica_id: str, now: float) -> None: ...

    @abstractmethod
    async def last_heartbeat(self, replica_id: str) -> float | None: ...

    @abstractmethod
    async def delete_expired(self, now: float) -> int: ...

    @abstractmethod
    async def close(self) -> None: ...
