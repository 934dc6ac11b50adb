"""Real data for the generator tests, read from the shared data folder beside the project."""

from __future__ import annotations

import warnings

import pytest
from pymatgen.core import Structure

from training.shared_data import MP_STRUCTURES, SHARED_DATA

VOCAB_TXT = SHARED_DATA.parent / "crystallm" / "vocab.txt"

# Rows of mp_cgcnn_36k.csv.gz the tests use: BaTe (Fm-3m), Hf2S (P6_3/mmc), Si, H2CO3 (with H), CaFeO3.
MP_ROWS = {"BaTe": 1, "Hf2S": 2, "Si": 22, "H2CO3": 19, "CaFeO3": 24}


@pytest.fixture(scope="session")
def mp_structures() -> dict[str, Structure]:
    """A few Materials Project crystals, by reduced formula (only the first rows are read)."""
    if not MP_STRUCTURES.exists():
        pytest.skip(f"{MP_STRUCTURES} is not here")
    import pandas as pd

    table = pd.read_csv(MP_STRUCTURES, nrows=max(MP_ROWS.values()) + 1, usecols=["material_id", "cif"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = {name: Structure.from_str(table["cif"][row], fmt="cif") for name, row in MP_ROWS.items()}
    for name, structure in structures.items():
        assert structure.composition.reduced_formula == name
    return structures


@pytest.fixture(scope="session")
def crystallm_cifs(mp_structures) -> dict[str, str]:
    """The same crystals as CrystaLLM training text."""
    from matserve.generator.cif_format import to_crystallm_cif

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: to_crystallm_cif(structure) for name, structure in mp_structures.items()}


@pytest.fixture(scope="module")
def model():
    """The sampler and scheduler tests' small random GPT (test_model.py has a model of its own)."""
    from tests.matserve.generator.random_models import small_random_gpt

    return small_random_gpt()


@pytest.fixture(scope="module")
def chatty_model():
    from tests.matserve.generator.random_models import chatty_random_gpt

    return chatty_random_gpt()
