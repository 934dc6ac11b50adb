"""Packs structures from concurrent requests into model calls by atom count.

Triton's dynamic batcher counts requests, not atoms, so the gateway queues
structures and sends them in calls of at most ``call_atoms`` atoms, waiting at
most ``wait_s`` for a call to fill. Inside the call the model keeps at most
``batch_size`` atoms running and admits waiting structures as others converge.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import System

log = logging.getLogger("matserve.gateway")

def log_failure(task: asyncio.Task) -> None:
    """Background tasks must not die silently."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())


RunBatch = Callable[[list[System], list[RelaxOptions], int], Awaitable[list[RelaxResult]]]

CALL_BUDGETS = 4  # one call carries up to this many atom budgets, so the model can batch in flight


@dataclass(eq=False)  # identity semantics: tasks live in sets
class Task:
    system: System
    options: RelaxOptions
    future: asyncio.Future


class AtomBatcher:
    def __init__(
        self,
        run_batch: RunBatch,
        batch_size: int,
        wait_s: float = 0.005,
        max_calls: int = 2,
        isolate: tuple[type[Exception], ...] = (ValueError,),
    ):
        self.run_batch = run_batch
        self.isolate = isolate  # errors that may come from one structure: retry the call's tasks one by one
        self.batch_size = batch_size
        self.wait_s = wait_s
        self._queue: deque[Task] = deque()
        self._running: set[Task] = set()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(max_calls)
        self._loop_task: asyncio.Task | None = None
        self._calls: set[asyncio.Task] = set()

    @property
    def call_atoms(self) -> int:
        return self.batch_size * CALL_BUDGETS

    @property
    def queue_size_tasks(self) -> int:
        return len(self._queue) + len(self._running)

    @property
    def queue_size_atoms(self) -> int:
        return sum(t.system.n_atoms for t in self._queue) + sum(t.system.n_atoms for t in self._running)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run_forever())
        self._loop_task.add_done_callback(log_failure)

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
        for task in list(self._queue):
            if not task.future.done():
                task.future.cancel()

    async def submit(self, systems: list[System], options: list[RelaxOptions]) -> list[RelaxResult]:
        loop = asyncio.get_running_loop()
        tasks = [Task(s, o, loop.create_future()) for s, o in zip(systems, options)]
        self._queue.extend(tasks)
        self._arrived.set()
        return list(await asyncio.gather(*(t.future for t in tasks)))

    def _take_call(self) -> list[Task]:
        taken: list[Task] = []
        atoms = 0
        while self._queue and (not taken or atoms + self._queue[0].system.n_atoms <= self.call_atoms):
            task = self._queue.popleft()
            if task.future.done():  # the request went away
                continue
            taken.append(task)
            atoms += task.system.n_atoms
        return taken

    async def _run_forever(self) -> None:
        while True:
            await self._arrived.wait()
            await asyncio.sleep(self.wait_s)  # let concurrent requests join this call
            await self._slots.acquire()
            tasks = self._take_call()
            if not self._queue:
                self._arrived.clear()
            if not tasks:
                self._slots.release()
                continue
            self._running.update(tasks)
            call = asyncio.create_task(self._call(tasks))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _call(self, tasks: list[Task]) -> None:
        try:
            results = await self.run_batch([t.system for t in tasks], [t.options for t in tasks], self.batch_size)
            for task, result in zip(tasks, results):
                if not task.future.done():
                    task.future.set_result(result)
        except Exception as error:
            if len(tasks) > 1 and isinstance(error, self.isolate):  # one bad structure must not fail its neighbours
                for task in tasks:
                    await self._call_one(task)
            else:
                for task in tasks:
                    self._fail(task, error)
        finally:
            self._running.difference_update(tasks)
            self._slots.release()

    async def _call_one(self, task: Task) -> None:
        try:
            (result,) = await self.run_batch([task.system], [task.options], self.batch_size)
            if not task.future.done():
                task.future.set_result(result)
        except Exception as error:
            self._fail(task, error)

    @staticmethod
    def _fail(task: Task, error: Exception) -> None:
        if not task.future.done():
            task.future.set_exception(error)
