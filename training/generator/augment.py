"""Several equally correct CrystaLLM writings of one structure, for training-data augmentation.

A CrystaLLM CIF lists one representative position per Wyckoff orbit and the space group; the
reader expands each orbit with the group's operators. So any member of an orbit is an equally
correct representative, and the rows of the atom-site loop may come in any order. Each extra
writing picks, for every site, the image of its position under a random operator of the
structure's own symmetry (the operators CifWriter found, in the cell it writes), wrapped into
[0, 1), and shuffles the rows; labels are numbered again in the new order, as CifWriter numbers
them. Everything else (cell, space group, formula, atom properties) is the canonical text's.

Measured at equal compute, a fine-tune on these writings lowered held-out match rates (the
model wrote the right composition half as often): docs/models.md, "Training-data augmentation".
"""

from __future__ import annotations

import random
import warnings

from pymatgen.core import Structure
from pymatgen.core.operations import SymmOp
from pymatgen.io.cif import CifWriter

from matserve.generator.cif_format import DECIMALS, SYMPREC, crystallm_text, postprocess

SITE_TAGS = ("_atom_site_type_symbol", "_atom_site_label", "_atom_site_symmetry_multiplicity",
             "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z", "_atom_site_occupancy")


def _coordinate(value: float) -> str:
    text = f"{value % 1.0:.{DECIMALS}f}"
    return f"{0.0:.{DECIMALS}f}" if text == f"{1.0:.{DECIMALS}f}" else text  # 0.99997 wraps to 0, not 1


def site_rows(writer: CifWriter, rng: random.Random, shuffle: bool = True) -> list[str]:
    """The atom-site rows of another writing: each position moved to a random member of its orbit,
    the rows shuffled (unless not ``shuffle``), the labels renumbered in the new order."""
    (block,) = writer.cif_file.data.values()
    operators = [SymmOp.from_xyz_str(op) for op in block["_symmetry_equiv_pos_as_xyz"]]
    sites = list(zip(*(block[tag] for tag in SITE_TAGS)))
    if shuffle:
        rng.shuffle(sites)
    rows = []
    for number, (symbol, _, multiplicity, x, y, z, occupancy) in enumerate(sites):
        image = rng.choice(operators).operate([float(x), float(y), float(z)])
        rows.append(" ".join([symbol, f"{symbol}{number}", multiplicity, *map(_coordinate, image), occupancy]))
    return rows


def expanded_sites(text: str) -> int:
    """How many atoms the CrystaLLM text's cell holds once read (its operators rebuilt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(Structure.from_str(postprocess(text), fmt="cif"))


def writings(structure: Structure, count: int, seed: int, shuffle: bool = True) -> list[str]:
    """Up to `count` CrystaLLM texts of the structure: the canonical one, then rewritten ones (a
    repeat is possible for a structure with few equivalent writings). A rewritten text is kept
    only if it reads back to as many atoms as the canonical one: rounded to 4 decimals, an image
    of a special position can land just off it, and the reader then counts its orbit twice.
    ``shuffle`` False keeps the canonical order of the site rows (only the positions move)."""
    writer = CifWriter(structure, symprec=SYMPREC)  # the symmetry search, done once
    canonical = crystallm_text(writer)
    if count <= 1:
        return [canonical]
    lines = canonical.rstrip("\n").split("\n")
    first_row = lines.index(SITE_TAGS[-1]) + 1  # the site loop is the text's last
    rng = random.Random(seed)
    atoms = expanded_sites(canonical)
    texts = [canonical]
    for _ in range(count - 1):
        text = "\n".join(lines[:first_row] + site_rows(writer, rng, shuffle)) + "\n\n"
        if expanded_sites(text) == atoms:
            texts.append(text)
    return texts
