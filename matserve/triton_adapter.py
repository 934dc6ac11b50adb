"""What every Python-backend adapter in model_repository/ does with one request.

Inputs that are present are read as numpy arrays, the model runs, and its outputs go back; a
user error (``matserve.contract.InvalidInput``) becomes Triton's INVALID_ARG, which the gateway turns into a
4xx. ``pb_utils`` is passed in because it exists only inside Triton's Python stub.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from matserve.contract import InvalidInput


def read_inputs(pb_utils: Any, request: Any, input_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The request's tensors among ``input_names`` that are present, as numpy arrays."""
    inputs = {}
    for name in input_names:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is not None:
            inputs[name] = tensor.as_numpy()
    return inputs


INVALID_PREFIX = "invalid input: "  # marks a user error where a stream carries no status code


def invalid_input(pb_utils: Any, error: Exception) -> Any:
    """A user error as Triton's INVALID_ARG response, which the gateway turns into a 4xx."""
    message = INVALID_PREFIX + str(error)
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))


def tensors(pb_utils: Any, outputs: dict[str, np.ndarray], output_names: tuple[str, ...]) -> Any:
    return pb_utils.InferenceResponse([pb_utils.Tensor(name, outputs[name]) for name in output_names])


def answer(pb_utils: Any, request: Any, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
           input_names: tuple[str, ...], output_names: tuple[str, ...]) -> Any:
    try:
        outputs = run(read_inputs(pb_utils, request, input_names))
    except InvalidInput as error:
        return invalid_input(pb_utils, error)
    return tensors(pb_utils, outputs, output_names)


class Replies:
    """The responses of one request to a decoupled model, sent from its scheduler's thread: one per
    part as it ends (the last with FINAL), or one error, or (cancelled) only the FINAL flag, which
    Triton waits for before it lets the request go."""

    def __init__(self, pb_utils: Any, sender: Any, model: str):
        self.pb_utils, self.sender, self.model = pb_utils, sender, model
        self.final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL

    def is_cancelled(self) -> bool:
        return self.sender.is_cancelled()

    def send(self, outputs: dict[str, np.ndarray], output_names: tuple[str, ...], last: bool) -> None:
        self.sender.send(tensors(self.pb_utils, outputs, output_names), flags=self.final if last else 0)

    def refuse(self, error: Exception) -> None:
        self.sender.send(invalid_input(self.pb_utils, error), flags=self.final)

    def fail(self, error: Exception) -> None:
        """An unexpected failure, named by its type only (the details are in the model's log)."""
        message = f"{self.model} failed: {type(error).__name__}"
        response = self.pb_utils.InferenceResponse(error=self.pb_utils.TritonError(message,
                                                                                   self.pb_utils.TritonError.INTERNAL))
        self.sender.send(response, flags=self.final)

    def close(self) -> None:
        self.sender.send(flags=self.final)
