"""Triton adapter for matserve.properties.mfd."""

import triton_python_backend_utils as pb_utils

from matserve.contract import STRUCTURE_ARRAYS
from matserve.forcefield_model import torch_device
from matserve.properties.mfd import MfdModel
from matserve.properties.phonons import PhononSettings
from matserve.settings import Settings
from matserve.torch_setup import configure_torch
from matserve.triton_adapter import answer

OUTPUTS = ("ML_CV", "ML_FVIB", "ML_SVIB", "DESCRIPTION")


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_torch(settings.torch_threads)
        phonons = PhononSettings(supercell_min_length=settings.phonon_supercell_min_length,
                                 displacement=settings.phonon_displacement,
                                 atom_budget=settings.phonon_atom_budget)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        modal, model_file = settings.forcefield_options(settings.forcefield)
        self.model = MfdModel(settings=phonons, forcefield_name=settings.forcefield, device=device,
                              modal=modal, model=model_file,
                              dispersion=settings.dispersion_config)

    def execute(self, requests):
        return [answer(pb_utils, request, self.model.execute, STRUCTURE_ARRAYS, OUTPUTS) for request in requests]
