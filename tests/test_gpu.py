"""The embedded SmolLM2 on a CUDA GPU: greedy batching against one prompt at a time in each
dtype, memory given back on unload, and a real out-of-memory halving the batch. Marked `gpu`:
without CUDA these are collected and deselected (tests/conftest.py); `make test-gpu` runs them,
and there, without CUDA, they fail saying so."""

from __future__ import annotations

import gc

import pytest
import torch

from core.generation.inspector import encode_prompt, forward_logits
from core.generation.local import generate
from core.generation.settings import GenerationSettings
from core.models import registry as models
from core.models.registry import ModelRequest
from core.prompting.design import RenderedPrompt
from tests.test_embedded_model import varied_prompts

pytestmark = pytest.mark.gpu

GREEDY = GenerationSettings(max_new_tokens=40)
# README, Batching: in bf16/fp16 a batched answer may differ from the one-at-a-time answer, but
# only from a near-tie on: a token whose logit was within NEAR_TIE of the model's choice there.
NEAR_TIE = 1.0  # logits: the two tokens' probabilities within a factor of e


@pytest.fixture(autouse=True)
def cuda():
    if not torch.cuda.is_available():
        pytest.fail("These tests need a CUDA GPU and there is none here.", pytrace=False)
    models.unload()
    yield
    torch.cuda.set_per_process_memory_fraction(1.0)
    models.unload()


def load(dtype: str) -> models.LoadedModel:
    return models.get_model(ModelRequest(device="cuda", dtype=dtype))


def first_difference(a: list[int], b: list[int]) -> int | None:
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return k
    return None if len(a) == len(b) else min(len(a), len(b))


def test_greedy_batched_is_identical_to_one_at_a_time_in_float32():
    loaded = load("fp32")
    prompts = varied_prompts(loaded)
    batched = generate(loaded, prompts, GREEDY, batch_size=len(prompts))
    single = [generate(loaded, [p], GREEDY)[0] for p in prompts]
    assert [o.text for o in batched] == [o.text for o in single]
    assert [o.new_tokens for o in batched] == [o.new_tokens for o in single]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_greedy_batched_differs_from_one_at_a_time_only_after_a_near_tie(dtype):
    loaded = load(dtype)
    prompts = varied_prompts(loaded)
    batched = generate(loaded, prompts, GREEDY, batch_size=len(prompts))
    single = [generate(loaded, [p], GREEDY)[0] for p in prompts]
    changed = []
    for prompt, b, s in zip(prompts, batched, single, strict=True):
        if b.text == s.text:
            continue
        b_ids = loaded.tokenizer(b.text, add_special_tokens=False)["input_ids"]
        s_ids = loaded.tokenizer(s.text, add_special_tokens=False)["input_ids"]
        k = first_difference(s_ids, b_ids)
        assert k is not None and k < len(s_ids) and k < len(b_ids), (b.text, s.text)
        # The one-at-a-time model's logits where the two answers part (teacher-forced).
        logits = forward_logits(loaded, encode_prompt(loaded, prompt), s_ids[:k], keep=1)[0]
        gap = float(logits[s_ids[k]] - logits[b_ids[k]])
        changed.append((prompt.example_id, k, round(gap, 3)))
        assert abs(gap) <= NEAR_TIE, changed
    assert len(changed) <= len(prompts) // 2, changed  # a few rows, not the batching broken


def test_unloading_gives_the_cuda_memory_back():
    # cuBLAS keeps a workspace per stream once a matmul has run; make it exist before counting.
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x = torch.ones(64, 64, device="cuda", dtype=dtype)
        (x @ x).sum().item()
    del x
    gc.collect()
    torch.cuda.empty_cache()
    before, reserved_before = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    loaded = load("bf16")
    weights = loaded.memory_bytes()
    generate(loaded, varied_prompts(loaded)[:4], GREEDY.with_(max_new_tokens=8))
    assert torch.cuda.memory_allocated() - before >= 0.9 * weights
    del loaded
    models.unload()
    left = torch.cuda.memory_allocated() - before
    assert left <= 0.01 * weights, f"{left} bytes still allocated of {weights} bytes of weights"
    assert torch.cuda.memory_reserved() - reserved_before <= 0.01 * weights  # the cache too


def long_prompts(loaded: models.LoadedModel, n: int, words: int) -> list[RenderedPrompt]:
    text = " ".join(["Amanda and Bob talk about the train ticket and the doctor today."] * words)
    return [
        RenderedPrompt(
            example_id=f"long{i}",
            text=f"{i} {text}",
            sent_text=f"{i} {text}",
            parts=(),
            shot_ids=(),
            add_special_tokens=False,
            prompt_tokens=None,
        )
        for i in range(n)
    ]


def peak_extra(loaded, prompts, settings, batch_size: int) -> int:
    """CUDA memory a generation needs beyond what is allocated before it."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    generate(loaded, prompts, settings, batch_size=batch_size)
    return torch.cuda.max_memory_allocated() - base


def test_a_real_out_of_memory_halves_the_batch_and_every_answer_is_complete():
    loaded = load("bf16")
    settings = GenerationSettings(max_new_tokens=24, min_new_tokens=24)  # every row runs on
    prompts = long_prompts(loaded, 16, 160)  # ~2,000 tokens each: the cache and activations
    one = peak_extra(loaded, prompts[:1], settings, 1)
    all16 = peak_extra(loaded, prompts, settings, 16)
    assert all16 > 4 * one, (one, all16)  # the batch costs memory in proportion
    # A real limit (the caching allocator raises torch.OutOfMemoryError past it) with room for
    # a quarter of the batch, not half of it or all of it.
    gc.collect()
    torch.cuda.empty_cache()
    limit = torch.cuda.memory_allocated() + one + (all16 - one) * 0.35
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(limit / total)
    try:
        outs = generate(loaded, prompts, settings, batch_size=16)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    sizes = {o.batch_size for o in outs}
    assert max(sizes) <= 8 and sizes <= {8, 4, 2, 1}, sizes
    assert [o.example_id for o in outs] == [p.example_id for p in prompts]
    assert all(o.new_tokens == 24 and o.finish_reason == "length" and o.text for o in outs)
