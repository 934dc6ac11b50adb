"""Continuous batching for the generator: sequences that join a running batch mid-way get the
tokens they get alone; the scheduler answers each job when its own sequences end, keeps the
KV-cache budget and the time limits, and drops cancelled jobs."""

import threading
import time

import pytest

from matserve.generator.checkpoint import load_checkpoint
from matserve.generator.prompt import build_prompt
from matserve.generator.sampler import (DecodingBatch, SamplingParams, SamplingRequest, generate, generate_reference,
                                        kv_cache_bytes_per_row, request_rows)
from matserve.generator.scheduler import GenerationJob, GenerationScheduler
from matserve.generator.service import EMBEDDED_SMALL
from matserve.generator.tokenizer import Tokenizer

tokenizer = Tokenizer()
STOP = 142  # a token the random models rarely write twice in a row: rows run to their cap
LONG = tokenizer.encode("data_Ba4Te4\nloop_\n_atom_type_symbol\n")  # 11 tokens
SHORT = tokenizer.encode("data_")
MEDIUM = tokenizer.encode("data_Na4Cl4\n")


def rows(prompts, params, start=0.0):
    return request_rows(SamplingRequest(prompts, params), start)


def run(batch: DecodingBatch, results: dict, steps: int | None = None) -> None:
    while batch and (steps is None or steps > 0):
        results.update(batch.step())
        steps = None if steps is None else steps - 1


@pytest.mark.parametrize("params", [SamplingParams(temperature=0, max_new_tokens=60),
                                    SamplingParams(max_new_tokens=60, seed=4),
                                    SamplingParams(temperature=1.0, top_k=None, max_new_tokens=60, seed=9)],
                         ids=["greedy", "top-k", "full-vocabulary"])
def test_a_sequence_that_joins_mid_run_gets_its_solo_tokens_and_disturbs_nobody(model, params):
    batch = DecodingBatch(model, STOP)
    first = rows([LONG, SHORT], params)
    batch.join([("long", first[0]), ("short", first[1])])
    results: dict = {}
    run(batch, results, steps=5)  # the cache now spans 11 + 5 slots
    late = rows([MEDIUM, LONG + LONG], params)  # 5 tokens (shorter than the cache), 22 (longer: the others shift)
    batch.join([("medium", late[0]), ("longer", late[1])])
    run(batch, results, steps=20)
    batch.join([("again", rows([SHORT], params)[0])])
    run(batch, results)
    for key, prompt, sequence in [("long", LONG, 0), ("short", SHORT, 1), ("medium", MEDIUM, 0),
                                  ("longer", LONG + LONG, 1), ("again", SHORT, 0)]:
        reference = generate_reference(model, prompt, params, stop_id=STOP, sequence=sequence)
        assert results[key].tokens == reference.tokens, key
        assert results[key].finish_reason == reference.finish_reason == "length"
    assert batch.cache is None and not batch.cached


def test_joiners_of_a_batch_where_rows_stop_early_get_their_solo_tokens(chatty_model):
    params = SamplingParams(temperature=1.0, max_new_tokens=70, seed=0)
    prompts = [[1, 2, 3], [3], [2, 2, 1, 3, 1], [1, 1], [3, 2, 1, 3, 2, 1, 3]]
    batch = DecodingBatch(chatty_model, stop_id=0)
    all_rows = rows(prompts, params)
    results: dict = {}
    for i, row in enumerate(all_rows):  # one newcomer every third step
        batch.join([(i, row)])
        run(batch, results, steps=3)
    run(batch, results)
    for i, prompt in enumerate(prompts):
        reference = generate_reference(chatty_model, prompt, params, stop_id=0, sequence=i)
        assert results[i] == reference, f"prompt {i}"
    assert sum(g.finish_reason == "stop" for g in results.values()) >= 3


def test_a_joiner_near_the_context_slides_with_its_solo_tokens(model):
    params = SamplingParams(max_new_tokens=12, seed=1)
    filler = tokenizer.newline_id - 1
    batch = DecodingBatch(model, STOP)
    results: dict = {}
    batch.join([("medium", rows([MEDIUM], params)[0])])
    run(batch, results, steps=2)
    batch.join([("near", rows([[filler] * 124], params)[0])])  # 4 cached tokens, then the window slides
    run(batch, results)
    assert results["near"].tokens == generate_reference(model, [filler] * 124, params, stop_id=STOP).tokens
    assert results["medium"].tokens == generate_reference(model, MEDIUM, params, stop_id=STOP).tokens


