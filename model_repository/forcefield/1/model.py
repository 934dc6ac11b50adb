"""Triton adapter for the force field: a decoupled model whose scheduler loop owns one running batch.

``execute`` only checks each request and hands it to the scheduler (matserve.relax_scheduler),
which relaxes the structures of every request together and sends one response per structure
the step it finishes; the last one carries the FINAL flag.
"""

import json

import triton_python_backend_utils as pb_utils

from matserve.forcefield_model import (OPTIONAL_INPUTS, REQUIRED_INPUTS, STRUCTURE_OUTPUTS, ForcefieldModel,
                                       InvalidBatchError, structure_outputs, torch_device)
from matserve.logs import configure_logging
from matserve.relax_scheduler import RelaxJob, RelaxScheduler
from matserve.settings import Settings
from matserve.torch_setup import configure_torch
from matserve.triton_adapter import invalid_input, read_inputs, tensors

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_logging(settings.log_level)
        configure_torch(settings.torch_threads)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.model = ForcefieldModel(settings.forcefield, device, settings.forcefield_modal, settings.batch_size,
                                     settings.forcefield_model)
        self.config = json.loads(args["model_config"])
        self.scheduler = RelaxScheduler(self.model.forcefield, settings.batch_size)
        self.scheduler.start()

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                systems, options, budget = self.model.parse(read_inputs(pb_utils, request, REQUIRED_INPUTS + OPTIONAL_INPUTS))
            except InvalidBatchError as error:
                sender.send(invalid_input(pb_utils, error), flags=FINAL)
                continue
            self.scheduler.submit(RelaxJob(systems, options, on_result=_result_sender(sender),
                                           on_error=_error_sender(sender), is_cancelled=sender.is_cancelled,
                                           on_cancelled=_closer(sender),
                                           atom_budget=budget))
        return None

    def finalize(self):
        self.scheduler.stop()


def _result_sender(sender):
    def send(index, result, last):
        sender.send(tensors(pb_utils, structure_outputs(index, result), STRUCTURE_OUTPUTS), flags=FINAL if last else 0)
    return send


def _closer(sender):
    def close():  # a cancelled request still needs its FINAL flag, or Triton waits for it at shutdown
        sender.send(flags=FINAL)
    return close


def _error_sender(sender):
    def send(error):
        message = f"force field failed: {type(error).__name__}"
        sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INTERNAL)),
                    flags=FINAL)
    return send
