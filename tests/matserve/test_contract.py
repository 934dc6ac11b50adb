"""The contract between the gateway and the served models: the codec, its errors, the Triton configs."""

import re
from pathlib import Path

import numpy as np
import pytest
from tritonclient.utils import np_to_triton_dtype

from matserve.contract import (ACTIVE_MASK, STRUCTURE_ARRAYS, InvalidInput, UnsupportedElements, check_elements,
                               decode_one_structure, decode_structures, element_problem, encode_structures)
from matserve.structures import System
from tests.crystals import nacl as nacl_atoms, si as si_atoms

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
STRUCTURE_MODELS = ("alignn", "forcefield", "mfd", "plmf")


def nacl() -> System:
    return System.from_ase(nacl_atoms())


def si() -> System:
    return System.from_ase(si_atoms())


def water() -> System:
    return System([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], [8, 1, 1], pbc=[False] * 3,
                  active_mask=[False, True, True])


def test_structures_come_back_as_they_were_packed():
    systems = [nacl(), water(), si()]
    decoded = decode_structures(encode_structures(systems, active_mask=True))
    assert [s.n_atoms for s in decoded] == [2, 3, 2]
    for sent, received in zip(systems, decoded):
        np.testing.assert_array_equal(received.positions, sent.positions)
        np.testing.assert_array_equal(received.numbers, sent.numbers)
        np.testing.assert_array_equal(received.cell, sent.cell)
        np.testing.assert_array_equal(received.pbc, sent.pbc)
    assert decoded[0].active_mask.tolist() == [True, True]  # none given: every atom moves
    assert decoded[1].active_mask.tolist() == [False, True, True]


def test_the_mask_is_sent_only_when_asked():
    assert set(encode_structures([nacl()])) == set(STRUCTURE_ARRAYS)
    assert set(encode_structures([nacl()], active_mask=True)) == {*STRUCTURE_ARRAYS, ACTIVE_MASK}


@pytest.mark.parametrize("change, field", [
    ({"N_ATOMS": np.array([3], np.int32)}, "N_ATOMS"),
    ({"N_ATOMS": np.array([0, 2], np.int32)}, "N_ATOMS"),
    ({"CELLS": np.zeros((2, 3, 3))}, "CELLS"),
    ({ACTIVE_MASK: np.ones(3, bool)}, ACTIVE_MASK),
])
def test_inconsistent_arrays_are_invalid_input_naming_the_array(change, field):
    arrays = {**encode_structures([nacl()]), **change}
    with pytest.raises(InvalidInput) as raised:
        decode_structures(arrays)
    assert raised.value.field == field


def test_a_missing_array_is_named():
    arrays = encode_structures([nacl()])
    del arrays["PBC"]
    with pytest.raises(InvalidInput, match=r"missing inputs \['PBC'\]"):
        decode_structures(arrays)


def test_a_one_structure_model_refuses_two():
    assert decode_one_structure(encode_structures([si()])).n_atoms == 2
    with pytest.raises(InvalidInput, match="one structure per request, not 2"):
        decode_one_structure(encode_structures([si(), nacl()]))


def test_unsupported_elements_have_one_message():
    with pytest.raises(UnsupportedElements) as raised:
        check_elements("alignn", [95, 11, 95, 118], set(range(1, 101)))
    assert str(raised.value) == "alignn does not support atomic numbers [118]"
    assert raised.value.field == "numbers" and isinstance(raised.value, InvalidInput)
    assert element_problem("plmf", [11, 17], {11, 17}) is None
    assert element_problem("plmf", [98], {11}) == "plmf does not support atomic numbers [98]"


@pytest.mark.parametrize("model", STRUCTURE_MODELS)
def test_every_structure_model_declares_the_codecs_arrays_with_its_types(model):
    """The Triton configs and the codec cannot drift apart: each array, its Triton type, its rank."""
    config = (REPOSITORY / model / "config.pbtxt").read_text()
    declared = {name: (dtype, dims) for name, dtype, dims
                in re.findall(r'name: "(\w+)"\s+data_type: TYPE_(\w+)\s+dims: \[([^\]]*)\]', config)}
    for name, array in encode_structures([nacl(), si()], active_mask=True).items():
        if name == ACTIVE_MASK and model != "forcefield":
            assert name not in declared
            continue
        dtype, dims = declared[name]
        assert dtype == np_to_triton_dtype(array.dtype), name
        assert len(dims.split(",")) == array.ndim, name