def test_the_embedded_model_writes_the_same_cif_start_when_joining_mid_run():
    model = load_checkpoint(EMBEDDED_SMALL).eval()
    params = SamplingParams(max_new_tokens=40, seed=3)
    long_prompt = tokenizer.encode(build_prompt("Ba2MnCr", 3, "R-3m"))
    short_prompt = tokenizer.encode(build_prompt("NaCl", 1))
    batch = DecodingBatch(model)
    results: dict = {}
    batch.join([("long", rows([long_prompt], params)[0])])
    run(batch, results, steps=10)
    batch.join([("short", rows([short_prompt], params)[0])])
    run(batch, results)
    assert results["short"].tokens == generate(model, [short_prompt], params)[0].tokens
    assert results["long"].tokens == generate(model, [long_prompt], params)[0].tokens


class Recorder:
    """A job's callbacks: results by index, the order jobs completed in, and errors."""

    def __init__(self, name: str, order: list[str]):
        self.name, self.order = name, order
        self.results: dict = {}
        self.finals: list[bool] = []
        self.errors: list[Exception] = []
        self.done = threading.Event()

    def on_result(self, index, generation, last):
        self.results[index] = generation
        self.finals.append(last)
        if last:
            self.order.append(self.name)
            self.done.set()

    def on_error(self, error):
        self.errors.append(error)
        self.done.set()


def job(recorder: Recorder, prompts, params, **kwargs) -> GenerationJob:
    return GenerationJob(prompts, params, recorder.on_result, recorder.on_error, **kwargs)


def run_until_idle(scheduler: GenerationScheduler, limit: int = 1000) -> None:
    steps = 0
    while not scheduler.idle or scheduler.jobs:
        scheduler.step()
        steps += 1
        assert steps < limit


def test_a_short_job_submitted_while_a_long_one_runs_finishes_first_with_its_solo_tokens(model):
    order: list[str] = []
    scheduler = GenerationScheduler(model, stop_id=STOP)
    long_params, short_params = SamplingParams(max_new_tokens=80, seed=1), SamplingParams(max_new_tokens=10, seed=2)
    slow, quick = Recorder("long", order), Recorder("short", order)
    scheduler.submit(job(slow, [LONG, MEDIUM], long_params))
    for _ in range(20):
        scheduler.step()
    scheduler.submit(job(quick, [SHORT], short_params))
    scheduler.step()
    scheduler.step()
    assert len(scheduler.batch) == 3  # it joined the running batch
    run_until_idle(scheduler)
    assert order == ["short", "long"]
    assert quick.results[0].tokens == generate(model, [SHORT], short_params, stop_id=STOP)[0].tokens
    assert [slow.results[i].tokens for i in range(2)] == [
        g.tokens for g in generate(model, [LONG, MEDIUM], long_params, stop_id=STOP)]
    assert slow.finals == [False, True] and quick.finals == [True]


def test_the_loop_thread_answers_jobs_from_other_threads(model):
    order: list[str] = []
    scheduler = GenerationScheduler(model, stop_id=STOP)
    scheduler.start()
    try:
        slow, quick = Recorder("long", order), Recorder("short", order)
        scheduler.submit(job(slow, [LONG] * 3, SamplingParams(max_new_tokens=100, seed=5)))
        time.sleep(0.05)
        scheduler.submit(job(quick, [MEDIUM], SamplingParams(temperature=0, max_new_tokens=5)))
        assert quick.done.wait(30) and slow.done.wait(30)
    finally:
        scheduler.stop()
    assert order == ["short", "long"] and not slow.errors
    assert quick.results[0].tokens == generate(model, [MEDIUM], SamplingParams(temperature=0, max_new_tokens=5),
                                               stop_id=STOP)[0].tokens


