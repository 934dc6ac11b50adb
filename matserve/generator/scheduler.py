"""One loop that owns a generator model's running batch and serves many requests at once.

In-flight batching, as vLLM's scheduler does it: requests (jobs) arrive from any thread; the
loop, on its own thread, lets their prompts join the running `DecodingBatch` between decoding
steps while the KV-cache budget has room for them, steps the batch once, and reports each
sequence to its job the step its CIF ends (stop, length or time). So a short request sent
while a long one samples is answered when its own text is done, and, drawing from its own
per-sequence generators, with the same text it would get alone. A job's time limit counts
from its arrival, waiting included; a job whose caller went away leaves at the next step.
Every sequence in the batch, a sliding one too, holds a whole context's share of the budget
(`kv_cache_bytes_per_row`); prompts that do not fit wait, in arrival order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from matserve.generator.model import GPT
from matserve.generator.sampler import (KV_CACHE_BYTES, NEWLINE_ID, DecodingBatch, Generation, Row, SamplingParams,
                                        SamplingRequest, request_rows, rows_that_fit)

log = logging.getLogger("matserve.generator")

OnResult = Callable[[int, Generation, bool], None]  # (prompt's index in the job, result, whether it was the job's last)


def never_cancelled() -> bool:
    return False


def nothing() -> None:
    pass


@dataclass(eq=False)  # identity: a job is part of its sequences' keys
class GenerationJob:
    prompts: Sequence[Sequence[int]]  # token ids
    params: SamplingParams
    on_result: OnResult
    on_error: Callable[[Exception], None]
    is_cancelled: Callable[[], bool] = never_cancelled
    on_cancelled: Callable[[], None] = nothing  # after it left the batch (Triton: close the request)
    arrived: float = field(default_factory=time.monotonic)  # where its time limit starts
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.prompts)

    def keys(self) -> set[tuple[GenerationJob, int]]:
        return {(self, index) for index in range(len(self.prompts))}


class GenerationScheduler:
    def __init__(self, model: GPT, kv_cache_bytes: int = KV_CACHE_BYTES, stop_id: int = NEWLINE_ID,
                 name: str = "generator"):
        self.batch = DecodingBatch(model, stop_id)
        self.max_rows = rows_that_fit(model, kv_cache_bytes)
        self.name = name
        self._inbox: list[GenerationJob] = []
        self._waiting: deque[tuple[tuple[GenerationJob, int], Row]] = deque()  # not yet in the batch, in order
        self._jobs: set[GenerationJob] = set()  # taken from the inbox, not yet answered
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def jobs(self) -> int:
        return len(self._jobs) + len(self._inbox)

    @property
    def idle(self) -> bool:
        return not self._waiting and not self.batch

    def submit(self, job: GenerationJob) -> None:
        with self._wake:
            self._inbox.append(job)
            self._wake.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._inbox and self.idle and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
            self.step()

    def step(self) -> None:
        """Take what arrived, drop what was cancelled, let waiting prompts join while they fit,
        sample one token for every sequence, answer what ended."""
        self._take_arrivals()
        self._drop_cancelled()
        ended = self._expire_waiting()
        try:
            self._admit()
            if self.batch:
                ended += self.batch.step()
        except Exception as error:  # noqa: BLE001 - the loop must outlive one failed step
            log.exception("%s step failed; failing its %d jobs", self.name, len(self._jobs))
            self._fail_all(error)
            return
        for (job, index), generation in ended:
            if job not in self._jobs:  # dropped earlier in this loop
                continue
            job.remaining -= 1
            last = job.remaining == 0
            if last:
                self._jobs.discard(job)
            try:
                job.on_result(index, generation, last)
            except Exception:  # noqa: BLE001 - a caller that cannot be answered is dropped, not the loop
                log.exception("could not answer a generation job; dropping it")
                self._drop(job)

    def _take_arrivals(self) -> None:
        with self._wake:
            arrived, self._inbox = self._inbox, []
        for job in arrived:
            self._jobs.add(job)
            rows = request_rows(SamplingRequest(job.prompts, job.params), job.arrived)
            self._waiting.extend(((job, index), row) for index, row in enumerate(rows))

    def _expire_waiting(self) -> list[tuple[tuple[GenerationJob, int], Generation]]:
        """Waiting prompts whose time ran out end with nothing sampled."""
        now = time.monotonic()
        expired = [(key, Generation(finish_reason="time")) for key, row in self._waiting if row.expired(now)]
        if expired:
            self._waiting = deque(entry for entry in self._waiting if not entry[1].expired(now))
        return expired

    def _admit(self) -> None:
        """Prefill waiting prompts, in order, into the batch while the KV-cache budget has room."""
        room = self.max_rows - len(self.batch)
        joining = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
        if joining:
            self.batch.join(joining)
            log.debug("%s: %d sequences joined, %d in the batch", self.name, len(joining), len(self.batch))

    def _drop_cancelled(self) -> None:
        for job in [job for job in self._jobs if job.is_cancelled()]:
            self._drop(job)
            log.info("generation cancelled by its caller: %d of %d sequences left the batch",
                     job.remaining, len(job.prompts))
            try:
                job.on_cancelled()
            except Exception:  # noqa: BLE001
                log.exception("could not close a cancelled generation job")

    def _drop(self, job: GenerationJob) -> None:
        self._jobs.discard(job)
        keys = job.keys()
        self._waiting = deque(entry for entry in self._waiting if entry[0] not in keys)
        self.batch.remove(keys)

    def _fail_all(self, error: Exception) -> None:
        jobs, self._jobs = self._jobs, set()
        self._waiting.clear()
        self.batch = DecodingBatch(self.batch.model, self.batch.stop_id)
        for job in jobs:
            try:
                job.on_error(error)
            except Exception:  # noqa: BLE001
                log.exception("could not report a failed generation job")
