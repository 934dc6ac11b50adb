"""API keys: ``x-api-key`` (CrystaLLM) or ``Authorization: Bearer`` (NIM), checked only when keys are set.

A key is compared with every configured key in constant time (``hmac.compare_digest``, all of
them, without stopping at a match), so the answer's timing does not tell how much of a guess
was right. Keys are never logged nor echoed.
"""

import hmac

from fastapi import Depends, Request

from gateway.errors import Unauthorized
from gateway.services import Services, get_services


async def require_api_key(request: Request, services: Services = Depends(get_services)) -> None:
    keys = services.settings.api_key_set
    if not keys:
        return
    given = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if given is None and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if given is None:
        raise Unauthorized("missing API key: send it in the x-api-key header")
    if not key_matches(given, keys):
        raise Unauthorized("invalid API key")


def key_matches(given: str, keys: frozenset[str]) -> bool:
    """Whether ``given`` is one of ``keys``, comparing with each in constant time."""
    candidate = given.encode("utf-8", "surrogateescape")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode("utf-8", "surrogateescape"))
    return matched
