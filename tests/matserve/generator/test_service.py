import pytest
import torch

from matserve.generator.checkpoint import save_checkpoint
from matserve.generator.model import GPT, GPTConfig
from matserve.generator.prompt import build_prompt
from matserve.generator.service import (EMBEDDED_SMALL, Completion, GeneratorService, UnknownGeneratorModel,
                                       configured_checkpoints)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "ckpt.pt"
    save_checkpoint(path, GPT(GPTConfig(block_size=256, n_layer=1, n_head=2, n_embd=32)))
    return path


def test_only_models_with_a_checkpoint_are_configured(tiny_checkpoint):
    assert configured_checkpoints(small=str(tiny_checkpoint)) == {"small": tiny_checkpoint}
    assert configured_checkpoints(large=str(tiny_checkpoint), embedded_small=None) == {"large": tiny_checkpoint}
    assert configured_checkpoints(embedded_small=None) == {}


def test_small_defaults_to_the_embedded_weights(tiny_checkpoint):
    assert EMBEDDED_SMALL.is_file() and EMBEDDED_SMALL.stat().st_size <= 25 * 1024 * 1024
    assert configured_checkpoints() == {"small": EMBEDDED_SMALL}
    assert configured_checkpoints(large=str(tiny_checkpoint)) == {"small": EMBEDDED_SMALL, "large": tiny_checkpoint}
    assert configured_checkpoints(small=str(tiny_checkpoint)) == {"small": tiny_checkpoint}  # configured wins


def test_the_embedded_model_loads_and_writes_whole_cifs():
    from matserve.generator.cif_format import postprocess
    from matserve.generator.validity import validate

    record = torch.load(EMBEDDED_SMALL, weights_only=True)["training"]  # what train.py wrote
    service = GeneratorService(configured_checkpoints())
    assert service.models["small"].num_params() == record["parameters"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy shared CPU makes every extra thread wait: keep under the 60 s limit
    try:
        candidates = service.complete("small", [build_prompt("NaCl", 4, "Fm-3m")] * 4, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert all(finish == "stop" and text.endswith("\n\n") for text, finish in candidates)  # each CIF ended
    cifs = [postprocess(text) for text, _ in candidates]
    assert all("_symmetry_equiv_pos_as_xyz" in cif and "_atom_type_symbol" not in cif for cif in cifs)
    judged = [validate(cif).messages for cif in cifs]  # pymatgen builds a structure from at least one
    assert any(not any(m.startswith(("cif:", "structure:")) for m in messages) for messages in judged)


def test_completions_start_with_their_prompts_and_are_seeded(tiny_checkpoint):
    service = GeneratorService({"small": tiny_checkpoint})
    prompts = [build_prompt("NaCl", 4), build_prompt("NaCl", 4, "Fm-3m")]
    first = service.complete("small", prompts, seed=3)
    again = service.complete("small", prompts, seed=3)
    assert first == again
    for prompt, (text, finish) in zip(prompts, first):
        assert text.startswith(prompt) and len(text) > len(prompt)
        assert finish in ("stop", "length")


def test_an_unconfigured_model_is_refused(tiny_checkpoint):
    with pytest.raises(UnknownGeneratorModel, match="'large' is not configured"):
        GeneratorService({"small": tiny_checkpoint}).complete("large", ["data_Na1Cl1\n"])


def test_concurrent_requests_share_one_batch_and_keep_their_own_results(tiny_checkpoint):
    service = GeneratorService({"small": tiny_checkpoint})
    first = Completion("small", [build_prompt("NaCl", 4)], seed=1)
    second = Completion("small", [build_prompt("BaTe", 2), build_prompt("Si", 8, "Fd-3m")], seed=2)
    refused = Completion("large", [build_prompt("NaCl", 4)])
    batch_rows = []
    hook = service.models["small"].register_forward_pre_hook(lambda module, args: batch_rows.append(args[0].size(0)))
    try:
        together = service.complete_many([first, refused, second])
    finally:
        hook.remove()
    assert batch_rows[0] == 3  # the prefill: all three prompts in one forward
    assert isinstance(together[1], UnknownGeneratorModel)
    assert together[0] == service.complete("small", list(first.prompts), seed=1)
    assert together[2] == service.complete("small", list(second.prompts), seed=2)


def test_submitted_requests_join_the_running_batch_and_get_their_solo_texts(tiny_checkpoint):
    import threading

    service = GeneratorService({"small": tiny_checkpoint})
    long_prompts = [build_prompt("BaTe", 2), build_prompt("Si", 8, "Fd-3m")]
    short_prompts = [build_prompt("NaCl", 1)]
    alone = [service.complete("small", long_prompts, seed=2), service.complete("small", short_prompts, seed=1)]
    with pytest.raises(UnknownGeneratorModel):
        service.submit(Completion("large", short_prompts), print, print)
    service.start()
    answers: list[dict] = [{}, {}]
    finished = [threading.Event(), threading.Event()]

    def on_text(r):
        def record(index, text, finish, last):
            answers[r][index] = (text, finish)
            if last:
                finished[r].set()
        return record

    try:
        service.submit(Completion("small", long_prompts, seed=2), on_text(0), print)
        service.submit(Completion("small", short_prompts, seed=1), on_text(1), print)
        assert finished[0].wait(60) and finished[1].wait(60)
    finally:
        service.stop()
    assert [[answer[i] for i in range(len(answer))] for answer in answers] == alone