def test_prompts_wait_for_room_in_the_kv_cache_budget(model, monkeypatch):
    scheduler = GenerationScheduler(model, kv_cache_bytes=2 * kv_cache_bytes_per_row(model.config), stop_id=STOP)
    sizes = []
    original = scheduler.batch.step
    monkeypatch.setattr(scheduler.batch, "step", lambda: sizes.append(len(scheduler.batch)) or original())
    recorder = Recorder("three", [])
    params = SamplingParams(max_new_tokens=15, seed=7)
    scheduler.submit(job(recorder, [LONG, SHORT, MEDIUM], params))
    run_until_idle(scheduler)
    assert max(sizes) == 2 and sizes[0] == 2
    assert [recorder.results[i].tokens for i in range(3)] == [
        g.tokens for g in generate(model, [LONG, SHORT, MEDIUM], params, stop_id=STOP)]


def test_a_cancelled_job_leaves_the_batch_at_the_next_step(model):
    order: list[str] = []
    scheduler = GenerationScheduler(model, stop_id=STOP)
    cancelled, closed = threading.Event(), []
    gone, kept = Recorder("gone", order), Recorder("kept", order)
    scheduler.submit(job(gone, [LONG, SHORT], SamplingParams(max_new_tokens=100), is_cancelled=cancelled.is_set,
                         on_cancelled=lambda: closed.append("gone")))
    scheduler.submit(job(kept, [MEDIUM], SamplingParams(max_new_tokens=30, seed=3)))
    for _ in range(5):
        scheduler.step()
    assert len(scheduler.batch) == 3
    cancelled.set()
    scheduler.step()
    assert len(scheduler.batch) == 1 and scheduler.jobs == 1 and closed == ["gone"]
    run_until_idle(scheduler)
    assert order == ["kept"] and gone.results == {} and not gone.errors and closed == ["gone"]
    assert kept.results[0].tokens == generate(model, [MEDIUM], SamplingParams(max_new_tokens=30, seed=3),
                                              stop_id=STOP)[0].tokens


def test_a_cancelled_job_that_waits_never_joins(model):
    scheduler = GenerationScheduler(model, kv_cache_bytes=kv_cache_bytes_per_row(model.config), stop_id=STOP)
    cancelled = threading.Event()
    first, waiting = Recorder("first", []), Recorder("waiting", [])
    scheduler.submit(job(first, [SHORT], SamplingParams(max_new_tokens=10)))
    scheduler.submit(job(waiting, [LONG], SamplingParams(max_new_tokens=10), is_cancelled=cancelled.is_set))
    scheduler.step()
    cancelled.set()
    run_until_idle(scheduler)
    assert first.finals == [True] and waiting.results == {}


def test_the_time_limit_counts_from_arrival_waiting_included(model):
    scheduler = GenerationScheduler(model, kv_cache_bytes=kv_cache_bytes_per_row(model.config), stop_id=STOP)
    running, late = Recorder("running", []), Recorder("late", [])
    scheduler.submit(job(running, [SHORT], SamplingParams(max_new_tokens=20, seed=1)))
    scheduler.submit(job(late, [LONG, MEDIUM], SamplingParams(max_new_tokens=20, time_limit_s=10.0),
                         arrived=time.monotonic() - 11.0))  # its 10 s ran out while it waited
    scheduler.step()
    assert {g.finish_reason for g in late.results.values()} == {"time"} and late.finals == [False, True]
    assert all(g.tokens == [] for g in late.results.values())
    run_until_idle(scheduler)
    assert len(running.results[0].tokens) == 20


def test_a_failed_step_fails_the_jobs_in_it_and_the_loop_goes_on(model, monkeypatch):
    scheduler = GenerationScheduler(model, stop_id=STOP)
    broken = Recorder("broken", [])
    scheduler.submit(job(broken, [SHORT], SamplingParams(max_new_tokens=10)))
    monkeypatch.setattr(scheduler.batch, "step", lambda: 1 / 0)
    scheduler.step()
    assert len(broken.errors) == 1 and isinstance(broken.errors[0], ZeroDivisionError)
    assert scheduler.idle and scheduler.jobs == 0
    fine = Recorder("fine", [])
    scheduler.submit(job(fine, [SHORT], SamplingParams(max_new_tokens=10)))
    run_until_idle(scheduler)
    assert len(fine.results[0].tokens) == 10
