"""matserve.triton_adapter with a stand-in for Triton's pb_utils (the integration tests run the real one)."""

from types import SimpleNamespace

import numpy as np
import pytest

from matserve.contract import InvalidInput
from matserve.triton_adapter import INVALID_PREFIX, Replies, answer


class FakePbUtils:
    TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1

    class TritonError:
        INVALID_ARG = "INVALID_ARG"
        INTERNAL = "INTERNAL"

        def __init__(self, message, code):
            self.message, self.code = message, code

    @staticmethod
    def get_input_tensor_by_name(request, name):
        return SimpleNamespace(as_numpy=lambda: request[name]) if name in request else None

    @staticmethod
    def Tensor(name, array):
        return (name, array)

    @staticmethod
    def InferenceResponse(tensors=None, error=None):
        return SimpleNamespace(tensors=tensors, error=error)


def test_present_inputs_go_in_and_the_named_outputs_come_back():
    seen = {}

    def run(inputs):
        seen.update(inputs)
        return {"OUT": inputs["A"] * 2, "EXTRA": np.zeros(1)}

    response = answer(FakePbUtils, {"A": np.array([1.0, 2.0])}, run, ("A", "B"), ("OUT",))
    assert list(seen) == ["A"]
    (name, array), = response.tensors
    assert name == "OUT" and array.tolist() == [2.0, 4.0] and response.error is None


def test_a_user_error_is_invalid_arg_with_its_message():
    def run(inputs):
        raise InvalidInput("atom 3 has no neighbour within 8 Å")

    response = answer(FakePbUtils, {}, run, ("A",), ("OUT",))
    assert response.error.code == "INVALID_ARG"
    assert response.error.message == INVALID_PREFIX + "atom 3 has no neighbour within 8 Å"  # the gateway strips it


def test_any_other_error_is_not_a_user_error():
    def run(inputs):
        raise ValueError("a bug, not the user's input")

    with pytest.raises(ValueError, match="a bug"):  # Triton answers INTERNAL, the gateway 503, the log says why
        answer(FakePbUtils, {}, run, ("A",), ("OUT",))


class FakeSender:
    def __init__(self):
        self.sent = []

    def send(self, response=None, flags=0):
        self.sent.append((response, flags))

    def is_cancelled(self):
        return False


def test_replies_send_each_part_with_final_on_the_last_and_name_only_the_error_type():
    sender = FakeSender()
    replies = Replies(FakePbUtils, sender, "force field")
    replies.send({"A": np.zeros(1), "B": np.ones(1)}, ("B",), last=False)
    replies.send({"B": np.ones(1)}, ("B",), last=True)
    assert [flags for _, flags in sender.sent] == [0, 1]
    assert [name for name, _ in sender.sent[0][0].tensors] == ["B"]
    replies.fail(RuntimeError("CUDA out of memory at /secret/path"))
    replies.refuse(ValueError("atom 2 is alone"))
    replies.close()
    (failed, f1), (refused, f2), (closed, f3) = sender.sent[2:]
    assert (failed.error.code, failed.error.message) == ("INTERNAL", "force field failed: RuntimeError")
    assert (refused.error.code, refused.error.message) == ("INVALID_ARG", INVALID_PREFIX + "atom 2 is alone")
    assert closed is None and (f1, f2, f3) == (1, 1, 1)
