"""Triton adapter for matserve.generator.service."""

import numpy as np
import triton_python_backend_utils as pb_utils

from matserve.forcefield_model import torch_device
from matserve.generator.service import GeneratorService, configured_checkpoints
from matserve.settings import Settings
from matserve.torch_setup import configure_torch


def _text(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_torch(settings.torch_threads)
        checkpoints = configured_checkpoints(settings.generator_small, settings.generator_medium,
                                             settings.generator_large)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.service = GeneratorService(checkpoints, device)

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        model = _text(request, "MODEL")[0].decode()
        prompts = [p.decode() for p in _text(request, "PROMPTS")]
        top_k = int(_text(request, "TOP_K")[0])
        try:
            completed = self.service.complete(model, prompts, seed=int(_text(request, "SEED")[0]),
                                              temperature=float(_text(request, "TEMPERATURE")[0]),
                                              top_k=top_k if top_k > 0 else None)
        except ValueError as error:  # an unconfigured model, or a prompt longer than its context
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
        texts = np.array([t.encode() for t, _ in completed], dtype=object)
        finish = np.array([f.encode() for _, f in completed], dtype=object)
        return pb_utils.InferenceResponse([pb_utils.Tensor("TEXTS", texts), pb_utils.Tensor("FINISH", finish)])
