"""The sampling inspector: the model's next-token distribution at one step of an answer, raw and
after each of generate's own logits processors (penalties, temperature, top-k, top-p)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessorList

from core.errors import PromptLabError
from core.generation.local import generate_lock, generation_config
from core.generation.settings import GenerationSettings
from core.models.loading import LoadedModel
from core.prompting.design import RenderedPrompt
from core.prompting.token_view import token_text


@dataclass(frozen=True)
class TokenProb:
    id: int
    text: str
    probability: float


@dataclass(frozen=True)
class Stage:
    name: str  # "raw", then generate's processors: "repetition_penalty", "temperature", "top_k", …
    label: str  # e.g. "after top_k=50"
    applies: bool  # False: a sampling filter under greedy decoding, shown for what it would do
    probs: torch.Tensor  # over the whole vocabulary (float32, CPU)
    top: tuple[TokenProb, ...]  # the most likely tokens still in play
    # Tokens still in play (not set to -inf by a filter); with very peaked logits some of them
    # have a probability that rounds to 0 in float32, and sampling can never draw those.
    kept: int
    chosen_probability: float | None  # of the answer's token at this step


@dataclass(frozen=True)
class StepView:
    step: int  # answer tokens before the one predicted here
    chosen: TokenProb | None  # the answer's token at this step (raw); None just past the answer
    stages: tuple[Stage, ...]  # cumulative, in the order generate applies them
    sampling: bool
    notes: tuple[str, ...]
    logits: torch.Tensor  # raw next-token logits (float32, CPU), where every stage starts

    @property
    def final(self) -> Stage:
        """What decoding picks from: sampling draws from it, greedy takes its most likely token."""
        return [s for s in self.stages if s.applies][-1]


def encode_prompt(loaded: LoadedModel, prompt: RenderedPrompt) -> list[int]:
    """The prompt's input ids exactly as core.generation.local encodes them."""
    encoded = loaded.tokenizer(prompt.sent_text, add_special_tokens=prompt.add_special_tokens)
    if not encoded["input_ids"]:
        raise PromptLabError("The prompt is empty: there is nothing for the model to continue.")
    return list(encoded["input_ids"])


def inspect_step(
    loaded: LoadedModel,
    prompt: RenderedPrompt,
    answer_ids: Sequence[int],
    step: int,
    settings: GenerationSettings,
    top: int = 20,
) -> StepView:
    """The distribution the answer's token number `step` (from 0) was picked from.

    `answer_ids` are the generated ids (for a causal model, those after the prompt; for an
    encoder-decoder, those after the decoder start). `step == len(answer_ids)` shows what would
    come after the answer. The processors are the ones `generate` builds for these settings.
    """
    if not 0 <= step <= len(answer_ids):
        raise PromptLabError(
            f"Step {step} is outside this answer: choose a step from 0 to {len(answer_ids)} "
            f"(the answer has {len(answer_ids)} tokens)."
        )
    if top < 1:
        raise PromptLabError(f"top must be at least 1; got {top}.")
    prompt_ids = encode_prompt(loaded, prompt)
    context = list(answer_ids[:step])
    logits = forward_logits(loaded, prompt_ids, context, keep=1)[0]
    seen = prompt_ids + context if loaded.kind == "causal" else [_decoder_start(loaded), *context]
    processors = _processors(loaded, settings, prompt_ids)
    chosen_id = answer_ids[step] if step < len(answer_ids) else None
    stages = _stages(loaded, settings, logits, seen, processors, chosen_id, top)
    chosen = None
    if chosen_id is not None:
        text = token_text(loaded.tokenizer, chosen_id)
        chosen = TokenProb(chosen_id, text, stages[0].chosen_probability or 0.0)
    notes = _notes(settings, stages, chosen_id)
    return StepView(step, chosen, tuple(stages), settings.do_sample, notes, logits)


