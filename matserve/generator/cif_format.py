"""CrystaLLM's CIF dialect: what the model reads and writes, and how its output becomes a CIF.

A structure becomes training text (`to_crystallm_cif`) in CrystaLLM's steps:
pymatgen's CifWriter symmetrizes it (symprec 0.1); the `data_` line names the cell
composition; the symmetry-operator loop shrinks to the identity (the model writes the
symmetrically distinct sites and the space group, not the operators); a loop of atom
properties goes before `_symmetry_space_group_name_H-M`, so the model sees element
properties first; numbers are rounded to 4 decimals. Lines are stripped, single-spaced,
comments dropped, and a blank line ends the text, as in CrystaLLM's tokenized data.

`postprocess` turns generated text back into an ordinary CIF: the full operator loop is
rebuilt from the space group and the atom-property loop is dropped.
"""

from __future__ import annotations

import math
import re

from pymatgen.core import Composition, Element, Structure
from pymatgen.core.operations import SymmOp
from pymatgen.io.cif import CifWriter
from pymatgen.symmetry.groups import SpaceGroup

from matserve.generator.tokenizer import SPACE_GROUP_TAG, normalize

SYMPREC = 0.1
DECIMALS = 4
OPERATOR_TAG = "_symmetry_equiv_pos_as_xyz"
OPERATOR_ID_TAG = "_symmetry_equiv_pos_site_id"
ATOM_TYPE_TAGS = ("_atom_type_symbol", "_atom_type_electronegativity", "_atom_type_radius", "_atom_type_ionic_radius")
IDENTITY = "x, y, z"

# CrystaLLM's stand-ins where pymatgen has no Pauling electronegativity or atomic radius:
# Allen electronegativities and van der Waals radii of the noble gases.
_ELECTRONEGATIVITY_FALLBACK = {"He": 4.16, "Ne": 4.79, "Ar": 3.24}
_RADIUS_FALLBACK = {"He": 1.40, "Ne": 1.54, "Ar": 1.88, "Kr": 2.02, "Xe": 2.16, "Rn": 2.20}

_DECIMAL_NUMBER = re.compile(r"[-+]?\d*\.(\d+)(?:[eE][-+]?\d+)?")


def formula_string(composition: Composition) -> str:
    """`Na4Cl4`: whole-number amounts, elements by electronegativity, every count written."""
    return composition.formula.replace(" ", "")


def _property(value: float | None, fallback: float | None) -> str:
    if value is None or math.isnan(value):
        if fallback is not None:
            return str(fallback)  # as CrystaLLM writes its stand-ins: 4.16, 1.4 (four decimals only for pymatgen's)
        value = 0.0
    return f"{float(value):.{DECIMALS}f}"


def atom_property_block(composition: Composition) -> str:
    """The `_atom_type_*` loop, one row per element, by electronegativity; ends with a newline."""
    rows = []
    for element in sorted(composition.elements):
        element = Element(element.symbol)
        x = _property(element.X, _ELECTRONEGATIVITY_FALLBACK.get(element.symbol))
        radius = _property(element.atomic_radius, _RADIUS_FALLBACK.get(element.symbol))
        ionic = _property(element.average_ionic_radius, None)
        rows.append(f"{element.symbol} {x} {radius} {ionic}")
    return "\n".join(["loop_", *ATOM_TYPE_TAGS, *rows]) + "\n"


def round_numbers(text: str, decimals: int = DECIMALS) -> str:
    """Numbers with more than `decimals` decimals are rounded to exactly that many; others stay."""
    def fix(match: re.Match[str]) -> str:
        if len(match[1]) <= decimals:
            return match[0]
        return f"{float(match[0]):.{decimals}f}"

    return _DECIMAL_NUMBER.sub(fix, text)


def _loop_span(lines: list[str], tag: str) -> tuple[int, int, int] | None:
    """(loop_ line, first data row, end of rows) of the loop that has `tag` among its headers."""
    if tag not in lines:
        return None
    header = lines.index(tag)
    start = header
    while start > 0 and lines[start] != "loop_":
        start -= 1
    rows = header
    while rows < len(lines) and lines[rows].startswith("_"):
        rows += 1
    end = rows
    while end < len(lines) and not lines[end].startswith(("_", "loop_", "data_")) and lines[end]:
        end += 1
    return start, rows, end


def to_crystallm_cif(structure: Structure, symprec: float = SYMPREC) -> str:
    """The text CrystaLLM trains on for this structure (ends with the blank line that ends a CIF)."""
    return crystallm_text(CifWriter(structure, symprec=symprec))


def crystallm_text(writer: CifWriter) -> str:
    """`to_crystallm_cif` of the structure a (symmetrizing) CifWriter holds."""
    (block,) = writer.cif_file.data.values()
    cell = Composition(block["_chemical_formula_sum"])

    lines = [normalize(line).strip() for line in str(writer).splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    lines = [f"data_{formula_string(cell)}" if line.startswith("data_") else line for line in lines]
    span = _loop_span(lines, OPERATOR_TAG)
    assert span is not None, "CifWriter always writes the operator loop"
    lines[span[1]:span[2]] = [f"1 '{IDENTITY}'"]
    sg_line = next(i for i, line in enumerate(lines) if line.startswith(SPACE_GROUP_TAG))
    lines[sg_line:sg_line] = atom_property_block(cell).splitlines()
    return round_numbers("\n".join(lines)) + "\n\n"


def space_group_symbol(cif: str) -> str:
    match = re.search(rf"^{re.escape(SPACE_GROUP_TAG)}[ \t]+(?:'([^']+)'|(\S+))", cif, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {SPACE_GROUP_TAG} line")
    return match[1] or match[2]


def symmetry_operators(symbol: str) -> list[str]:
    """The space group's operators as xyz strings (translations in [0, 1)), the identity first."""
    try:
        group = SpaceGroup(symbol)
    except ValueError as error:
        raise ValueError(f"unknown space group {symbol!r}") from error
    ops = {SymmOp.from_rotation_and_translation(op.rotation_matrix, op.translation_vector % 1).as_xyz_str()
           for op in group.symmetry_ops}
    return sorted(ops, key=lambda op: (op != IDENTITY, op))


def postprocess(generated: str) -> str:
    """Generated CrystaLLM text -> a CIF pymatgen reads as intended (raises ValueError if it can't)."""
    lines = [line.strip() for line in generated.split("\n")]
    span = _loop_span(lines, OPERATOR_TAG)
    if span is None:
        raise ValueError(f"no {OPERATOR_TAG} loop")
    ops = symmetry_operators(space_group_symbol(generated))
    loop = ["loop_", OPERATOR_ID_TAG, OPERATOR_TAG, *(f"{i} '{op}'" for i, op in enumerate(ops, start=1))]
    lines[span[0]:span[2]] = loop

    properties = _loop_span(lines, ATOM_TYPE_TAGS[0])
    if properties is not None:
        del lines[properties[0]:properties[2]]
    return "\n".join(lines)
