"""Prometheus metrics (prefix ``matserve_``), one registry per app so tests can build many apps."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "matserve_requests", "HTTP requests by route, method and status", ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "matserve_request_duration_seconds", "HTTP request latency by route and method", ["route", "method"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.in_progress = Gauge("matserve_requests_in_progress", "HTTP requests being served", registry=self.registry)
        self.queue_atoms = Gauge("matserve_queue_size_atoms", "atoms waiting or running in the relaxation queue",
                                 registry=self.registry)
        self.queue_tasks = Gauge("matserve_queue_size_tasks", "structures waiting or running in the relaxation queue",
                                 registry=self.registry)
        self.structures = Counter("matserve_structures", "structures relaxed or evaluated, by outcome", ["outcome"],
                                  registry=self.registry)
        self.ready = Gauge("matserve_ready", "1 when the service is ready", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


access_log = logging.getLogger("matserve.access")


class MetricsMiddleware:
    """Counts, times and logs every HTTP request under its route template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.in_progress.dec()
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(template, scope["method"], str(status["code"])).inc()
            elapsed = time.perf_counter() - start
            self.metrics.latency.labels(template, scope["method"]).observe(elapsed)
            access_log.info(
                "%s %s %d", scope["method"], scope["path"], status["code"],
                extra={"request_id": scope.get("state", {}).get("request_id", ""), "method": scope["method"],
                       "path": scope["path"], "status": status["code"], "duration_ms": round(elapsed * 1000, 2)},
            )
