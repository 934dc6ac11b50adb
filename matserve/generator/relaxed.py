"""Generated candidates relaxed by the served force field and ranked by their energy (``"relax": true``).

A candidate is relaxed, cell included, when its CIF parses with the requested composition
(`relaxable`); candidates that are the same structure are relaxed once (`representatives`) and
share the result. Its relaxed structure is written back in CrystaLLM's format, the space group
found anew at symprec 0.1, and judged again (`relaxed_fields`). Of the validity checks, the
cell (1) and bonds (4) are judged anew on the relaxed geometry; formula (2) and multiplicity
(3) hold by construction, since the CIF is written from the structure, as does the space
group (5) up to the four-decimal rounding of the written coordinates. `ranking` puts the
relaxed candidates first, the valid ones before the others, each by energy per atom.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

from matserve.generator.candidates import parse_structure
from matserve.generator.cif_format import postprocess, to_crystallm_cif
from matserve.generator.validity import SITE_TOLERANCE, validate
from matserve.relax import RelaxOptions
from matserve.structures import MIN_DISTANCE, System, isolated_atoms, minimum_distance

# Looser than /v1/infer's defaults (0.005 eV/Å, 2,000 steps): enough to rank candidates whose
# energies differ by tens of meV/atom, at a fraction of the steps.
RELAX_FMAX = 0.05  # eV/Å
RELAX_MAX_STEPS = 500


def relax_options(optimizer: str, cell_filter: str, pressure_tol_kbar: float) -> RelaxOptions:
    """How every candidate is relaxed: positions and cell, to RELAX_FMAX within RELAX_MAX_STEPS."""
    return RelaxOptions(fmax=RELAX_FMAX, pressure_tol_kbar=pressure_tol_kbar, cellopt=True,
                        max_steps=RELAX_MAX_STEPS, optimizer=optimizer, cell_filter=cell_filter)


def relaxable(cif: str, comp: str, neighbour_cutoff: float | None = None) -> System | str:
    """The candidate's structure, ready for the force field, or the message that says why it is
    not relaxed. ``comp`` is the requested (reduced) composition; ``neighbour_cutoff`` the force
    field's, within which every atom needs a neighbour."""
    structure = parse_structure(cif, SITE_TOLERANCE)
    if structure is None:
        return "relax: the generated CIF does not parse; not relaxed"
    found = structure.composition.reduced_formula
    if found != Composition(comp).reduced_formula:
        return f"relax: the generated CIF holds {found}, not the requested {Composition(comp).reduced_formula}; " \
               "not relaxed"
    system = System.from_pymatgen(structure)
    closest = minimum_distance(system)
    if closest < MIN_DISTANCE:
        return f"relax: two atoms are {closest:.3f} Å apart (the minimum is {MIN_DISTANCE} Å); not relaxed"
    lonely = isolated_atoms(system, neighbour_cutoff) if neighbour_cutoff else []
    if lonely:
        return f"relax: atom {lonely[0]} has no neighbour within {neighbour_cutoff:g} Å; not relaxed"
    return system


def representatives(systems: Sequence[System]) -> list[int]:
    """For each structure, the index of the first one pymatgen's StructureMatcher (default
    tolerances, volumes not scaled) finds the same as it: candidates of one composition often
    repeat a structure, and each distinct one is relaxed once."""
    matcher = StructureMatcher(scale=False)
    structures = [system.to_pymatgen() for system in systems]
    chosen: list[int] = []
    firsts = []
    for index, structure in enumerate(structures):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            same = next((first for first in chosen if _fits(matcher, structures[first], structure)), None)
        if same is None:
            chosen.append(index)
        firsts.append(index if same is None else same)
    return firsts


def _fits(matcher: StructureMatcher, first: Structure, second: Structure) -> bool:
    try:
        return bool(matcher.fit(first, second))
    except Exception:  # StructureMatcher fails on some degenerate cells: not the same
        return False


def relaxed_fields(system: System, energy: float, converged: bool) -> dict:
    """What a relaxed candidate gains: ``relaxed`` (its CIF; None in the rare case it cannot be
    written), ``energy_per_atom`` (eV/atom), ``relax_converged``, and ``validity``
    ({"valid", "messages"}) of the relaxed structure."""
    try:
        cif = postprocess(to_crystallm_cif(system.to_pymatgen()))
    except Exception as error:  # spglib or pymatgen failing on a strange cell: a message, not a crash
        cif, messages = None, [f"cif: the relaxed structure cannot be written ({error})"]
    else:
        try:
            messages = list(validate(cif).messages)
        except Exception as error:
            messages = [f"validity: could not be checked ({type(error).__name__}: {error})"]
    return {"relaxed": cif, "energy_per_atom": energy / system.n_atoms, "relax_converged": converged,
            "validity": {"valid": not messages, "messages": messages}}


def _rank_key(fields: dict | None) -> tuple[bool, bool, float]:
    if fields is None:
        return True, True, math.inf
    energy = fields["energy_per_atom"]
    return False, not fields["validity"]["valid"], energy if math.isfinite(energy) else math.inf


def ranking(relaxed: Sequence[dict | None]) -> list[int]:
    """The order of the candidates, given each one's `relaxed_fields` (None: not relaxed): the
    relaxed ones first, valid (after relaxation) before not, each by energy per atom; the
    others after them, in their order."""
    return sorted(range(len(relaxed)), key=lambda index: _rank_key(relaxed[index]))
