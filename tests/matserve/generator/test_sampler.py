import pytest
import torch

from matserve.generator.checkpoint import config_from_model_args
from matserve.generator.model import LARGE, SMALL
from matserve.generator import sampler
from matserve.generator.sampler import (SamplingParams, SamplingRequest, generate, generate_many, generate_reference,
                                         kv_cache_bytes_per_row)
from matserve.generator.service import EMBEDDED_SMALL
from matserve.generator.tokenizer import Tokenizer

tokenizer = Tokenizer()

# Prompts of different lengths, so the batch is left-padded.
PROMPTS = [tokenizer.encode(text) for text in [
    "data_Na4Cl4\n",
    "data_Ba4Te4\nloop_\n_atom_type_symbol\n",
    "data_Si8\n",
    "data_Fe4O6\n_symmetry_space_group_name_H-M R-3c\n_cell_length_a 5",
    "data_",
]]


def assert_matches_reference(model, prompts, params, stop_id=142):
    batched = generate(model, prompts, params, stop_id=stop_id)
    for i, prompt in enumerate(prompts):
        reference = generate_reference(model, prompt, params, stop_id=stop_id, sequence=i)
        assert batched[i].tokens == reference.tokens, f"prompt {i}"
        assert batched[i].finish_reason == reference.finish_reason
    return batched


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0, max_new_tokens=80),  # greedy
    SamplingParams(max_new_tokens=80, seed=7),  # defaults: temperature 0.8, top-k 10
    SamplingParams(temperature=1.0, top_k=None, max_new_tokens=80, seed=3),
], ids=["greedy", "top-k", "full-vocabulary"])
def test_batched_cached_sampling_equals_the_plain_loop(model, params):
    out = assert_matches_reference(model, PROMPTS, params)
    assert [len(g.tokens) for g in out] == [80] * len(PROMPTS)
    assert all(len(set(g.tokens)) > 10 for g in out)  # not a model that repeats itself
    assert {g.finish_reason for g in out} == {"length"}


def test_rows_that_stop_early_leave_the_batch_without_disturbing_the_rest(chatty_model):
    prompts = [[1, 2, 3], [3], [2, 2, 1, 3, 1, 0], [1, 1], [3, 2, 1, 3, 2, 1, 3]]
    out = assert_matches_reference(chatty_model, prompts, SamplingParams(temperature=1.0, max_new_tokens=80, seed=0),
                                   stop_id=0)
    stopped = [g for g in out if g.finish_reason == "stop"]
    assert len(stopped) >= 3 and len({len(g.tokens) for g in stopped}) >= 3
    for g in stopped:
        assert g.tokens[-1] == 0
    # the prompt's last token counts: [..., 0] then 0 is two newlines in a row
    assert out[2].tokens == [0] and out[2].finish_reason == "stop"


def test_a_sequence_does_not_depend_on_its_batch(model):
    params = SamplingParams(max_new_tokens=30, seed=11)
    alone = generate(model, [PROMPTS[1]], params)[0]
    assert alone.tokens == generate_reference(model, PROMPTS[1], params).tokens
    together = generate(model, [PROMPTS[1], PROMPTS[3]], params)[0]
    with_others = generate(model, [PROMPTS[1], PROMPTS[0], PROMPTS[4]], params)[0]
    assert alone.tokens == together.tokens == with_others.tokens
    # the second row of a call has its own stream
    assert generate(model, [PROMPTS[1], PROMPTS[1]], params)[1].tokens != alone.tokens


def test_seeds_reproduce_and_differ(model):
    one = generate(model, PROMPTS, SamplingParams(max_new_tokens=30, seed=5))
    again = generate(model, PROMPTS, SamplingParams(max_new_tokens=30, seed=5))
    other = generate(model, PROMPTS, SamplingParams(max_new_tokens=30, seed=6))
    assert [g.tokens for g in one] == [g.tokens for g in again]
    assert [g.tokens for g in one] != [g.tokens for g in other]


def test_top_k_draws_only_among_the_k_best(model):
    params = SamplingParams(temperature=5.0, top_k=1, max_new_tokens=40, seed=2)  # hot, but k=1 is greedy
    greedy = SamplingParams(temperature=0, max_new_tokens=40)
    assert [g.tokens for g in generate(model, PROMPTS, params)] == [g.tokens for g in generate(model, PROMPTS, greedy)]


def test_token_cap_counts_new_tokens(model):
    out = generate(model, PROMPTS[:2], SamplingParams(max_new_tokens=10, seed=1))
    assert [(len(g.tokens), g.finish_reason) for g in out] == [(10, "length"), (10, "length")]


@pytest.mark.parametrize("params", [SamplingParams(temperature=0, max_new_tokens=12),
                                    SamplingParams(max_new_tokens=12, seed=1)], ids=["greedy", "top-k"])
