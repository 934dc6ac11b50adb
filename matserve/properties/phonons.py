"""Vibrational properties from harmonic phonons: phonopy on a supercell, forces from a served force field.

This is our ``mfd`` model: the AFLOW-ML original (Legrain et al., Chem. Mater. 2017)
predicts Cv, Fvib and Svib at 300 K from composition alone; we compute them from
the structure instead: relax it, displace atoms in a supercell, get the forces
from the force field in one batch, build force constants, integrate the
harmonic phonon density of states on a mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from phonopy import Phonopy
from phonopy.structure.atoms import PhonopyAtoms

from matserve.forcefields import ForceField
from matserve.relax import RelaxOptions, relax
from matserve.structures import System, pack

GAS_CONSTANT = 8.314462618  # J/(mol K)
KJ_PER_MOL_TO_MEV = 10.364269656  # 1 kJ/mol per particle in meV


@dataclass(frozen=True)
class PhononSettings:
    supercell_min_length: float = 8.0  # Å: each supercell vector at least this long
    displacement: float = 0.01  # Å
    mesh_density: float = 30.0  # phonopy's length-based mesh
    relax_fmax: float = 0.01  # eV/Å before the phonons
    relax_steps: int = 300
    atom_budget: int = 1024  # atoms per force-field call over the displaced supercells (CHGNet: ~5 MB per atom)


@dataclass(frozen=True)
class VibrationalProperties:
    temperature: float  # K
    heat_capacity: float  # Cv, kB per atom
    free_energy: float  # Fvib, meV per atom
    entropy: float  # Svib, kB per atom
    imaginary_fraction: float  # share of mesh frequencies below -0.1 THz (unstable modes)
    supercell: tuple[int, int, int]


def supercell_for(cell: np.ndarray, min_length: float) -> tuple[int, int, int]:
    """Smallest diagonal supercell whose vectors are all at least ``min_length`` Å."""
    lengths = np.linalg.norm(cell, axis=1)
    reps = np.maximum(1, np.ceil(min_length / lengths)).astype(int)
    return int(reps[0]), int(reps[1]), int(reps[2])


def forces_of(forcefield: ForceField, systems: list[System], atom_budget: int) -> list[np.ndarray]:
    """Forces of many structures, packed into calls of at most ``atom_budget`` atoms."""
    forces: list[np.ndarray] = []
    chunk: list[System] = []
    for system in [*systems, None]:
        full = system is None or (chunk and sum(s.n_atoms for s in chunk) + system.n_atoms > atom_budget)
        if full and chunk:
            batch = pack(chunk)
            output = forcefield(batch, compute_stress=False)
            forces += [f.numpy() for f in batch.split_atoms(output.forces.cpu())]
            chunk = []
        if system is not None:
            chunk.append(system)
    return forces


def phonopy_for(system: System, supercell: tuple[int, int, int], displacement: float) -> Phonopy:
    unitcell = PhonopyAtoms(numbers=system.numbers.tolist(), cell=system.cell, positions=system.positions)
    phonon = Phonopy(unitcell, supercell_matrix=np.diag(supercell), primitive_matrix=None)
    phonon.generate_displacements(distance=displacement)
    return phonon


def thermal_properties(phonon: Phonopy, n_atoms: int, temperature: float, mesh_density: float) -> tuple[float, ...]:
    """(Cv kB/atom, Fvib meV/atom, Svib kB/atom, imaginary fraction) at ``temperature``."""
    phonon.run_mesh(mesh_density)
    frequencies = phonon.get_mesh_dict()["frequencies"]
    imaginary = float((frequencies < -0.1).mean())
    phonon.run_thermal_properties(t_min=temperature, t_max=temperature, t_step=1.0)
    values = phonon.get_thermal_properties_dict()
    free_energy = float(values["free_energy"][0]) * KJ_PER_MOL_TO_MEV / n_atoms
    entropy = float(values["entropy"][0]) / GAS_CONSTANT / n_atoms
    heat_capacity = float(values["heat_capacity"][0]) / GAS_CONSTANT / n_atoms
    return heat_capacity, free_energy, entropy, imaginary


def vibrational_properties(
    forcefield: ForceField,
    system: System,
    temperature: float = 300.0,
    settings: PhononSettings = PhononSettings(),
    relax_first: bool = True,
) -> VibrationalProperties:
    if relax_first:
        options = RelaxOptions(fmax=settings.relax_fmax, pressure_tol_kbar=1.0, cellopt=True,
                               max_steps=settings.relax_steps)
        system = relax(forcefield, [system], options)[0].system
    supercell = supercell_for(system.cell, settings.supercell_min_length)
    phonon = phonopy_for(system, supercell, settings.displacement)
    displaced = [
        System(cell.positions, cell.numbers, cell.cell, np.ones(3, bool)) for cell in phonon.supercells_with_displacements
    ]
    phonon.forces = np.array(forces_of(forcefield, displaced, settings.atom_budget))
    phonon.produce_force_constants()
    cv, fvib, svib, imaginary = thermal_properties(phonon, system.n_atoms, temperature, settings.mesh_density)
    return VibrationalProperties(temperature, cv, fvib, svib, imaginary, supercell)
