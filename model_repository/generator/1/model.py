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

from matserve.contract import InvalidInput
from matserve.forcefield_model import torch_device
from matserve.generator.service import Completion, GeneratorService, configured_checkpoints
from matserve.logs import configure_logging
from matserve.settings import Settings
from matserve.torch_setup import configure_torch
from matserve.triton_adapter import Replies

OUTPUTS = ("INDEX", "TEXT", "FINISH")


def _values(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise InvalidInput(f"input {name} is missing", field=name)
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
            replies = Replies(pb_utils, request.get_response_sender(), "generator")
            try:  # an unconfigured model, no prompts, a prompt longer than the model's context
                self.service.submit(_completion(request), on_text=_text_sender(replies), on_error=replies.fail,
                                    is_cancelled=replies.is_cancelled, on_cancelled=replies.close)
            except InvalidInput as error:
                replies.refuse(error)
        return None

    def finalize(self):
        self.service.stop()


def _text_sender(replies):
    def send(index, text, finish_reason, last):
        outputs = {"INDEX": np.array([index], dtype=np.int32), "TEXT": np.array([text.encode()], dtype=object),
                   "FINISH": np.array([finish_reason.encode()], dtype=object)}
        replies.send(outputs, OUTPUTS, last)
    return send
