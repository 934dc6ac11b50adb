"""Per-request deadlines (``timeout_s``, our extension): past it the work is cancelled and 504 answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")

MAX_TIMEOUT_S = 86400.0


class DeadlinePassed(Exception):
    def __init__(self, timeout_s: float):
        super().__init__(f"not finished within timeout_s={timeout_s:g} s; the work was cancelled")
        self.timeout_s = timeout_s


def deadline_after(timeout_s: float | None) -> float | None:
    """The event-loop time ``timeout_s`` from now (None: no deadline)."""
    return None if timeout_s is None else asyncio.get_running_loop().time() + timeout_s


async def before(items: AsyncIterator[T], deadline: float | None, timeout_s: float | None) -> AsyncIterator[T]:
    """``items`` until the deadline; then the iterator is closed (which cancels its work) and
    DeadlinePassed raised."""
    loop = asyncio.get_running_loop()
    while True:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            await items.aclose()
            raise DeadlinePassed(timeout_s or 0.0)
        try:
            item = await asyncio.wait_for(anext(items), remaining)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlinePassed(timeout_s or 0.0) from None
        yield item
