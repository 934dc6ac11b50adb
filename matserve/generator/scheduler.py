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
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from matserve.generator.model import GPT
from matserve.generator.sampler import (KV_CACHE_BYTES, NEWLINE_ID, DecodingBatch, Generation, Row, SamplingParams,
                                        SamplingRequest, request_rows, rows_that_fit)
from matserve.scheduler_loop import Ended, SchedulerLoop, never_cancelled, nothing

log = logging.getLogger("matserve.generator")

OnResult = Callable[[int, Generation, bool], None]  # (prompt's index in the job, result, whether it was the job's last)


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


class GenerationScheduler(SchedulerLoop):
    def __init__(self, model: GPT, kv_cache_bytes: int = KV_CACHE_BYTES, stop_id: int = NEWLINE_ID,
                 name: str = "generator"):
        super().__init__(name)
        self.batch = DecodingBatch(model, stop_id)
        self.max_rows = rows_that_fit(model, kv_cache_bytes)
        self._waiting: deque[tuple[tuple[GenerationJob, int], Row]] = deque()  # not yet in the batch, in order

    @property
    def idle(self) -> bool:
        return not self._waiting and not self.batch

    def _take(self, job: GenerationJob) -> None:
        rows = request_rows(SamplingRequest(job.prompts, job.params), job.arrived)
        self._waiting.extend(((job, index), row) for index, row in enumerate(rows))

    def _step_batch(self) -> Ended:
        """Waiting prompts whose time ran out end unsampled; the others join while they fit; one token each."""
        ended = self._expire_waiting()
        self._admit()
        if self.batch:
            ended += self.batch.step()
        return ended

    def _expire_waiting(self) -> Ended:
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

    def _remove(self, keys: set[Hashable]) -> None:
        self._waiting = deque(entry for entry in self._waiting if entry[0] not in keys)
        self.batch.remove(keys)

    def _reset(self) -> None:
        self._waiting.clear()
        self.batch = DecodingBatch(self.batch.model, self.batch.stop_id)
