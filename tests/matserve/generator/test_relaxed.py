"""Relaxed candidates: which are relaxed, what they gain, and their order (plain Python, no force field)."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from matserve.generator.cif_format import postprocess, to_crystallm_cif
from matserve.generator.relaxed import (RELAX_FMAX, RELAX_MAX_STEPS, ranking, relax_options, relaxable, relaxed_fields,
                                       representatives)
from matserve.structures import System


def rock_salt(a: float, cation: str = "Na") -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def generated(structure: Structure) -> str:
    return postprocess(to_crystallm_cif(structure))


def test_a_candidate_of_the_requested_composition_is_relaxable():
    system = relaxable(generated(rock_salt(5.69)), "Na1Cl1", neighbour_cutoff=6.0)
    assert isinstance(system, System) and system.n_atoms == 8
    assert np.allclose(system.cell, np.eye(3) * 5.69)


@pytest.mark.parametrize(("cif", "message"), [
    ("data_Na4Cl4\n_cell_length_a 5.6\n\n", "relax: the generated CIF does not parse; not relaxed"),
    (generated(rock_salt(5.69, "K")), "relax: the generated CIF holds KCl, not the requested NaCl; not relaxed"),
    (generated(rock_salt(0.8)), "relax: two atoms are 0.400 Å apart (the minimum is 0.5 Å); not relaxed"),
    (generated(rock_salt(14.0)), "relax: atom 0 has no neighbour within 6 Å; not relaxed"),
])
def test_what_is_not_relaxed_says_why(cif, message):
    assert relaxable(cif, "Na1Cl1", neighbour_cutoff=6.0) == message


def test_special_positions_written_to_four_decimals_are_one_site():
    # Si on (x, x, x) of P2_13 at 4 decimals: images of one site land ~1e-4 apart, which the
    # validity checks' site tolerance merges (pymatgen's default would keep them as two atoms)
    structure = Structure.from_spacegroup("P2_13", Lattice.cubic(4.5), ["Fe", "Si"],
                                          [[0.13652, 0.13652, 0.13652], [0.84172, 0.84172, 0.84172]])
    system = relaxable(generated(structure), "Fe1Si1")
    assert isinstance(system, System) and system.n_atoms == 8


def test_a_relaxed_candidate_gains_its_cif_energy_convergence_and_validity():
    system = System.from_pymatgen(rock_salt(5.64))
    fields = relaxed_fields(system, energy=-8 * 3.4, converged=True)
    assert list(fields) == ["relaxed", "energy_per_atom", "relax_converged", "validity"]
    assert fields["energy_per_atom"] == pytest.approx(-3.4) and fields["relax_converged"] is True
    assert fields["validity"] == {"valid": True, "messages": []}
    assert fields["relaxed"] == generated(rock_salt(5.64))  # CrystaLLM's format, as `generated` is


def test_the_space_group_is_found_anew_on_the_relaxed_structure():
    # a rock salt stretched along c is tetragonal: the relaxed CIF says so, and is valid
    stretched = rock_salt(5.64)
    stretched.lattice = Lattice.tetragonal(5.64, 6.2)
    fields = relaxed_fields(System.from_pymatgen(stretched), energy=-20.0, converged=False)
    assert "_symmetry_space_group_name_H-M I4/mmm" in fields["relaxed"] and fields["validity"]["valid"]
    assert fields["relaxed"].startswith("data_Na2Cl2\n")  # the primitive tetragonal cell


def test_cell_and_bond_checks_are_judged_again_on_the_relaxed_structure():
    squeezed = relaxed_fields(System.from_pymatgen(rock_salt(3.6)), energy=-8.0, converged=True)
    assert squeezed["validity"]["valid"] is False
    assert [m.split(":")[0] for m in squeezed["validity"]["messages"]] == ["bonds"]


def test_ranking_puts_relaxed_valid_candidates_first_by_energy():
    def fields(energy: float, valid: bool = True) -> dict:
        return {"energy_per_atom": energy, "validity": {"valid": valid, "messages": [] if valid else ["bonds: x"]}}

    relaxed = [None, fields(-3.0), fields(-4.0, valid=False), fields(-3.5), None, fields(float("nan")), fields(-3.2)]
    assert ranking(relaxed) == [3, 6, 1, 5, 2, 0, 4]
    assert ranking([]) == []


def test_every_candidate_is_relaxed_with_its_cell():
    options = relax_options("fire2", "unit", 0.5)
    assert options.cellopt and options.fmax == RELAX_FMAX and options.max_steps == RELAX_MAX_STEPS
    assert (options.optimizer, options.cell_filter, options.pressure_tol_kbar) == ("fire2", "unit", 0.5)


def test_the_same_structure_is_relaxed_once():
    systems = [System.from_pymatgen(s) for s in (rock_salt(5.69), rock_salt(4.2), rock_salt(5.75),
                                                 rock_salt(5.69, "K"), rock_salt(4.25))]
    assert representatives(systems) == [0, 1, 0, 3, 1]  # volumes are not scaled: 4.2 Å is another structure
    assert representatives([]) == []
