"""Triton adapter for matserve.generator.service.

Triton's dynamic batcher hands `execute` every request queued while the model was busy (or
that arrived within the queue delay); all their prompts are sampled in one batch per model.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from matserve.forcefield_model import torch_device
from matserve.generator.service import Completion, GeneratorService, configured_checkpoints
from matserve.settings import Settings
from matserve.torch_setup import configure_torch


def _text(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)


def _completion(request):
    top_k = int(_text(request, "TOP_K")[0])
    return Completion(model=_text(request, "MODEL")[0].decode(),
                      prompts=[p.decode() for p in _text(request, "PROMPTS")],
                      seed=int(_text(request, "SEED")[0]),
                      temperature=float(_text(request, "TEMPERATURE")[0]),
                      top_k=top_k if top_k > 0 else None)


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_torch(settings.torch_threads)
        checkpoints = configured_checkpoints(settings.generator_small, settings.generator_medium,
                                             settings.generator_large)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.service = GeneratorService(checkpoints, device, kv_cache_bytes=settings.generator_kv_cache_mb * 2**20)

    def execute(self, requests):
        results = self.service.complete_many([_completion(request) for request in requests])
        return [self._response(result) for result in results]

    @staticmethod
    def _response(result):
        if isinstance(result, ValueError):  # an unconfigured model, or a prompt longer than its context
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(result), pb_utils.TritonError.INVALID_ARG))
        texts = np.array([[t.encode() for t, _ in result]], dtype=object)  # (1, prompts): batch dimension first
        finish = np.array([[f.encode() for _, f in result]], dtype=object)
        return pb_utils.InferenceResponse([pb_utils.Tensor("TEXTS", texts), pb_utils.Tensor("FINISH", finish)])
