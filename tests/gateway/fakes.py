"""A small stand-in for Triton, for fast gateway tests; tests/integration runs the real server."""

from __future__ import annotations

import numpy as np

from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import System


class FakeTriton:
    """Every model ready; the force field returns a fixed energy per atom and zero forces."""

    def __init__(self, ready: bool = True):
        self.ready = ready
        self.calls: list[list[System]] = []
        self.options: list[RelaxOptions] = []
        self.forcefield_models: list[str] = []  # the Triton force-field model of each call

    async def ready_models(self, models: list[str]) -> list[str]:
        return list(models) if self.ready else []

    async def forcefield(self, systems: list[System], options: list[RelaxOptions], atom_budget: int = 0,
                         model: str = "forcefield"):
        self.calls.append(systems)
        self.forcefield_models.append(model)
        self.options.extend(options)
        return [
            RelaxResult(s, -1.5 * s.n_atoms, np.zeros((s.n_atoms, 3)), np.zeros((3, 3)), True, 0) for s in systems
        ]

    async def relax_stream(self, systems: list[System], options: list[RelaxOptions], atom_budget: int = 0,
                           model: str = "forcefield"):
        """Results in reverse order, as a batch whose last structure converged first would give them."""
        results = await self.forcefield(systems, options, atom_budget, model)
        for index in reversed(range(len(systems))):
            yield index, results[index]

    async def close(self) -> None:
        pass


class FakePropertyTriton(FakeTriton):
    """Adds property models: fixed values, or a rejection for structures containing gold (Z=79)."""

    async def property(self, model, system):
        from gateway.triton_client import TritonRejected

        if 79 in system.numbers:
            raise TritonRejected(model.triton_model, "gold is not welcome here")
        return "fake phonons", {field: float(i + 1) for i, field in enumerate(model.outputs.values())}


class FakeGeneratorTriton(FakePropertyTriton):
    """Answers every prompt with a fixed CrystaLLM-format CIF (``text``) and records the prompts;
    ``answers``, when set, are the (text, finish reason) of a call's prompts in turn."""

    def __init__(self, text: str, answers: list[tuple[str, str]] | None = None):
        super().__init__()
        self.text = text
        self.answers = answers
        self.prompts: list[str] = []

    async def generate(self, model, prompts, seed, temperature=0.8, top_k=10):
        self.prompts.extend(prompts)
        if self.answers:
            return [self.answers[i % len(self.answers)] for i in range(len(prompts))]
        return [(self.text, "stop") for _ in prompts]

class FakeAlignnTriton(FakeGeneratorTriton):
    """Formation energies from the real embedded ALIGNN model, called in-process instead of through Triton."""

    def __init__(self, text: str):
        super().__init__(text)
        self.fe_calls: list[int] = []

    async def formation_energies(self, systems):
        from gateway.triton_client import TritonRejected
        from matserve.alignn.predictor import FormationEnergyModel
        from matserve.contract import InvalidInput

        self.fe_calls.append(len(systems))
        try:
            return FormationEnergyModel().predict(systems).tolist()
        except InvalidInput as error:
            raise TritonRejected("alignn", str(error)) from error