def test_past_the_context_the_window_slides_as_crystallms(model, params):
    filler = tokenizer.newline_id - 1
    prompts = [[filler] * 125, PROMPTS[1], [filler] * 120]  # 3 and 8 slots left of a 128-token context
    out = assert_matches_reference(model, prompts, params)
    assert [(len(g.tokens), g.finish_reason) for g in out] == [(12, "length")] * 3
    if params.temperature == 0:  # the 4th new token of row 0 is read off the last 128 tokens, at positions 0-127
        window = (prompts[0] + out[0].tokens[:3])[-128:]
        with torch.no_grad():
            assert out[0].tokens[3] == int(model(torch.tensor([window]))[0][0, -1].argmax())


def test_time_limit(model):
    out = generate(model, PROMPTS, SamplingParams(max_new_tokens=100, time_limit_s=0.0))
    assert {g.finish_reason for g in out} == {"time"} and all(g.tokens == [] for g in out)
    assert generate_reference(model, PROMPTS[0], SamplingParams(time_limit_s=0.0)).finish_reason == "time"


def test_bad_input_is_refused(model):
    with pytest.raises(ValueError, match="does not fit"):
        generate(model, [[1] * 128], SamplingParams())
    with pytest.raises(ValueError, match="does not fit"):
        generate(model, [[]], SamplingParams())
    with pytest.raises(ValueError, match="bad sampling"):
        generate(model, PROMPTS, SamplingParams(top_k=0))
    model.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            generate(model, PROMPTS, SamplingParams())
    finally:
        model.eval()
    assert generate(model, [], SamplingParams()) == []


def test_requests_sampled_together_get_what_they_get_alone(model, monkeypatch):
    requests = [
        SamplingRequest(PROMPTS[:2], SamplingParams(max_new_tokens=30, seed=1)),
        SamplingRequest(PROMPTS[2:], SamplingParams(max_new_tokens=12, seed=2)),  # own cap and seed
        SamplingRequest([PROMPTS[0]], SamplingParams(temperature=0, max_new_tokens=20)),  # greedy
        SamplingRequest(PROMPTS[1:3], SamplingParams(temperature=1.5, top_k=None, max_new_tokens=25, seed=4)),
        SamplingRequest(PROMPTS[3:], SamplingParams(max_new_tokens=30, seed=1, time_limit_s=0.0)),
    ]
    batches = []
    original = sampler._generate_rows
    monkeypatch.setattr(sampler, "_generate_rows", lambda model, rows, stop_id: batches.append(len(rows))
                        or original(model, rows, stop_id))
    together = generate_many(model, requests)
    assert batches == [10]  # every temperature and top-k in one batch
    for request, got in zip(requests, together):
        assert [g.tokens for g in got] == [g.tokens for g in generate(model, request.prompts, request.params)]
    assert [len(g.tokens) for g in together[1]] == [12, 12, 12]
    assert {g.finish_reason for g in together[4]} == {"time"}  # its limit, not the others'
    assert {g.finish_reason for g in together[0]} == {"length"}


def test_a_batch_over_the_cache_budget_is_sampled_in_chunks_with_the_same_result(model, monkeypatch):
    requests = [SamplingRequest(PROMPTS, SamplingParams(max_new_tokens=20, seed=3)),
                SamplingRequest(PROMPTS[:2], SamplingParams(temperature=0, max_new_tokens=15))]
    batches = []
    original = sampler._generate_rows
    monkeypatch.setattr(sampler, "_generate_rows", lambda model, rows, stop_id: batches.append(len(rows))
                        or original(model, rows, stop_id))
    chunked = generate_many(model, requests, kv_cache_bytes=3 * kv_cache_bytes_per_row(model.config))
    assert batches == [3, 3, 1]
    assert chunked == generate_many(model, requests)
    assert kv_cache_bytes_per_row(model.config) == 2 * 2 * 128 * 64 * 4  # keys and values, 2 layers, float32
    # the README's MiB per sequence: the embedded model, CrystaLLM's small and large
    embedded = config_from_model_args(torch.load(EMBEDDED_SMALL, weights_only=True)["model_args"])
    assert [kv_cache_bytes_per_row(c) / 2**20 for c in (embedded, SMALL, LARGE)] == [18, 32, 256]


def test_time_limit_ends_a_row_while_it_slides(model, monkeypatch):
    prompt = [tokenizer.newline_id - 1] * 125  # 3 cached tokens, then the window slides
    unlimited = generate(model, [prompt], SamplingParams(max_new_tokens=12, seed=1))[0]
    clock = iter(range(10_000))  # every reading of the clock is one second later
    monkeypatch.setattr(sampler.time, "monotonic", lambda: next(clock))
    limited = generate(model, [prompt], SamplingParams(max_new_tokens=12, seed=1, time_limit_s=6))[0]
    assert limited.finish_reason == "time"
    assert 3 < len(limited.tokens) < 12 and limited.tokens == unlimited.tokens[:len(limited.tokens)]
