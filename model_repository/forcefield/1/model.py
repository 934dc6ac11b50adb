"""Triton adapter for the force field: a decoupled model whose scheduler loop owns one running batch.

``execute`` only checks each request and hands it to the scheduler (matserve.relax_scheduler),
which relaxes the structures of every request together and sends one response per structure
the step it finishes; the last one carries the FINAL flag.
"""

import json

import triton_python_backend_utils as pb_utils

from matserve.contract import InvalidInput
from matserve.forcefield_model import INPUTS, STRUCTURE_OUTPUTS, ForceFieldModel, structure_outputs, torch_device
from matserve.logs import configure_logging
from matserve.relax_scheduler import RelaxJob, RelaxScheduler
from matserve.settings import Settings
from matserve.torch_setup import configure_torch
from matserve.triton_adapter import Replies, read_inputs


class TritonPythonModel:
    def initialize(self, args):
        settings = Settings()
        configure_logging(settings.log_level)
        configure_torch(settings.torch_threads)
        device = torch_device(args["model_instance_kind"], args["model_instance_device_id"])
        self.config = json.loads(args["model_config"])
        name = served_forcefield(self.config, settings.forcefield)
        modal, model_file = settings.forcefield_options(name)
        self.model = ForceFieldModel(name, device, modal, settings.batch_size, model_file,
                                     dispersion=settings.dispersion_config)
        self.scheduler = RelaxScheduler(self.model.forcefield, settings.batch_size)
        self.scheduler.start()

    def execute(self, requests):
        for request in requests:
            replies = Replies(pb_utils, request.get_response_sender(), "force field")
            try:
                systems, options, budget = self.model.parse(read_inputs(pb_utils, request, INPUTS))
            except InvalidInput as error:
                replies.refuse(error)
                continue
            self.scheduler.submit(RelaxJob(systems, options, on_result=_result_sender(replies), on_error=replies.fail,
                                           is_cancelled=replies.is_cancelled, on_cancelled=replies.close,
                                           atom_budget=budget))
        return None

    def finalize(self):
        self.scheduler.stop()


def served_forcefield(config, default):
    """The force field this copy serves: its config's FORCEFIELD parameter (rendered by matserve serve)."""
    return config.get("parameters", {}).get("FORCEFIELD", {}).get("string_value") or default


def _result_sender(replies):
    def send(index, result, last):
        replies.send(structure_outputs(index, result), STRUCTURE_OUTPUTS, last)
    return send
