"""The real embedded SmolLM2: conversion cache, batching that changes nothing, reproducible
sampling, streaming, stop strings, and prompt → output → ROUGE end to end."""

import json
import shutil

import pytest
import torch

from core.datasets.data import load_builtin
from core.evaluation.scoring import RougeOptions, score_rouge
from core.generation.local import generate
from core.generation.settings import GenerationSettings
from core.generation.streaming import TokenStream
from core.models import gguf_cache
from core.models.registry import EMBEDDED, ModelRequest, embedded_gguf_path, load_model
from core.prompting.design import PRESETS
from core.prompting.rendering import render_for_model

pytestmark = pytest.mark.slow

DATA = load_builtin()
GREEDY = GenerationSettings(max_new_tokens=40)


def render(loaded, design, example, settings=GREEDY):
    return render_for_model(
        loaded, design, example, DATA.pool, max_new_tokens=settings.max_new_tokens
    )


def varied_prompts(loaded):
    """Ten prompts of different lengths and styles, with braces and non-ASCII text among them."""
    chosen = [DATA.by_id(i) for i in ("d017", "d023", "d046", "d047", "d048", "d049", "d030")]
    designs = [
        PRESETS["instruction"],
        PRESETS["flan"],
        PRESETS["flan"].with_(shots=1),
        PRESETS["flan"].with_(shots=3),
        PRESETS["instruction"].with_(shots=2, selection="random", selection_seed=4),
    ]
    prompts = [render(loaded, designs[i % len(designs)], ex) for i, ex in enumerate(chosen)]
    prompts += [render(loaded, PRESETS["flan"].with_(use_chat_template=False), DATA.eval[5])]
    prompts += [render(loaded, PRESETS["instruction"].with_(shots=1), ex) for ex in DATA.eval[6:8]]
    return prompts


def test_embedded_model_facts(embedded):
    assert embedded.model_id == EMBEDDED and embedded.kind == "causal"
    assert embedded.context_window == 8192
    assert embedded.has_chat_template and embedded.tokenizer.padding_side == "left"
    assert embedded.revision == gguf_cache.file_sha256(embedded_gguf_path())


def test_greedy_batched_output_equals_one_prompt_at_a_time(embedded):
    prompts = varied_prompts(embedded)
    assert len({p.prompt_tokens for p in prompts}) >= 8  # padding really happens
    batched = generate(embedded, prompts, GREEDY, batch_size=len(prompts))
    single = [generate(embedded, [p], GREEDY)[0] for p in prompts]
    assert [o.text for o in batched] == [o.text for o in single]
    assert [(o.new_tokens, o.finish_reason) for o in batched] == [
        (o.new_tokens, o.finish_reason) for o in single
    ]
    assert all(o.text.strip() for o in batched)
    assert {o.finish_reason for o in batched} <= {"eos", "length"}


def test_seeded_sampling_reproduces_run_to_run(embedded):
    prompts = varied_prompts(embedded)[:4]
    sampling = GenerationSettings(max_new_tokens=24, do_sample=True, temperature=0.9, top_p=0.95)
    first = [o.text for o in generate(embedded, prompts, sampling)]
    again = [o.text for o in generate(embedded, prompts, sampling)]
    other = [o.text for o in generate(embedded, prompts, sampling.with_(seed=99))]
    assert first == again
    assert first != other


def test_stream_shows_the_same_answer_as_a_batch(embedded):
    prompt = varied_prompts(embedded)[2]
    stream = TokenStream(embedded, prompt, GREEDY)
    pieces = list(stream)
    assert len(pieces) > 3
    assert "".join(pieces) == stream.result.text == generate(embedded, [prompt], GREEDY)[0].text


def test_stop_string_cuts_the_real_answer_and_ends_it_early(embedded):
    prompt = varied_prompts(embedded)[0]
    free = generate(embedded, [prompt], GREEDY)[0]
    words = free.text.split()
    stop = " " + words[len(words) // 2]  # a word from the middle of the free answer
    out = generate(embedded, [prompt], GREEDY.with_(stop=("never appears", stop)))[0]
    assert (out.finish_reason, out.stop_string) == ("stop", stop)
    assert out.text == free.text[: free.text.index(stop)]
    assert out.new_tokens < free.new_tokens


def test_prompt_to_rouge_end_to_end(embedded):
    examples = DATA.eval[:3]
    prompts = [render(embedded, PRESETS["flan"].with_(shots=1), ex) for ex in examples]
    outputs = generate(embedded, prompts, GREEDY)
    report = score_rouge(
        [o.text for o in outputs], [ex.reference for ex in examples], options=RougeOptions.lab()
    )
    assert report.n == 3
    for name, agg in report.aggregates.items():
        assert 0 <= agg.ci_low <= agg.mean <= agg.ci_high <= 1, name
    assert report.aggregates["rouge1"].mean > 0  # the summaries share words with the dialogues


def test_gguf_conversion_is_cached_and_gives_identical_logits(tmp_path):
    cold = load_model(ModelRequest(device="cpu"), cache_dir=tmp_path)
    warm = load_model(ModelRequest(device="cpu"), cache_dir=tmp_path)
    assert (cold.from_cache, warm.from_cache) == (False, True)
    assert warm.revision == cold.revision
    ids = cold.tokenizer("#Person1#: Hello there!", return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(cold.model(**ids).logits, warm.model(**ids).logits)
    assert warm.tokenizer.chat_template == cold.tokenizer.chat_template
    assert warm.load_seconds < cold.load_seconds


def test_damaged_cache_entry_is_rebuilt_not_trusted(tmp_path):
    path = embedded_gguf_path()
    sha = gguf_cache.file_sha256(path)
    entry = gguf_cache.entry_dir(sha, tmp_path)
    entry.mkdir(parents=True)
    (entry / gguf_cache.MARKER).write_text(json.dumps({"sha256": sha}))
    (entry / "config.json").write_text("{broken")
    model, tokenizer, got_sha, from_cache = gguf_cache.load(path, cache_dir=tmp_path)
    assert (got_sha, from_cache) == (sha, False)
    assert (entry / "model.safetensors").is_file()
    assert gguf_cache.load(path, cache_dir=tmp_path)[3] is True


def test_changed_gguf_file_gets_its_own_cache_entry(tmp_path):
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(embedded_gguf_path(), copy)
    with open(copy, "ab") as fh:  # trailing bytes change the hash, not the model
        fh.write(b"\0" * 32)
    original = gguf_cache.file_sha256(embedded_gguf_path())
    changed = gguf_cache.file_sha256(copy)
    assert changed != original
    assert gguf_cache.entry_dir(changed, tmp_path) != gguf_cache.entry_dir(original, tmp_path)
