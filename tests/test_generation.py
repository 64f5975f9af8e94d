"""Generation mechanics on tiny real models built from configs: batching, finish reasons,
stop strings, out-of-memory retries, streaming and seeded sampling."""

import threading

import pytest
import torch

from core.datasets.data import Example
from core.errors import PromptLabError
from core.generation.local import PRUNE_EVERY, generate, generate_lock
from core.generation.settings import GenerationSettings
from core.generation.streaming import TokenStream, release
from core.models.registry import ModelRequest, load_model
from core.prompting.design import PromptDesign
from core.prompting.rendering import render_for_model

DESIGN = PromptDesign(
    instruction="summarize the following conversation .",
    example_format="{input} summary : {output}",
)
INPUTS = [
    "hello",
    "#Person1#: book a train ticket for tomorrow ? #Person2#: yes .",
    "#Person1#: hi . #Person2#: hello . #Person1#: what time is the doctor today ?",
    "the person asks about a book",
    "#Person1#: thanks , bye .",
    "two people buy and sell a ticket in the shop with one person",
]
GREEDY = GenerationSettings(max_new_tokens=8)


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def tiny(request, tiny_causal_dir, tiny_t5_dir):
    folder = tiny_causal_dir if request.param == "causal" else tiny_t5_dir
    return load_model(ModelRequest(str(folder), device="cpu"))  # float32: exact comparisons


def prompts_for(loaded, inputs=INPUTS):
    return [
        render_for_model(
            loaded, DESIGN, Example(f"e{i}", text), max_new_tokens=GREEDY.max_new_tokens
        )
        for i, text in enumerate(inputs)
    ]


def test_greedy_batched_equals_one_at_a_time(tiny):
    prompts = prompts_for(tiny)
    batched = generate(tiny, prompts, GREEDY, batch_size=4)
    single = [generate(tiny, [p], GREEDY)[0] for p in prompts]
    assert [o.text for o in batched] == [o.text for o in single]
    assert [o.new_tokens for o in batched] == [o.new_tokens for o in single]
    assert [o.example_id for o in batched] == [f"e{i}" for i in range(len(INPUTS))]
    # Greedy on a causal model runs continuous batching in 4 slots; seq2seq in batches of 4, 2.
    assert {o.batch_size for o in batched} == ({4} if tiny.kind == "causal" else {4, 2})


def test_rows_dropped_from_a_batch_when_done_change_no_output(tiny):
    # Longer than one pruning round, with some rows ending early and others running on.
    settings = GenerationSettings(max_new_tokens=3 * PRUNE_EVERY + 5)
    prompts = prompts_for(tiny)
    batched = generate(tiny, prompts, settings, batch_size=len(prompts))
    single = [generate(tiny, [p], settings)[0] for p in prompts]
    assert [(o.text, o.new_tokens, o.finish_reason) for o in batched] == [
        (o.text, o.new_tokens, o.finish_reason) for o in single
    ]
    if tiny.kind == "causal":
        lengths = {o.new_tokens for o in batched}
        assert min(lengths) < PRUNE_EVERY and max(lengths) == settings.max_new_tokens


def test_min_new_tokens_holds_across_pruning_rounds(tiny):
    settings = GenerationSettings(max_new_tokens=PRUNE_EVERY + 10, min_new_tokens=PRUNE_EVERY + 4)
    prompts = prompts_for(tiny)
    batched = generate(tiny, prompts, settings, batch_size=len(prompts))
    assert all(o.new_tokens >= PRUNE_EVERY + 4 for o in batched)
    assert [o.text for o in batched] == [generate(tiny, [p], settings)[0].text for p in prompts]


def test_output_counts_prompt_tokens_and_stops_at_the_length_limit(tiny):
    prompts = prompts_for(tiny)
    for prompt, out in zip(prompts, generate(tiny, prompts, GREEDY), strict=True):
        assert out.prompt_tokens == len(
            tiny.tokenizer(prompt.sent_text, add_special_tokens=prompt.add_special_tokens)[
                "input_ids"
            ]
        )
        assert out.finish_reason in ("eos", "length")
        assert out.new_tokens == GREEDY.max_new_tokens or out.finish_reason == "eos"
        assert out.latency_s > 0


def test_end_of_sequence_is_the_finish_reason_when_the_model_emits_it(tiny):
    prompt = prompts_for(tiny)[1]
    ids = tiny.tokenizer(
        prompt.sent_text, add_special_tokens=prompt.add_special_tokens, return_tensors="pt"
    )
    first_id = tiny.model.generate(**ids, max_new_tokens=1, do_sample=False)[0, -1].item()
    config = tiny.model.generation_config
    original = config.eos_token_id
    config.eos_token_id = [tiny.tokenizer.eos_token_id, first_id]  # its first word now ends it
    try:
        out = generate(tiny, [prompt], GREEDY)[0]
    finally:
        config.eos_token_id = original
    assert (out.finish_reason, out.new_tokens) == ("eos", 1)


