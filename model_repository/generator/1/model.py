"""Triton adapter for matserve.generator.service: a decoupled model whose scheduler loops (one
per named model) own the running batches.

``execute`` only checks each request and hands it to the service, whose scheduler
(matserve.generator.scheduler) samples the prompts of every request together and sends one
response per prompt (INDEX, TEXT, FINISH) the step its CIF ends; the last one carries the FINAL
flag. A request whose caller went away leaves the batch at the next step and is closed with a
bare FINAL flag (else Triton holds it, and the model cannot unload).
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from matserve.forcefield_model import torch_device
from matserve.generator.service import Completion, GeneratorService, configured_checkpoints
from matserve.logs import configure_logging
from matserve.settings import Settings
from matserve.torch_setup import configure_torch
from matserve.triton_adapter import invalid_input

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _values(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise ValueError(f"input {name} is missing")
    return tensor.as_numpy().reshape(-1)


def _completion(request):
    top_k = int(_values(request, "TOP_K")[0])
    return Completion(model=_values(request, "MODEL")[0].decode(),
                      prompts=[p.decode() for p in _values(request, "PROMPTS")],
                      seed=int(_values(request, "SEED")[0]),
                      temperature=float(_values(request, "TEMPERATURE")[0]),
                      top_k=top_k if top_k > 0 else None)


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_logging(settings.log_level)
        configure_torch(settings.torch_threads)
        checkpoints = configured_checkpoints(settings.generator_small, settings.generator_medium,
                                             settings.generator_large)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.service = GeneratorService(checkpoints, device, kv_cache_bytes=settings.generator_kv_cache_mb * 2**20)
        self.service.start()

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:  # an unconfigured model, no prompts, a prompt longer than the model's context
                self.service.submit(_completion(request), on_text=_text_sender(sender), on_error=_error_sender(sender),
                                    is_cancelled=sender.is_cancelled, on_cancelled=_closer(sender))
            except ValueError as error:
                sender.send(invalid_input(pb_utils, error), flags=FINAL)
        return None

    def finalize(self):
        self.service.stop()


def _text_sender(sender):
    def send(index, text, finish_reason, last):
        outputs = [pb_utils.Tensor("INDEX", np.array([index], dtype=np.int32)),
                   pb_utils.Tensor("TEXT", np.array([text.encode()], dtype=object)),
                   pb_utils.Tensor("FINISH", np.array([finish_reason.encode()], dtype=object))]
        sender.send(pb_utils.InferenceResponse(outputs), flags=FINAL if last else 0)
    return send


def _closer(sender):
    def close():  # no response: the caller went away, but Triton holds the request until FINAL
        sender.send(flags=FINAL)
    return close


def _error_sender(sender):
    def send(error):
        message = f"generator failed: {type(error).__name__}"
        sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INTERNAL)),
                    flags=FINAL)
    return send
