"""Triton adapter for matserve.forcefield_model: tensors in, tensors out, errors as Triton errors."""

import json

import triton_python_backend_utils as pb_utils

from matserve.forcefield_model import OPTIONAL_INPUTS, OUTPUTS, REQUIRED_INPUTS, ForcefieldModel, InvalidBatchError, torch_device
from matserve.settings import Settings
from matserve.torch_setup import configure_torch


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_torch(settings.torch_threads)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.model = ForcefieldModel(settings.forcefield, device, settings.mace_model, settings.batch_size)
        self.config = json.loads(args["model_config"])

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        inputs = {}
        for name in REQUIRED_INPUTS + OPTIONAL_INPUTS:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                inputs[name] = tensor.as_numpy()
        try:
            outputs = self.model.execute(inputs)
        except InvalidBatchError as error:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
        return pb_utils.InferenceResponse([pb_utils.Tensor(name, outputs[name]) for name in OUTPUTS])
