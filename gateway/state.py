"""What the gateway knows about itself: readiness inputs, batch limits and the counters of /v1/status."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BatchLimits:
    """Atom counts for packing; /v1/status reports the budgets as the BGR NIM's batch_size and max_batch_size."""

    atom_budget: int  # atoms per model step
    max_atom_budget: int  # most atoms that fit in memory at once
    max_system_size: int  # largest single structure accepted


@dataclass
class Counters:
    tasks_received: int = 0  # structures
    tasks_completed: int = 0
    requests_received: int = 0  # relaxation requests
    requests_completed: int = 0

    @property
    def requests_in_progress(self) -> int:
        return self.requests_received - self.requests_completed


@dataclass
class ServiceState:
    models: list[str]  # Triton models that must be ready
    draining: bool = False
    triton_failed: bool = False
    limits: BatchLimits | None = None  # the default force field's
    forcefield_limits: dict[str, BatchLimits] = field(default_factory=dict)  # every served force field's, by name
    limits_error: str | None = None
    http_in_flight: int = 0
    counters: Counters = field(default_factory=Counters)
