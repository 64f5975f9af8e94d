"""The sampling inspector on tiny real models: each stage is what transformers' own processors
produce, the last stage is what generate decoded from, and greedy picks the raw argmax."""

import pytest
import torch
from torch.testing import assert_close
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from core.datasets.data import Example
from core.errors import PromptLabError
from core.generation.inspector import encode_prompt, inspect_step
from core.generation.local import generate, generation_config
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest, load_model
from core.prompting.design import PromptDesign
from core.prompting.rendering import render_for_model

DESIGN = PromptDesign(
    instruction="summarize the following conversation .",
    example_format="{input} summary : {output}",
)
INPUT = "#Person1#: book a train ticket for tomorrow ? #Person2#: yes ."
GREEDY = GenerationSettings(max_new_tokens=8)
SAMPLING = GenerationSettings(
    max_new_tokens=8, do_sample=True, temperature=0.7, top_k=12, top_p=0.8
)
PENALISED = SAMPLING.with_(repetition_penalty=1.3, no_repeat_ngram_size=2, min_new_tokens=3)


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def tiny(request, tiny_causal_dir, tiny_t5_dir):
    folder = tiny_causal_dir if request.param == "causal" else tiny_t5_dir
    return load_model(ModelRequest(str(folder), device="cpu"))  # float32: exact comparisons


def prompt_for(loaded, text=INPUT):
    return render_for_model(loaded, DESIGN, Example("e", text), max_new_tokens=8)


def run_generate(loaded, prompt, settings):
    """transformers' generate with core.generation.local's config: new ids, raw logits and the
    processed scores it decoded from, per step."""
    ids = torch.tensor([encode_prompt(loaded, prompt)])
    config = generation_config(loaded, settings)
    config.return_dict_in_generate = config.output_scores = config.output_logits = True
    torch.manual_seed(settings.seed)
    with torch.inference_mode():
        out = loaded.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config
        )
    start = ids.shape[1] if loaded.kind == "causal" else 1
    return out.sequences[0, start:].tolist(), out.logits, out.scores


def own_logits(loaded, prompt, answer):
    """The next-token logits by a forward pass written out here, independently."""
    prompt_ids = encode_prompt(loaded, prompt)
    with torch.inference_mode():
        if loaded.kind == "causal":
            out = loaded.model(input_ids=torch.tensor([prompt_ids + answer]))
        else:
            start = loaded.model.generation_config.decoder_start_token_id
            out = loaded.model(
                input_ids=torch.tensor([prompt_ids]),
                decoder_input_ids=torch.tensor([[start, *answer]]),
            )
    return out.logits[0, -1].float()


def test_each_stage_is_what_transformers_warpers_make_of_the_logits(tiny):
    prompt = prompt_for(tiny)
    answer, _, _ = run_generate(tiny, prompt, GREEDY)
    view = inspect_step(tiny, prompt, answer, 2, SAMPLING)
    assert [s.name for s in view.stages] == ["raw", "temperature", "top_k", "top_p"]
    logits = own_logits(tiny, prompt, answer[:2])
    assert_close(view.logits, logits)
    seen = torch.tensor([[0, *answer[:2]]])  # the warpers below do not look at the ids
    scores = logits.unsqueeze(0)
    expected = [scores]
    for warper in (TemperatureLogitsWarper(0.7), TopKLogitsWarper(12), TopPLogitsWarper(0.8)):
        scores = warper(seen, scores)
        expected.append(scores)
    for stage, stage_scores in zip(view.stages, expected, strict=True):
        probs = torch.softmax(stage_scores[0], dim=-1)
        assert_close(stage.probs, probs)
        assert_close(stage.probs.sum(), torch.tensor(1.0))
        assert stage.kept == int(torch.isfinite(stage_scores).sum()) and stage.applies
        assert [t.id for t in stage.top] == torch.topk(probs, len(stage.top)).indices.tolist()
    assert view.stages[2].kept == 12 and view.stages[3].kept <= 12
    assert len(view.stages[0].top) == 20 and len(view.stages[3].top) == view.stages[3].kept


def test_the_last_stage_is_what_generate_sampled_from(tiny):
    prompt = prompt_for(tiny)
    answer, raw_logits, scores = run_generate(tiny, prompt, PENALISED)
    assert len(answer) == len(scores) >= 4
    for step in range(4):
        view = inspect_step(tiny, prompt, answer, step, PENALISED)
        names = [s.name for s in view.stages]
        assert names == [
            "raw",
            "repetition_penalty",
            "no_repeat_ngram_size",
            "min_new_tokens",
            "temperature",
            "top_k",
            "top_p",
        ]
        assert_close(view.logits, raw_logits[step][0], rtol=1e-4, atol=1e-4)
        assert_close(view.final.probs, torch.softmax(scores[step][0], dim=-1), rtol=0, atol=1e-5)
        assert view.chosen.id == answer[step] and view.final.chosen_probability > 0
        if step < 3:  # min_new_tokens keeps the answer from ending here
            assert view.final.probs[tiny.tokenizer.eos_token_id] == 0


