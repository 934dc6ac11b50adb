"""Triton adapter for matserve.properties.plmf."""

import triton_python_backend_utils as pb_utils

from matserve.properties.plmf.model import OUTPUTS, InvalidStructureError, PlmfModel
from matserve.triton_adapter import answer

INPUTS = ("POSITIONS", "NUMBERS", "CELL")


class TritonPythonModel:
    def initialize(self, args):
        self.model = PlmfModel()

    def execute(self, requests):
        return [answer(pb_utils, request, self.model.execute, INPUTS, OUTPUTS, (InvalidStructureError,))
                for request in requests]
