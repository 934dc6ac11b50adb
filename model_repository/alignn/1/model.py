"""Triton adapter for matserve.alignn.predictor."""

import triton_python_backend_utils as pb_utils

from matserve.contract import STRUCTURE_ARRAYS
from matserve.alignn.predictor import FormationEnergyModel
from matserve.forcefield_model import torch_device
from matserve.settings import Settings
from matserve.torch_setup import configure_torch
from matserve.triton_adapter import answer

OUTPUTS = ("FORMATION_ENERGY", "DESCRIPTION")


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_torch(settings.torch_threads)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.model = FormationEnergyModel(settings.alignn_checkpoint, device=device)

    def execute(self, requests):
        return [answer(pb_utils, request, self.model.execute, STRUCTURE_ARRAYS, OUTPUTS) for request in requests]
