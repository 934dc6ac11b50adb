"""Prompts: the opening of a CrystaLLM-format CIF, which the model continues.

Without a space group the prompt is the `data_` line, the cell composition with elements
in electronegativity order (`data_Na4Cl4`). With one, it runs on through the atom-property
loop to `_symmetry_space_group_name_H-M <sg>`. Either way it is exactly the start of the
text `cif_format.to_crystallm_cif` writes for a crystal of that cell composition.
"""

from __future__ import annotations

from pymatgen.core import Composition

from matserve.generator.cif_format import atom_property_block, formula_string
from matserve.generator.tokenizer import SPACE_GROUP_TAG
from matserve.generator.vocab import ATOMS, SPACE_GROUPS


def cell_composition(formula: str, z: int | None = None) -> Composition:
    """The unit cell's content: `formula` as given, or its reduced formula times Z."""
    composition = Composition(formula)
    if z is not None:
        if z < 1:
            raise ValueError(f"Z must be a positive integer, not {z}")
        composition = composition.reduced_composition * z
    if not composition:
        raise ValueError(f"empty formula {formula!r}")
    unknown = [str(e) for e in composition.elements if str(e) not in ATOMS]
    if unknown:
        raise ValueError(f"elements outside CrystaLLM's vocabulary: {', '.join(unknown)}")
    if any(not float(amount).is_integer() for amount in composition.values()):
        raise ValueError(f"a cell holds whole atoms, not {composition.formula}")
    return composition


def build_prompt(formula: str, z: int | None = None, space_group: str | None = None) -> str:
    composition = cell_composition(formula, z)
    prompt = f"data_{formula_string(composition)}\n"
    if space_group is not None:
        if space_group not in SPACE_GROUPS:
            raise ValueError(f"space group {space_group!r} is not one of CrystaLLM's symbols (such as Fm-3m, P2_1/c)")
        prompt += atom_property_block(composition) + f"{SPACE_GROUP_TAG} {space_group}\n"
    return prompt
