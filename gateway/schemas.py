"""Request and response bodies of the batched geometry relaxation API (BGR NIM, seed 002).

Requests are validated strictly (``strict=True``): a number is not accepted as a string
(``"2"``), nor 0/1 as a boolean, so what the OpenAPI document's types say is what the service
takes. Every constraint JSON Schema can state is on the field; the rest (``coord`` holds
3 values per atom, ``active_mask`` one per atom, size and element limits of the served force
field) are checked in code and answered with 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.deadline import MAX_TIMEOUT_S
from matserve.structures import MAX_ATOMIC_NUMBER

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
AtomicNumber = Annotated[int, Field(ge=1, le=MAX_ATOMIC_NUMBER)]


class AtomicData(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    coord: list[FiniteFloat] = Field(min_length=3, description="flattened Cartesian coordinates, Å: 3 per atom")
    numbers: list[AtomicNumber] = Field(min_length=1, description="atomic numbers")
    cell: list[FiniteFloat] | None = Field(None, min_length=9, max_length=9, description="row-major, Å")
    pbc: list[bool] | None = Field(None, min_length=3, max_length=3)
    charge: int = 0
    mult: int = Field(1, ge=1, description="spin multiplicity")
    structure_id: str | None = None
    active_mask: list[bool] | None = Field(None, min_length=1, description="one per atom; false keeps it fixed")

    @model_validator(mode="after")
    def _consistent_lengths(self) -> "AtomicData":
        if len(self.coord) != 3 * len(self.numbers):
            raise ValueError(f"coord has {len(self.coord)} values; 3 x {len(self.numbers)} atoms = {3 * len(self.numbers)} expected")
        if self.active_mask is not None and len(self.active_mask) != len(self.numbers):
            raise ValueError(f"active_mask has {len(self.active_mask)} entries for {len(self.numbers)} atoms")
        if self.cell is None and self.pbc is not None and any(self.pbc):
            raise ValueError("pbc is periodic but no cell is given")
        return self

    @property
    def periodic(self) -> list[bool]:
        """No cell means an isolated molecule; a cell alone means periodic in all three directions."""
        if self.cell is None:
            return [False, False, False]
        return list(self.pbc) if self.pbc is not None else [True, True, True]


# The BGR NIM's single-structure example (seed 002): H2 in a 10 Å box.
INFER_EXAMPLE = {"atoms": [{"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "numbers": [1, 1],
                            "cell": [10.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 10.0]}]}


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [INFER_EXAMPLE]})

    atoms: list[AtomicData] = Field(min_length=1)
    opttol: float | None = Field(None, gt=0, allow_inf_nan=False, description="force tolerance, eV/Å")
    opttol_pressure: float | None = Field(None, gt=0, allow_inf_nan=False, description="pressure tolerance, kBar")
    cellopt: bool | None = None
    max_steps: int | None = Field(None, ge=0, description="matserve extension: step cap (default 2000)")
    optimizer: Literal["fire", "fire2"] | None = Field(None, description="matserve extension: FIRE or FIRE 2.0")
    cell_filter: Literal["unit", "frechet"] | None = Field(
        None, description="matserve extension, with cellopt: ASE's UnitCellFilter or FrechetCellFilter")
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S, description="matserve extension: past this many "
                                    "seconds the relaxation is cancelled and answered with 504")
    model: str | None = Field(None, description="matserve extension: the served force field that relaxes them "
                                                "(/v1/metadata lists them); default: the first")
    info: str | None = None


class OptimizationResult(BaseModel):
    coord: list[float]
    numbers: list[int]
    cell: list[float] | None = None
    pbc: list[bool]
    energy: float
    forces: list[float]
    stress: list[float] | None = None
    charges: list[float] | None = None
    converged: bool
    optimizer_nsteps: int
    structure_id: str | None = None


class InferResponse(BaseModel):
    atoms: list[OptimizationResult]
    status: str = "Success"
    info: str | None = None
