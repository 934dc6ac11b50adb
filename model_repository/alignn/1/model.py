"""Triton adapter for matserve.alignn.predictor."""

import triton_python_backend_utils as pb_utils

from matserve.alignn.predictor import FormationEnergyModel, InvalidStructureError
from matserve.forcefield_model import torch_device
from matserve.settings import Settings
from matserve.torch_setup import configure_torch

INPUTS = ("POSITIONS", "NUMBERS", "CELL", "CELLS", "N_ATOMS")
OUTPUTS = ("FORMATION_ENERGY", "DESCRIPTION")


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_torch(settings.torch_threads)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.model = FormationEnergyModel(settings.alignn_checkpoint, device=device)

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        inputs = {}
        for name in INPUTS:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                inputs[name] = tensor.as_numpy()
        try:
            outputs = self.model.execute(inputs)
        except InvalidStructureError as error:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
        return pb_utils.InferenceResponse([pb_utils.Tensor(name, outputs[name]) for name in OUTPUTS])
