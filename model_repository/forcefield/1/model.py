"""Triton adapter for matserve.forcefield_model: tensors in, tensors out, errors as Triton errors."""

import json

import triton_python_backend_utils as pb_utils

from matserve.forcefield_model import OPTIONAL_INPUTS, OUTPUTS, REQUIRED_INPUTS, ForcefieldModel, InvalidBatchError, torch_device
from matserve.settings import Settings
from matserve.torch_setup import configure_torch
from matserve.triton_adapter import answer


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_torch(settings.torch_threads)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.model = ForcefieldModel(settings.forcefield, device, settings.mace_model, settings.batch_size)
        self.config = json.loads(args["model_config"])

    def execute(self, requests):
        return [answer(pb_utils, request, self.model.execute, REQUIRED_INPUTS + OPTIONAL_INPUTS, OUTPUTS,
                       (InvalidBatchError,)) for request in requests]