def test_greedy_picks_the_argmax_of_the_raw_distribution(tiny):
    prompt = prompt_for(tiny)
    answer, _, _ = run_generate(tiny, prompt, GREEDY)
    text = tiny.tokenizer.decode(answer, skip_special_tokens=True)
    assert text == generate(tiny, [prompt], GREEDY)[0].text  # the ids of the project's generate
    for step, token in enumerate(answer):
        view = inspect_step(tiny, prompt, answer, step, GREEDY)
        assert view.final.name == "raw" and not view.sampling
        assert int(view.stages[0].probs.argmax()) == token == view.chosen.id
        assert view.chosen.probability == view.stages[0].top[0].probability
        assert len(view.notes) == 1  # greedy's note only: nothing odd about this answer


def test_greedy_shows_sampling_filters_without_applying_them(tiny):
    prompt = prompt_for(tiny)
    settings = GREEDY.with_(temperature=0.5, top_k=5, repetition_penalty=1.2)
    answer, _, _ = run_generate(tiny, prompt, settings)
    view = inspect_step(tiny, prompt, answer, 1, settings)
    applies = {s.name: s.applies for s in view.stages}
    assert applies == {
        "raw": True,
        "repetition_penalty": True,
        "temperature": False,
        "top_k": False,
    }
    assert view.final.name == "repetition_penalty"
    assert int(view.final.probs.argmax()) == answer[1]
    assert view.stages[-1].kept == 5 and "Greedy decoding" in view.notes[0]


def test_a_token_the_settings_rule_out_is_pointed_out(tiny):
    prompt = prompt_for(tiny)
    view = inspect_step(tiny, prompt, [], 0, SAMPLING.with_(top_k=1))
    unlikely = view.stages[0].top[1].id  # likely enough to have a raw probability above 0
    view = inspect_step(tiny, prompt, [unlikely], 0, SAMPLING.with_(top_k=1))
    assert view.final.chosen_probability == 0 and view.chosen.probability > 0
    assert any("probability 0 at the last stage (top_p)" in note for note in view.notes)
    greedy = inspect_step(tiny, prompt, [unlikely], 0, GREEDY)
    assert any("Greedy decoding would pick" in note for note in greedy.notes)


def test_the_step_after_the_answer_has_no_chosen_token_and_beyond_is_refused(tiny):
    prompt = prompt_for(tiny)
    answer, _, _ = run_generate(tiny, prompt, GREEDY)
    after = inspect_step(tiny, prompt, answer, len(answer), GREEDY)
    assert after.chosen is None and after.stages[0].chosen_probability is None
    for step in (len(answer) + 1, -1):
        with pytest.raises(PromptLabError, match="outside this answer"):
            inspect_step(tiny, prompt, answer, step, GREEDY)


@pytest.mark.slow
def test_smollm2_last_stage_is_what_generate_sampled_from(embedded):
    design = DESIGN.with_(example_format="Dialogue: {input}\nSummary: {output}")
    prompt = render_for_model(embedded, design, Example("e", INPUT), max_new_tokens=8)
    settings = PENALISED.with_(max_new_tokens=4)
    answer, raw_logits, scores = run_generate(embedded, prompt, settings)
    for step in (0, 3):
        view = inspect_step(embedded, prompt, answer, step, settings)
        assert_close(view.logits, raw_logits[step][0], rtol=1e-3, atol=1e-3)
        assert_close(view.final.probs, torch.softmax(scores[step][0], dim=-1), rtol=0, atol=1e-4)
        assert view.chosen.id == answer[step] and view.final.chosen_probability > 0


def test_a_prompt_with_shots_as_turns_is_inspected_as_generate_decodes_it(tiny_causal_dir):
    loaded = load_model(ModelRequest(str(tiny_causal_dir), device="cpu"))
    design = DESIGN.with_(shots=1, shot_format="turns")
    shot = Example("s", "#Person1#: hello . #Person2#: hi .", "one person asks")
    prompt = render_for_model(loaded, design, Example("e", INPUT), [shot], max_new_tokens=8)
    assert [m["role"] for m in prompt.messages] == ["user", "assistant", "user"]
    answer, raw_logits, scores = run_generate(loaded, prompt, PENALISED)
    for step in range(2):
        view = inspect_step(loaded, prompt, answer, step, PENALISED)
        assert_close(view.logits, raw_logits[step][0], rtol=1e-4, atol=1e-4)
        assert_close(view.final.probs, torch.softmax(scores[step][0], dim=-1), rtol=0, atol=1e-5)
        assert view.chosen.id == answer[step]
