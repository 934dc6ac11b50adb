"""Triton adapter for matserve.properties.mfd."""

import triton_python_backend_utils as pb_utils

from matserve.forcefield_model import torch_device
from matserve.properties.mfd import InvalidStructureError, MfdModel
from matserve.properties.phonons import PhononSettings
from matserve.settings import Settings
from matserve.torch_setup import configure_torch

INPUTS = ("POSITIONS", "NUMBERS", "CELL")
OUTPUTS = ("ML_CV", "ML_FVIB", "ML_SVIB", "DESCRIPTION")


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_torch(settings.torch_threads)
        phonons = PhononSettings(supercell_min_length=settings.phonon_supercell_min_length,
                                 displacement=settings.phonon_displacement,
                                 atom_budget=settings.phonon_atom_budget)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.model = MfdModel(settings=phonons, forcefield_name=settings.forcefield, device=device)

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        inputs = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in INPUTS}
        try:
            outputs = self.model.execute(inputs)
        except InvalidStructureError as error:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
        return pb_utils.InferenceResponse([pb_utils.Tensor(name, outputs[name]) for name in OUTPUTS])
