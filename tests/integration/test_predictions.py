"""Predictions, the Python client and the CLI against the real service (tritonserver + mfd phonons)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matserve.alignn.predictor import FormationEnergyModel
from matserve.client import MatserveClient, MatserveError
from matserve.structures import System
from tests.crystals import nacl, rattled, si
from tests.gateway.test_predict import NACL_POSCAR

pytestmark = pytest.mark.integration


def test_submit_poll_success_with_mfd_fields(service):
    with MatserveClient(service.url) as client:
        job_id = client.submit_job(NACL_POSCAR, "mfd")
        body = client.poll_job(job_id, timeout_s=120)
    assert body["status"] == "SUCCESS" and body["model"] == "mfd"
    assert body["citation"].startswith("F. Legrain")
    assert 2.5 < body["ml_Cv"] < 3.0  # kB/atom at 300 K, below the Dulong–Petit 3
    assert body["ml_Svib"] > 0 and "harmonic phonons" in body["description"]


def test_client_errors_carry_the_envelope_message(service):
    with MatserveClient(service.url) as client, pytest.raises(MatserveError) as caught:
        client.submit_job(NACL_POSCAR, "nonesuch")
    assert caught.value.status_code == 404 and "available models: alignn, mfd" in caught.value.message.replace(", plmf", "")


def test_alignn_through_triton_equals_the_model_in_process(service):
    expected = FormationEnergyModel().predict([System.from_pymatgen(Structure.from_str(NACL_POSCAR, fmt="poscar"))])
    with MatserveClient(service.url) as client:
        body = client.poll_job(client.submit_job(NACL_POSCAR, "alignn"), timeout_s=60)
    assert body["status"] == "SUCCESS" and body["citation"].startswith("K. Choudhary")
    assert body["ml_formation_energy_per_atom"] == pytest.approx(float(expected[0]), abs=1e-5)
    assert "ALIGNN formation energy per atom" in body["description"]


def test_americium_is_answered_by_alignn_and_refused_by_mfd_naming_its_force_field(service):
    americium = NACL_POSCAR.replace("Na Cl", "Am Cl")  # Z 95: in ALIGNN's element table, not in CHGNet's
    expected = FormationEnergyModel().predict([System.from_pymatgen(Structure.from_str(americium, fmt="poscar"))])
    answered = service.post("/v1/alignn/predict", data={"file": americium})
    assert answered.status_code == 200, answered.text
    assert answered.json()["ml_formation_energy_per_atom"] == pytest.approx(float(expected[0]), abs=1e-5)
    refused = service.post("/v1/mfd/predict", data={"file": americium})
    assert refused.status_code == 422
    assert refused.json()["error"] == ("mfd computes with the force field 'chgnet', which does not support atomic "
                                       "numbers [95]")


def test_plmf_answers_every_field_as_the_model_in_process(service):
    from matserve.properties.plmf.model import PlmfModel
    from tests.gateway.test_predict_plmf import PLMF_FIELDS

    expected = PlmfModel().predict(Structure.from_str(NACL_POSCAR, fmt="poscar"))
    with MatserveClient(service.url) as client:
        body = client.poll_job(client.submit_job(NACL_POSCAR, "plmf"), timeout_s=60)
    assert body["status"] == "SUCCESS" and body["citation"].startswith("O. Isayev")
    assert list(body)[-len(PLMF_FIELDS):] == PLMF_FIELDS
    assert body["ml_egap_type"] == expected.egap_type == "insulator"
    assert body["ml_egap"] == pytest.approx(expected.egap)
    assert body["ml_agl_heat_capacity_Cp_300K"] == pytest.approx(expected.cp_cell)
    assert body["ml_agl_thermal_expansion_300K"] == pytest.approx(expected.thermal_expansion)
    assert "composition only" in body["description"]


def test_client_relax_returns_what_it_was_given(service):
    structure = AseAtomsAdaptor.get_structure(rattled(si(), seed=4))
    atoms = rattled(nacl(), seed=5)
    with MatserveClient(service.url) as client:
        relaxed_structure, relaxed_atoms = client.relax([structure, atoms], fmax=0.05)
    assert isinstance(relaxed_structure.structure, Structure) and relaxed_structure.converged
    assert type(relaxed_atoms.structure).__name__ == "Atoms" and relaxed_atoms.converged
    assert np.abs(relaxed_atoms.forces).max() <= 0.05


def run_cli(service, *args):
    return subprocess.run([sys.executable, "-m", "matserve.cli", *args, "--url", service.url],
                          capture_output=True, text=True, timeout=300)


def test_cli_predict_with_aflow_flags(service, tmp_path):
    poscar, out = tmp_path / "nacl.poscar", tmp_path / "out.json"
    poscar.write_text(NACL_POSCAR)
    done = run_cli(service, "predict", str(poscar), "--model", "mfd", "--format", "json", "--fields", "ml_Cv,ml_Fvib",
                   "--outfile", str(out))
    assert done.returncode == 0, done.stderr
    assert set(json.loads(out.read_text())) == {"ml_Cv", "ml_Fvib"}
    text = run_cli(service, "predict", str(poscar), "--model", "mfd", "--fields", "ml_Svib")
    assert text.stdout.startswith("ml_Svib: ")


def test_cli_relax_writes_relaxed_cifs(service, tmp_path):
    files = []
    for i, crystal in enumerate((rattled(si(), seed=1), rattled(nacl(), seed=2))):
        path = tmp_path / f"in{i}.cif"
        crystal.write(path)
        files.append(str(path))
    done = run_cli(service, "relax", *files, "--cellopt", "--fmax", "0.05", "--outdir", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["in0_relaxed.cif", "in1_relaxed.cif"]
    assert Structure.from_file(tmp_path / "out" / "in0_relaxed.cif").composition.reduced_formula == "Si"


def test_cli_reports_a_missing_model_and_exits_non_zero(service, tmp_path):
    poscar = tmp_path / "nacl.poscar"
    poscar.write_text(NACL_POSCAR)
    done = run_cli(service, "predict", str(poscar), "--model", "nonesuch")
    assert done.returncode == 1 and "404" in done.stderr
