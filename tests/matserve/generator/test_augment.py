"""Augmented writings of a training CIF: other orbit representatives and site order, the same crystal."""

from __future__ import annotations

import warnings

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from matserve.generator.cif_format import postprocess, to_crystallm_cif
from matserve.generator.validity import validate
from training.generator.augment import writings


def read(text: str) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(postprocess(text), fmt="cif")


def site_rows(text: str) -> list[str]:
    lines = text.strip().split("\n")
    return lines[lines.index("_atom_site_occupancy") + 1:]


def test_each_writing_is_the_same_crystal_written_otherwise(mp_structures):
    for name, structure in mp_structures.items():
        texts = writings(structure, 4, seed=1)
        assert texts[0] == to_crystallm_cif(structure)
        canonical = read(texts[0])
        for text in texts[1:]:
            assert text.split("_atom_site_occupancy")[0] == texts[0].split("_atom_site_occupancy")[0]
            assert text.endswith("1.0\n\n")
            again = read(text)
            assert len(again) == len(canonical), name
            assert StructureMatcher().fit(again, canonical), name
            assert validate(postprocess(text)).messages == validate(postprocess(texts[0])).messages, name


def test_writings_move_sites_to_other_orbit_members_and_reorder_the_loop(mp_structures):
    texts = writings(mp_structures["CaFeO3"], 6, seed=0)
    canonical = site_rows(texts[0])
    others = [site_rows(text) for text in texts[1:]]
    assert any(rows != canonical for rows in others)
    assert any([row.split()[0] for row in rows] != [row.split()[0] for row in canonical] for rows in others)  # order
    assert any(sorted(row.split()[3:6] for row in rows) != sorted(row.split()[3:6] for row in canonical)
               for rows in others)  # positions
    for rows in others:  # labels numbered in the loop's order, as CifWriter numbers them
        assert [row.split()[1] for row in rows] == [f"{row.split()[0]}{i}" for i, row in enumerate(rows)]
        assert sorted(row.split()[2] for row in rows) == sorted(row.split()[2] for row in canonical)  # multiplicities


def test_one_writing_is_the_canonical_text(mp_structures):
    assert writings(mp_structures["Si"], 1, seed=0) == [to_crystallm_cif(mp_structures["Si"])]


def test_without_shuffling_only_the_positions_move(mp_structures):
    texts = writings(mp_structures["CaFeO3"], 6, seed=0, shuffle=False)
    canonical = site_rows(texts[0])
    assert len(texts) > 1
    for text in texts[1:]:
        rows = site_rows(text)
        assert [row.split()[:3] for row in rows] == [row.split()[:3] for row in canonical]  # symbol, label, multiplicity
    assert any(site_rows(text) != canonical for text in texts[1:])
