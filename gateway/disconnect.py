"""Work for a client that may go away: when it disconnects, the work is cancelled (and with it the
request to Triton, whose model then drops it from its batch at the next step)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")

POLL_S = 0.25
CLIENT_CLOSED_REQUEST = 499  # nginx's code: nobody is left to read the answer


class ClientDisconnected(Exception):
    pass


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result; if the client disconnects first, ``work`` is cancelled and ClientDisconnected raised."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=POLL_S)
        if not task.done() and await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise ClientDisconnected
    return task.result()