def test_stop_string_cuts_the_output_and_ends_generation_early(tiny):
    prompt = prompts_for(tiny)[2]
    free = generate(tiny, [prompt], GenerationSettings(max_new_tokens=12))[0]
    words = free.text.split()
    stop = words[len(words) // 2]
    out = generate(tiny, [prompt], GenerationSettings(max_new_tokens=12, stop=(stop,)))[0]
    assert out.finish_reason == "stop" and out.stop_string == stop
    assert out.text == free.text[: free.text.find(stop)]
    assert out.new_tokens <= len(words) // 2 + 1 < 12


def rows_of(kwargs) -> int:
    """Rows in a forward call: the prompt's, or the decoder's for an encoder-decoder model."""
    ids = kwargs.get("input_ids")
    return (ids if ids is not None else kwargs["decoder_input_ids"]).shape[0]


def test_out_of_memory_halves_the_batch_and_retries(tiny, monkeypatch):
    # No GPU here to run out of: the model's forward is made to fail above two rows.
    real_forward = tiny.model.forward

    def forward_with_small_memory(*args, **kwargs):
        if rows_of(kwargs) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(*args, **kwargs)

    expected = [o.text for o in generate(tiny, prompts_for(tiny), GREEDY)]
    monkeypatch.setattr(tiny.model, "forward", forward_with_small_memory)
    outs = generate(tiny, prompts_for(tiny), GREEDY, batch_size=8)
    assert [o.text for o in outs] == expected
    assert {o.batch_size for o in outs} == {2}


def test_out_of_memory_on_a_single_prompt_tells_the_user_what_to_lower(tiny, monkeypatch):
    def no_memory(*args, **kwargs):  # simulated: there is no GPU on this machine
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(tiny.model, "forward", no_memory)
    with pytest.raises(PromptLabError, match="lower max_new_tokens, use fewer shots"):
        generate(tiny, prompts_for(tiny)[:3], GREEDY)


def test_progress_reports_examples_done(tiny):
    seen = []
    generate(
        tiny, prompts_for(tiny), GREEDY, batch_size=4, on_progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(4, 6), (6, 6)]


def test_seeded_sampling_is_reproducible_and_follows_the_seed(tiny):
    prompts = prompts_for(tiny)
    sampling = GenerationSettings(max_new_tokens=10, do_sample=True, temperature=1.5, seed=11)
    first = [o.text for o in generate(tiny, prompts, sampling)]
    again = [o.text for o in generate(tiny, prompts, sampling)]
    other = [o.text for o in generate(tiny, prompts, sampling.with_(seed=12))]
    assert first == again
    assert first != other


def test_stream_pieces_join_to_the_batch_output(tiny):
    prompt = prompts_for(tiny)[3]
    stream = TokenStream(tiny, prompt, GREEDY)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == stream.result.text == generate(tiny, [prompt], GREEDY)[0].text


class CountedWaits(threading.Event):
    """An Event that says when `wait` has returned unset `n` times (the reader's polls)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.reached = n, threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        got = super().wait(timeout)
        if not got:
            self.n -= 1
            if self.n <= 0:
                self.reached.set()
        return got


def test_a_stream_waiting_for_another_runs_batch_does_not_time_out(tiny):
    prompt = prompts_for(tiny)[3]
    stream = TokenStream(tiny, prompt, GREEDY, timeout_s=0.3)
    # The reader polls every 0.2 s for the model: three unanswered polls are more than 0.3 s of
    # waiting, however slowly the threads run, so the timeout would have struck by then.
    stream._generating = CountedWaits(3)
    collected: list[str] = []
    with generate_lock:  # another session's batch holds the model for longer than the timeout
        pieces = iter(stream)
        waiter = threading.Thread(target=lambda: collected.extend(pieces))
        waiter.start()
        assert stream._generating.reached.wait(300)
        assert waiter.is_alive() and not collected  # still waiting, not failed
    waiter.join(timeout=300)
    assert "".join(collected) == stream.result.text == generate(tiny, [prompt], GREEDY)[0].text


def test_stream_never_shows_the_stop_string(tiny):
    prompt = prompts_for(tiny)[2]
    free = generate(tiny, [prompt], GenerationSettings(max_new_tokens=12))[0]
    stop = free.text.split()[-1]
    stream = TokenStream(tiny, prompt, GenerationSettings(max_new_tokens=12, stop=(stop,)))
    shown = "".join(stream)
    assert stop not in shown
    assert shown == stream.result.text and stream.result.finish_reason == "stop"


@pytest.mark.parametrize(
    "pending, stops, safe, stopped",
    [
        ("hello wor", ("world",), "hello ", False),
        ("hello world and", ("world",), "hello ", True),
        ("abc", (), "abc", False),
        ("a\n", ("\n\n",), "a", False),
        ("ab END", ("END", "b E"), "a", True),
    ],
)
def test_release_holds_back_what_could_start_a_stop_string(pending, stops, safe, stopped):
    assert release(pending, stops) == (safe, stopped)
