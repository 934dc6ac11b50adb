"""Triton adapter for matserve.properties.plmf."""

import triton_python_backend_utils as pb_utils

from matserve.contract import STRUCTURE_ARRAYS
from matserve.properties.plmf.model import OUTPUTS, PlmfModel
from matserve.triton_adapter import answer


class TritonPythonModel:
    def initialize(self, args):
        self.model = PlmfModel()

    def execute(self, requests):
        return [answer(pb_utils, request, self.model.execute, STRUCTURE_ARRAYS, OUTPUTS) for request in requests]
