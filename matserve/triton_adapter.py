"""What every Python-backend adapter in model_repository/ does with one request.

Inputs that are present are read as numpy arrays, the model runs, and its outputs go back; a
user error (one of ``user_errors``) becomes Triton's INVALID_ARG, which the gateway turns into a
4xx. ``pb_utils`` is passed in because it exists only inside Triton's Python stub.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def answer(pb_utils: Any, request: Any, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
           input_names: tuple[str, ...], output_names: tuple[str, ...],
           user_errors: tuple[type[Exception], ...]) -> Any:
    inputs = {}
    for name in input_names:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is not None:
            inputs[name] = tensor.as_numpy()
    try:
        outputs = run(inputs)
    except user_errors as error:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
    return pb_utils.InferenceResponse([pb_utils.Tensor(name, outputs[name]) for name in output_names])
