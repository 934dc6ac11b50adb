"""ASGI middleware: request ids, body-size limit, and the in-flight count that draining waits on."""

from __future__ import annotations

import json
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import envelope
from gateway.state import ServiceState


class RequestContextMiddleware:
    """Echo ``X-Request-Id`` (or make one), refuse bodies over ``max_body_bytes`` with 413, count in-flight requests."""

    def __init__(self, app: ASGIApp, state: ServiceState, max_body_bytes: int):
        self.app = app
        self.state = state
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send_with_id)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        self.state.http_in_flight += 1
        try:
            await self.app(scope, counting_receive, send_with_id)
        except BodyTooLarge:
            await self._too_large(send_with_id)
        finally:
            self.state.http_in_flight -= 1

    async def _too_large(self, send: Send) -> None:
        message = f"request body larger than {self.max_body_bytes} bytes"
        body = json.dumps(envelope(message, [{"loc": ["body"], "msg": message, "type": "payload_too_large"}])).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass
