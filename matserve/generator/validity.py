"""Is a generated (post-processed) CIF a plausible crystal? CrystaLLM's checks, one message per failure.

1. cell: lengths 0.5-1000 Å, angles 10-170°.
2. formula: the `data_`, `_chemical_formula_sum` and `_chemical_formula_structural` formulas agree.
3. multiplicity: site multiplicities add up to `_chemical_formula_sum`.
4. bonds: every CrystalNN bond within ±32 % of its expected length: cation + anion ionic
   radii when the electronegativity difference is >= 1.7, else the atomic radii; a bond to
   H passes up to 2.5x. A bond whose radii pymatgen lacks is not judged.
5. space group: the stated one is what pymatgen finds at symprec 0.1.
Checks 4 and 5 need the structure; when pymatgen cannot build it, one "structure" message
stands for both, and they are skipped when the cell fails check 1. A structure sparser than
MAX_VOLUME_PER_ATOM fails check 4 unjudged: CrystalNN would take minutes over it.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
from pymatgen.analysis.local_env import CrystalNN
from pymatgen.core import Composition, Element, Structure
from pymatgen.io.cif import CifParser
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from matserve.generator.cif_format import SYMPREC, postprocess, space_group_symbol

LENGTH_RANGE = (0.5, 1000.0)  # Å
ANGLE_RANGE = (10.0, 170.0)  # degrees
BOND_TOLERANCE = 0.32
HYDROGEN_BOND_FACTOR = 2.5
IONIC_ELECTRONEGATIVITY_GAP = 1.7
# Our guard, not CrystaLLM's: solids stay well below it (Cs metal, among the sparsest, has
# about 115 Å³ per atom), while CrystalNN's time grows with a cell's void: rock salt with its
# c axis stretched took 1 s at 377 Å³ per atom, 8 s at 940 and over 3 minutes at 1900.
MAX_VOLUME_PER_ATOM = 200.0  # Å³
# Sites closer than this (fractional) are one site. Four-decimal coordinates put the images
# of a special position such as (x, 2x, z) up to ~1e-4 apart, past pymatgen's default 1e-4.
SITE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Validity:
    messages: tuple[str, ...]  # one per failed check, "<check>: <what is wrong>"

    @property
    def valid(self) -> bool:
        return not self.messages


UNFINISHED = {"length": "generation: stopped at the model's token cap before the CIF ended",
              "time": "generation: stopped at the model's time limit before the CIF ended"}


@dataclass(frozen=True)
class JudgedText:
    """A generated text as `/v1/generate` returns it: the post-processed CIF (the text as
    generated when it cannot be post-processed) and why it is not valid, if it is not."""

    cif: str
    messages: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.messages


def judge(text: str, finish_reason: str = "stop") -> JudgedText:
    """Post-process and check one generated text. A text cut off by the token cap or the time
    limit is never valid, however it reads."""
    unfinished = (UNFINISHED[finish_reason],) if finish_reason in UNFINISHED else ()
    try:
        cif = postprocess(text)
    except ValueError as error:
        return JudgedText(text, unfinished + (f"cif: {error}",))
    try:
        messages = validate(cif).messages
    except Exception as error:  # pymatgen raises many kinds on odd text: a message, not a crash
        messages = (f"validity: could not be checked ({type(error).__name__}: {error})",)
    return JudgedText(cif, unfinished + messages)


def validate(cif: str) -> Validity:
    """Run every check on a post-processed CIF (`cif_format.postprocess`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parser = CifParser.from_str(cif, site_tolerance=SITE_TOLERANCE)
            block = next(iter(parser.as_dict().values()))
        except Exception as error:  # pymatgen raises many kinds on malformed text
            return Validity((f"cif: cannot be read ({error})",))
        cell = _check_cell(block)
        messages = [cell, _check_formula(cif, block), _check_multiplicity(block)]
        if cell is None:  # CrystalNN ran over 10 minutes on a rock salt with a 1200 Å c axis
            try:
                structure = parser.parse_structures(primitive=False)[0]
            except Exception as error:
                messages.append(f"structure: pymatgen cannot build it ({error})")
            else:
                messages += [_check_bonds(structure), _check_space_group(cif, structure)]
    return Validity(tuple(m for m in messages if m))


def _number(value: str) -> float:
    return float(re.sub(r"\(\d+\)$", "", value))  # drop a standard uncertainty, "7.09(2)"


def _check_cell(block: dict) -> str | None:
    try:
        lengths = [_number(block[f"_cell_length_{axis}"]) for axis in "abc"]
        angles = [_number(block[f"_cell_angle_{name}"]) for name in ("alpha", "beta", "gamma")]
    except (KeyError, ValueError, TypeError) as error:  # TypeError: a cell tag inside a loop reads as a list
        return f"cell: missing or unreadable parameter ({error})"
    low, high = LENGTH_RANGE
    bad = [f"length {x:g} Å outside {low:g}-{high:g} Å" for x in lengths if not low <= x <= high]
    low, high = ANGLE_RANGE
    bad += [f"angle {x:g}° outside {low:g}-{high:g}°" for x in angles if not low <= x <= high]
    return "cell: " + ", ".join(bad) if bad else None


def _check_formula(cif: str, block: dict) -> str | None:
    header = re.search(r"^data_(\S+)", cif, re.MULTILINE)
    stated = {"data_": header[1] if header else None,
              "_chemical_formula_sum": block.get("_chemical_formula_sum"),
              "_chemical_formula_structural": block.get("_chemical_formula_structural")}
    try:
        reduced = {name: Composition(value).reduced_formula for name, value in stated.items()}
    except Exception:  # missing (None) or not a formula
        return f"formula: cannot read all three formulas ({stated})"
    if len(set(reduced.values())) > 1:
        return "formula: " + ", ".join(f"{name} {value}" for name, value in reduced.items()) + " disagree"
    return None


def _check_multiplicity(block: dict) -> str | None:
    symbols = block.get("_atom_site_type_symbol")
    multiplicities = block.get("_atom_site_symmetry_multiplicity")
    try:
        expected = Composition(block["_chemical_formula_sum"])
        if isinstance(symbols, str):  # a loop of one row reads as a plain value
            symbols, multiplicities = [symbols], [multiplicities]
        counted = Counter()
        for symbol, multiplicity in zip(symbols, multiplicities, strict=True):
            counted[symbol] += int(multiplicity)
        found = Composition(counted)
    except Exception as error:
        return f"multiplicity: cannot count the sites ({error})"
    if found != expected:
        return f"multiplicity: sites add up to {found.formula}, _chemical_formula_sum is {expected.formula}"
    return None


def expected_bond_length(a: Element, b: Element) -> float | None:
    """Expected a-b distance in Å, or None when pymatgen lacks a radius it needs."""
    if abs(a.X - b.X) >= IONIC_ELECTRONEGATIVITY_GAP:  # NaN (noble gases) compares False: atomic radii
        cation, anion = (a, b) if a.X < b.X else (b, a)
        radii = [cation.average_cationic_radius, anion.average_anionic_radius]
    else:
        radii = [a.atomic_radius, b.atomic_radius]
    if any(r is None or float(r) <= 0 for r in radii):
        return None
    return float(sum(float(r) for r in radii))


def _check_bonds(structure: Structure) -> str | None:
    sparseness = structure.volume / len(structure)
    if sparseness > MAX_VOLUME_PER_ATOM:  # CrystalNN's Voronoi cells grow with the void: minutes
        return (f"bonds: not judged, {sparseness:.0f} Å³ per atom is too sparse for a crystal "
                f"(at most {MAX_VOLUME_PER_ATOM:g})")
    bad, total, example = 0, 0, ""
    try:
        neighbours = CrystalNN().get_all_nn_info(structure)
    except Exception as error:
        return f"bonds: CrystalNN failed ({error})"
    for i, site in enumerate(structure):
        a = Element(site.specie.symbol)
        for info in neighbours[i]:
            b = Element(info["site"].specie.symbol)
            expected = expected_bond_length(a, b)
            if expected is None:
                continue
            # The neighbour is a periodic image; min-image distance would make a bond to the
            # site's own image (along a short axis) 0 Å.
            length = float(np.linalg.norm(info["site"].coords - site.coords))
            ratio = length / expected
            if "H" in (a.symbol, b.symbol):
                ok = ratio < HYDROGEN_BOND_FACTOR
            else:
                ok = 1 - BOND_TOLERANCE < ratio < 1 + BOND_TOLERANCE
            total += 1
            if not ok:
                bad += 1
                example = example or f"{a}-{b} {length:.2f} Å, expected {expected:.2f} Å"
    if bad:
        return f"bonds: {bad} of {total} off their expected length by more than {BOND_TOLERANCE:.0%} (e.g. {example})"
    return None


def _check_space_group(cif: str, structure: Structure) -> str | None:
    try:
        stated = space_group_symbol(cif)
        found = SpacegroupAnalyzer(structure, symprec=SYMPREC).get_space_group_symbol()
    except Exception as error:
        return f"space group: cannot be determined ({error})"
    if stated.strip() != found:
        return f"space group: stated {stated}, pymatgen finds {found} at symprec {SYMPREC:g}"
    return None