def forward_logits(
    loaded: LoadedModel, prompt_ids: list[int], answer_ids: list[int], *, keep: int
) -> torch.Tensor:
    """Raw logits (float32, CPU) at the last `keep` positions of one forward pass over the prompt
    and `answer_ids` (teacher-forced): row i predicts the token after position -keep + i."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1; got {keep}")
    model = loaded.model
    device = loaded.device
    if loaded.kind == "causal":
        ids = torch.tensor([prompt_ids + answer_ids], device=device)
        inputs: dict[str, Any] = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
    else:
        ids = torch.tensor([prompt_ids], device=device)
        decoder = torch.tensor([[_decoder_start(loaded), *answer_ids]], device=device)
        inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=decoder)
    if model._supports_logits_to_keep():  # a long prompt's logits would be vocabulary × length
        inputs["logits_to_keep"] = keep
    with generate_lock, torch.inference_mode():
        logits = model(**inputs).logits[0, -keep:]
    # generate casts to float32 before its processors: the same numbers here.
    return logits.to(dtype=torch.float32, device="cpu")


def _decoder_start(loaded: LoadedModel) -> int:
    base = loaded.model.generation_config
    start = base.decoder_start_token_id
    start = start if start is not None else base.bos_token_id  # as generate falls back
    if start is None:
        raise PromptLabError(f"{loaded.model_id} names no decoder start token.")
    return int(start)


def _processors(
    loaded: LoadedModel, settings: GenerationSettings, prompt_ids: list[int]
) -> LogitsProcessorList:
    """generate's own processor list for these settings (with sampling on, so that greedy
    settings can show what temperature/top-k/top-p would do), built by its own methods."""
    model = loaded.model
    config = _sampling_config(loaded, settings)
    has_default_max = config.max_length is None and model.generation_config.max_length is None
    has_default_min = config.min_length is None and model.generation_config.min_length is None
    ids = torch.tensor([prompt_ids], device="cpu")
    start_len = len(prompt_ids) if loaded.kind == "causal" else 1
    try:
        # The steps generate takes before building its processors (transformers 5.24).
        config, _ = model._prepare_generation_config(config)
        model._prepare_special_tokens(config, True, device="cpu", batch_size=1)
        config = model._prepare_generated_length(
            config,
            has_default_max_length=has_default_max,
            has_default_min_length=has_default_min,
            model_input_name="input_ids",
            input_ids_length=start_len,
            inputs_tensor=ids,
        )
        return model._get_logits_processor(
            config, input_ids_seq_length=start_len, encoder_input_ids=ids, device="cpu"
        )
    except (AttributeError, TypeError) as exc:  # private API: a transformers release may change it
        raise PromptLabError(
            "The sampling inspector cannot build generate's processors with this transformers "
            f"release ({exc}); it was written against transformers 5.24."
        ) from exc


def _sampling_config(loaded: LoadedModel, settings: GenerationSettings) -> GenerationConfig:
    config = generation_config(loaded, settings)
    if not settings.do_sample:
        config.do_sample, config.num_beams = True, 1
        # Greedy allows temperature 0; as a what-if it means "no temperature", as 1 does.
        config.temperature = settings.temperature if settings.temperature > 0 else 1.0
        config.top_k, config.top_p = settings.top_k, settings.top_p
    return config


def _stages(
    loaded: LoadedModel,
    settings: GenerationSettings,
    logits: torch.Tensor,
    seen: list[int],
    processors: LogitsProcessorList,
    chosen_id: int | None,
    top: int,
) -> list[Stage]:
    """The raw distribution, then one stage per processor, applied cumulatively as generate
    does (each processor gets the ids so far and the scores the one before it left)."""
    input_ids = torch.tensor([seen])
    scores = logits.unsqueeze(0)
    stages = [_stage(loaded, "raw", "model (raw softmax)", True, scores, chosen_id, top)]
    for processor in processors:
        scores = processor(input_ids, scores.clone())
        # generate always turns min_new_tokens into a min_length counted with the prompt, so this
        # processor either never fires (min_new_tokens=0) or repeats the next one: no stage.
        if type(processor).__name__ == "MinLengthLogitsProcessor":
            continue
        name, label = _describe(processor)
        warper = type(processor).__name__.endswith("LogitsWarper")
        applies = settings.do_sample or not warper
        stages.append(_stage(loaded, name, label, applies, scores, chosen_id, top))
    return stages


def _stage(
    loaded: LoadedModel,
    name: str,
    label: str,
    applies: bool,
    scores: torch.Tensor,
    chosen_id: int | None,
    top: int,
) -> Stage:
    probs = torch.softmax(scores[0], dim=-1)
    kept = int(torch.isfinite(scores[0]).sum())
    values, indices = torch.topk(probs, min(top, kept))
    tokens = tuple(
        TokenProb(int(i), token_text(loaded.tokenizer, int(i)), float(v))
        for v, i in zip(values.tolist(), indices.tolist(), strict=True)
    )
    chosen = float(probs[chosen_id]) if chosen_id is not None else None
    return Stage(name, label, applies, probs, tokens, kept, chosen)


# generate's processor classes, by the setting that turns each on.
_NAMES = {
    "RepetitionPenaltyLogitsProcessor": ("repetition_penalty", "penalty"),
    "NoRepeatNGramLogitsProcessor": ("no_repeat_ngram_size", "ngram_size"),
    "MinNewTokensLengthLogitsProcessor": ("min_new_tokens", "min_new_tokens"),
    "TemperatureLogitsWarper": ("temperature", "temperature"),
    "TopKLogitsWarper": ("top_k", "top_k"),
    "TopPLogitsWarper": ("top_p", "top_p"),
}


def _describe(processor: Any) -> tuple[str, str]:
    cls = type(processor).__name__
    if cls not in _NAMES:
        name = cls.removesuffix("LogitsWarper").removesuffix("LogitsProcessor")
        return name, f"after {name}"
    name, attribute = _NAMES[cls]
    value = getattr(processor, attribute, None)
    return name, f"after {name}={value}" if value is not None else f"after {name}"


def _notes(
    settings: GenerationSettings, stages: Sequence[Stage], chosen_id: int | None
) -> tuple[str, ...]:
    notes = []
    if not settings.do_sample:
        notes.append(
            "Greedy decoding takes the most likely token after the penalties; temperature, "
            "top-k and top-p do not apply. Their stages show what sampling with these values "
            "would do."
        )
    if settings.num_beams > 1:
        notes.append(
            f"Beam search ({settings.num_beams} beams) keeps several candidates, so the "
            "answer's token need not be the most likely one at this step; it also applies the "
            "penalties to log-probabilities, so their stages here are close, not exact."
        )
    final = [s for s in stages if s.applies][-1]
    if chosen_id is not None and final.chosen_probability == 0:
        notes.append(
            f"The answer's token has probability 0 at the last stage ({final.name}): the answer "
            "was not decoded with these settings, or its text was tokenized differently from "
            "how it was generated."
        )
    elif chosen_id is not None and not settings.do_sample and settings.num_beams == 1:
        best = final.top[0]
        if best.id != chosen_id and best.probability > final.chosen_probability:
            notes.append(
                f"Greedy decoding would pick {best.text!r} here, not the answer's token: the "
                "answer was not decoded greedily with these settings."
            )
    return tuple(notes)
