"""Triton adapter for matserve.properties.plmf."""

import triton_python_backend_utils as pb_utils

from matserve.properties.plmf.model import OUTPUTS, InvalidStructureError, PlmfModel

INPUTS = ("POSITIONS", "NUMBERS", "CELL")


class TritonPythonModel:
    def initialize(self, args):
        self.model = PlmfModel()

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        inputs = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in INPUTS}
        try:
            outputs = self.model.execute(inputs)
        except InvalidStructureError as error:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
        return pb_utils.InferenceResponse([pb_utils.Tensor(name, outputs[name]) for name in OUTPUTS])
