"""The served plmf model over the committed LightGBM files, and the training script's reproducibility."""

import gzip

import lightgbm as lgb
import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from matserve.properties.debye import cp_from_cv, debye_cv
from training.plmf import train
from matserve.properties.plmf.fields import SPECS
from matserve.contract import InvalidInput, encode_structures
from matserve.properties.plmf.model import MODELS, OUTPUTS, PlmfModel
from matserve.structures import System
from tests.matserve.test_plmf import fcc_cu, rocksalt_nacl


@pytest.fixture(scope="module")
def model() -> PlmfModel:
    return PlmfModel()


def test_copper_is_a_stiff_metal(model):
    result = model.predict(fcc_cu())
    assert result.egap_type == "metal" and result.egap == 0.0
    assert 100 < result.bulk_modulus < 200  # GPa; PBE about 140
    assert 20 < result.shear_modulus < 80
    assert 200 < result.debye_temperature < 500  # K; experiment 343
    assert result.energy_per_atom == pytest.approx(-2.21, abs=0.3)  # AFLOW's energy_atom of Cu (in the training set)


def test_rock_salt_is_a_soft_insulator(model):
    result = model.predict(rocksalt_nacl())
    assert result.egap_type == "insulator" and 3.0 < result.egap < 7.0  # PBE about 5 eV
    assert 10 < result.bulk_modulus < 45


def test_heat_capacities_follow_the_debye_temperature(model):
    primitive = model.predict(rocksalt_nacl().get_primitive_structure())
    assert primitive.cv_per_atom == pytest.approx(debye_cv(primitive.debye_temperature, 300.0))
    volume = rocksalt_nacl().get_primitive_structure().volume / 2
    assert primitive.cp_per_atom == pytest.approx(
        cp_from_cv(primitive.cv_per_atom, primitive.thermal_expansion, primitive.bulk_modulus, volume))
    assert primitive.cp_per_atom > primitive.cv_per_atom
    assert primitive.cv_cell == pytest.approx(2 * primitive.cv_per_atom)
    assert 0 < primitive.thermal_conductivity
    assert primitive.thermal_expansion == pytest.approx(2.2e-4, rel=0.3)  # AFLOW AGL's NaCl (volumetric, 1/K)
    conventional = model.predict(rocksalt_nacl())  # 8 atoms: the same per atom, four times per cell
    assert conventional.cp_per_atom == pytest.approx(primitive.cp_per_atom)
    assert conventional.cp_cell == pytest.approx(4 * primitive.cp_cell)


def test_execute_gives_the_triton_outputs(model):
    system = System.from_pymatgen(fcc_cu())
    outputs = model.execute(encode_structures([system]))
    assert list(outputs) == list(OUTPUTS)
    assert outputs["ML_EGAP_TYPE"].dtype == object and outputs["ML_EGAP_TYPE"][0] == b"metal"
    assert all(outputs[name].shape == (1,) and outputs[name].dtype == np.float64 for name in OUTPUTS[1:-1])
    assert b"composition only" in outputs["DESCRIPTION"][0]


def test_elements_without_reference_data_are_refused(model):
    with pytest.raises(InvalidInput, match=r"atomic numbers \[98\]"):
        model.predict(Structure(Lattice.cubic(3.5), ["Cf"], [[0, 0, 0]]))


# Retraining on another CPU does not give the committed model's bytes: the features carry
# last-bit differences from numpy's CPU-specific code paths, which move LightGBM's bin
# boundaries, and bagging amplifies them. Measured on one machine (AMD EPYC): retraining, and
# three retrainings with the training features perturbed by 0-3 ulp, gave test MAEs 1.2-2.8 %
# above the committed model's 32.9 K and a mean |difference| from its predictions of 7.9-9.7 K.
# (0.24-0.29 of that MAE; 0.31 with the feature columns reordered). Changing the recipe moved
# them past that: 4 leaves instead of 31 gave +8.2 % and 0.46, 100 rows per leaf instead of 10
# gave +6.3 % and 0.48. So the recipe counts as reproduced when the test MAE is within 5 % of
# the committed one and the mean |difference| from its predictions is under 0.4 of that MAE.
MAE_TOLERANCE = 0.05
AGREEMENT_FRACTION = 0.4


def test_training_reproduces_the_committed_debye_model(tmp_path, monkeypatch):
    if not (train.DATA / "aflow_composition").exists():
        pytest.skip("../shared/data is not here")
    monkeypatch.setattr(train, "CACHE", tmp_path)
    spec = SPECS["debye_temperature"]
    data = train.load_dataset(spec.dataset)
    booster, _ = train.fit(spec, data, train.composition_feature_names())
    with gzip.open(MODELS / "debye_temperature.txt.gz", "rt") as handle:
        committed = lgb.Booster(model_str=handle.read())
    x_test, truth = data.x["test"], data.y[spec.target]["test"]
    ours, theirs = train.predict(booster, spec, x_test), train.predict(committed, spec, x_test)
    committed_mae = float(np.mean(np.abs(theirs - truth)))
    assert committed_mae == pytest.approx(32.9, abs=0.1)  # K, as models/metrics.json records
    assert float(np.mean(np.abs(ours - truth))) == pytest.approx(committed_mae, rel=MAE_TOLERANCE)
    assert float(np.mean(np.abs(ours - theirs))) < AGREEMENT_FRACTION * committed_mae
