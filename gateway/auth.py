"""API keys: ``x-api-key`` (CrystaLLM) or ``Authorization: Bearer`` (NIM), checked only when keys are set."""

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
    if given not in keys:
        raise Unauthorized("invalid API key")
