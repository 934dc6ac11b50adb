"""ALIGNN checkpoints in the JARVIS layout, and the embedded formation-energy model."""

import json

import numpy as np
import pytest
import torch
from ase.build import bulk

from matserve.alignn.checkpoint import EMBEDDED_DIR, CheckpointError, load_checkpoint, save_checkpoint
from matserve.alignn.predictor import FormationEnergyModel
from matserve.contract import InvalidInput, encode_structures
from matserve.alignn.model import ALIGNN, ALIGNNConfig
from matserve.structures import System

SMALL = ALIGNNConfig(alignn_layers=1, gcn_layers=1, hidden_features=16, embedding_features=8)


def nacl() -> System:
    return System.from_ase(bulk("NaCl", "rocksalt", a=5.64))


def test_a_saved_checkpoint_loads_with_identical_predictions(tmp_path):
    torch.manual_seed(1)
    model = ALIGNN(SMALL).eval()
    save_checkpoint(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["name"] == "alignn" and config["max_neighbors"] == 12
    direct = FormationEnergyModel.__new__(FormationEnergyModel)
    direct.model, direct.checkpoint, direct.device = model, tmp_path, "cpu"
    loaded = FormationEnergyModel(tmp_path)
    np.testing.assert_array_equal(loaded.predict([nacl()]), direct.predict([nacl()]))


def test_a_compiled_models_prefix_is_stripped(tmp_path):
    model = ALIGNN(SMALL).eval()
    save_checkpoint(model, tmp_path)
    (tmp_path / "checkpoint_final.pt").unlink()
    torch.save({"model": {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "checkpoint_300.pt")
    load_checkpoint(tmp_path)


def test_unsupported_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"name": "alignn", "classification": True}}))
    with pytest.raises(ValueError, match="unsupported ALIGNN configuration"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"cutoff": 5.0, "model": {"name": "alignn"}}))
    with pytest.raises(CheckpointError, match="cutoff=5.0"):
        load_checkpoint(tmp_path)


def test_packed_inputs_give_one_energy_per_structure():
    model = FormationEnergyModel()
    systems = [nacl(), System.from_ase(bulk("Cu", "fcc", a=3.61))]
    packed = model.execute(encode_structures(systems))
    single = model.execute(encode_structures(systems[:1]))
    assert packed["FORMATION_ENERGY"].shape == (2,)
    assert packed["FORMATION_ENERGY"][0] == pytest.approx(single["FORMATION_ENERGY"][0], abs=1e-5)
    assert b"ALIGNN formation energy per atom" in single["DESCRIPTION"][0]


def test_structures_alignn_cannot_take_are_invalid():
    model = FormationEnergyModel()
    far = System([[0, 0, 0], [20, 20, 20]], [11, 17], np.eye(3) * 60.0)
    with pytest.raises(InvalidInput, match="no neighbour within 8 Å"):
        model.predict([far])
    with pytest.raises(InvalidInput, match="structure 1: ALIGNN does not support atomic numbers \\[101\\]"):
        model.predict([nacl(), System([[0, 0, 0]], [101], np.eye(3) * 3.0)])
    with pytest.raises(InvalidInput, match="N_ATOMS"):
        model.execute({"POSITIONS": np.zeros((2, 3)), "NUMBERS": np.array([11, 17]), "CELLS": np.stack([np.eye(3)]),
                       "PBC": np.ones((1, 3), bool), "N_ATOMS": np.array([3])})


def test_the_embedded_model_is_the_committed_one():
    assert (EMBEDDED_DIR / "config.json").exists()
    assert FormationEnergyModel().checkpoint == EMBEDDED_DIR


def test_the_embedded_model_predicts_held_out_formation_energies():
    from training.alignn.dataset import build_examples, collate, labelled_split

    rows = labelled_split()
    rows = rows[rows.split == "test"].sample(n=48, random_state=0)
    batch, targets = collate(build_examples(rows))
    with torch.no_grad():
        errors = (load_checkpoint()(batch) - targets).abs()
    assert float(errors.mean()) < 0.15  # eV/atom; the whole test split: see README
