"""Liveness and readiness, shaped as the BGR NIM's."""

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from gateway.openapi import READINESS_RESPONSES, error_responses
from gateway.services import Services, get_services

router = APIRouter()


@router.get("/v1/health/live", summary="Liveness: the gateway process answers", responses=error_responses())
async def live() -> dict[str, str]:
    """The gateway process runs; never asks Triton."""
    return {"status": "live"}


@router.get("/v1/health/ready", summary="Readiness: Triton and every model ready, not draining",
            responses={**READINESS_RESPONSES, **error_responses()})
async def ready(services: Services = Depends(get_services)) -> JSONResponse:
    missing, is_ready = await services.readiness()
    total = len(services.state.models)
    services.metrics.ready.set(1 if is_ready else 0)
    body = {"status": "ready" if is_ready else "not ready", "backends_alive": total - len(missing),
            "backends_total": total}
    if missing:
        body["backends_not_ready"] = missing
    headers = None if is_ready else {"Retry-After": "5"}
    return JSONResponse(body, status_code=200 if is_ready else 503, headers=headers)
