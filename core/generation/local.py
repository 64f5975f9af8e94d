"""Generation: batched (grouped by length, shrinking on out-of-memory) and streamed, with the
finish reason, token counts and latency of every output."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from core.errors import PromptLabError
from core.generation import continuous
from core.generation.settings import GenerationSettings
from core.models.loading import LoadedModel
from core.prompting.design import RenderedPrompt

FinishReason = Literal["eos", "stop", "length"]
PRUNE_EVERY = 16  # steps between dropping finished rows from a batch: fewer calls vs less waste
# One generate call at a time per process: sessions share the model and the global RNG, and the
# lock is taken per batch, so a long run never holds others up for more than one batch.
generate_lock = threading.Lock()


@dataclass(frozen=True)
class Output:
    example_id: str | None
    text: str
    prompt_tokens: int
    new_tokens: int
    finish_reason: FinishReason
    latency_s: float  # from the batch's start to the step where this output finished
    stop_string: str | None = None
    batch_size: int = 1  # seeded sampling depends on the batch an output was generated in
    batch_index: int = 0
    attempts: int = 1  # requests sent for it (a served backend retries)


def default_batch_size(loaded: LoadedModel) -> int:
    """Rows decoded together. On 2 CPU cores 32 slots of continuous batching made 70.6 tok/s
    on the 48 built-in dialogues against 53.4 for 16 (bench.speed has the table)."""
    return 32 if loaded.device == "cpu" else 64


def generate(
    loaded: LoadedModel,
    prompts: Sequence[RenderedPrompt],
    settings: GenerationSettings,
    *,
    batch_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Output]:
    """Outputs in the order of `prompts`."""
    outputs: list[Output | None] = [None] * len(prompts)
    for indices, batch_outputs in generate_batches(
        loaded, prompts, settings, batch_size=batch_size
    ):
        for i, out in zip(indices, batch_outputs, strict=True):
            outputs[i] = out
        if on_progress:
            on_progress(sum(o is not None for o in outputs), len(prompts))
    return [o for o in outputs if o is not None]


def generate_batches(
    loaded: LoadedModel,
    prompts: Sequence[RenderedPrompt],
    settings: GenerationSettings,
    *,
    batch_size: int | None = None,
) -> Iterator[tuple[list[int], list[Output]]]:
    """Yield (indices into `prompts`, outputs) batch by batch, so callers can store as they go.

    Prompts of similar length share a batch (less padding); on out-of-memory the batch size
    halves and the batch is retried. Greedy outputs do not depend on the batching in float32;
    in bf16/fp16 padding changes the rounding, so an answer can part at a near-tie.
    """
    tokenizer = loaded.tokenizer
    encoded = [
        tokenizer(p.sent_text, add_special_tokens=p.add_special_tokens)["input_ids"]
        for p in prompts
    ]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    size = max(1, batch_size or default_batch_size(loaded))
    if size > 1 and len(prompts) > 1 and continuous.eligible(loaded, settings):
        yield from _generate_continuous(loaded, prompts, encoded, order, settings, size)
        return
    start, batch_index = 0, 0
    while start < len(order):
        indices = order[start : start + size]
        try:
            outs = _generate_one_batch(
                loaded,
                [encoded[i] for i in indices],
                [prompts[i].example_id for i in indices],
                settings,
                batch_index,
            )
        except torch.OutOfMemoryError as exc:
            _free_accelerator_memory(loaded)
            if size == 1:
                raise PromptLabError(
                    f"Out of {loaded.device} memory generating for one prompt of "
                    f"{len(encoded[indices[0]])} tokens: lower max_new_tokens, use fewer shots, "
                    "or load the model with a smaller dtype or on the CPU."
                ) from exc
            size = max(1, size // 2)
            continue
        yield indices, outs
        start += len(indices)
        batch_index += 1


def _generate_continuous(
    loaded: LoadedModel,
    prompts: Sequence[RenderedPrompt],
    encoded: list[list[int]],
    order: list[int],
    settings: GenerationSettings,
    slots: int,
) -> Iterator[tuple[list[int], list[Output]]]:
    """Greedy answers from continuous batching (core.generation.continuous), `slots` at a time;
    on out-of-memory the slots halve and what had not finished starts again."""
    waiting = list(order)
    while waiting:
        try:
            for finished in continuous.decode(
                loaded, [encoded[i] for i in waiting], settings, slots, generate_lock
            ):
                indices = [waiting[f.index] for f in finished]
                outs = [
                    Output(
                        example_id=prompts[i].example_id,
                        prompt_tokens=len(encoded[i]),
                        batch_size=slots,
                        **finish_output(loaded, settings, f.tokens, f.finished, f.latency_s),
                    )
                    for i, f in zip(indices, finished, strict=True)
                ]
                for f in finished:
                    waiting[f.index] = -1  # done: not to be generated again after an OOM
                yield indices, outs
            waiting = []
        except torch.OutOfMemoryError as exc:
            _free_accelerator_memory(loaded)
            waiting = [i for i in waiting if i >= 0]
            if slots == 1:
                raise PromptLabError(
                    f"Out of {loaded.device} memory generating for one prompt of "
                    f"{len(encoded[waiting[0]])} tokens: lower max_new_tokens, use fewer shots, "
                    "or load the model with a smaller dtype or on the CPU."
                ) from exc
            slots = max(1, slots // 2)


def _free_accelerator_memory(loaded: LoadedModel) -> None:
    if loaded.device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif loaded.device == "mps":
        torch.mps.empty_cache()


def generation_config(loaded: LoadedModel, settings: GenerationSettings) -> GenerationConfig:
    """A fresh config from our settings, so a model's own sampling defaults never leak in."""
    base = loaded.model.generation_config
    pad = loaded.tokenizer.pad_token_id
    return GenerationConfig(
        **settings.generate_kwargs(),
        eos_token_id=loaded.eos_token_ids or None,
        pad_token_id=pad if pad is not None else base.pad_token_id,
        bos_token_id=base.bos_token_id,
        decoder_start_token_id=base.decoder_start_token_id,
    )


def _generate_one_batch(
    loaded: LoadedModel,
    ids: list[list[int]],
    example_ids: list[str | None],
    settings: GenerationSettings,
    batch_index: int,
) -> list[Output]:
    batch = loaded.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(loaded.device)
    prompt_len = batch["input_ids"].shape[1] if loaded.kind == "causal" else 1
    recorder = FinishRecorder(loaded, settings, prompt_len)
    with generate_lock, torch.inference_mode():
        if settings.do_sample:
            torch.manual_seed(settings.seed + batch_index)
        recorder.start()
        if loaded.kind == "causal" and settings.num_beams == 1 and len(ids) > 1:
            new = _generate_pruning(loaded, batch, settings, recorder)
        else:
            sequences = loaded.model.generate(
                **batch,
                generation_config=generation_config(loaded, settings),
                stopping_criteria=StoppingCriteriaList([recorder]),
            )
            new = sequences[:, prompt_len:].tolist()
    elapsed = time.perf_counter() - recorder.started
    return [
        Output(
            example_id=example_ids[row],
            prompt_tokens=len(ids[row]),
            batch_size=len(ids),
            batch_index=batch_index,
            **finish_output(loaded, settings, new[row], recorder.finished.get(row), elapsed),
        )
        for row in range(len(ids))
    ]


def _generate_pruning(
    loaded: LoadedModel, batch: Any, settings: GenerationSettings, recorder: FinishRecorder
) -> list[list[int]]:
    """Generate PRUNE_EVERY steps at a time, dropping finished rows (and their cache) in between,
    so that one long answer does not keep the whole batch computing."""
    config = generation_config(loaded, settings)
    config.return_dict_in_generate = True  # for the cache, to continue from it
    input_ids, mask = batch["input_ids"], batch["attention_mask"]
    rows = list(range(input_ids.shape[0]))  # the original row of each row still generating
    new: list[list[int]] = [[] for _ in rows]
    cache, steps = None, 0
    while steps < settings.max_new_tokens:
        config.max_new_tokens = min(PRUNE_EVERY, settings.max_new_tokens - steps)
        config.min_new_tokens = min(config.max_new_tokens, max(0, settings.min_new_tokens - steps))
        recorder.rows = rows
        out = loaded.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            cache=cache,
            generation_config=config,
            stopping_criteria=StoppingCriteriaList([recorder]),
        )
        produced = out.sequences.shape[1] - input_ids.shape[1]
        for i, row in enumerate(rows):
            new[row].extend(out.sequences[i, input_ids.shape[1] :].tolist())
        steps += produced
        keep = [i for i, row in enumerate(rows) if row not in recorder.finished]
        if not keep or produced == 0:
            break
        input_ids, cache = out.sequences, out.past_key_values
        mask = torch.cat([mask, mask.new_ones(len(rows), produced)], dim=1)
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=input_ids.device)
            cache.batch_select_indices(index)
            input_ids, mask = input_ids[index], mask[index]
            rows = [rows[i] for i in keep]
    return new


class FinishRecorder(StoppingCriteria):
    """Notes, per row, the step and time at which it ended (eos or stop string); stops a row
    on its stop string. Beam search reorders rows, so there it only watches."""

    def __init__(self, loaded: LoadedModel, settings: GenerationSettings, prompt_len: int) -> None:
        self.tokenizer = loaded.tokenizer
        self.eos = set(loaded.eos_token_ids)
        self.stop = settings.stop
        self.window = max((len(s) for s in settings.stop), default=0) + 8  # tokens to re-decode
        self.prompt_len = prompt_len
        self.active = settings.num_beams == 1
        self.rows: list[int] | None = None  # original row of each input row, once rows are dropped
        self.finished: dict[int, tuple[FinishReason, int, float]] = {}
        self.started = time.perf_counter()

    def start(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.active:
            return done
        step = input_ids.shape[1] - self.prompt_len
        now = time.perf_counter() - self.started
        last = input_ids[:, -1].tolist()
        for i in range(input_ids.shape[0]):
            row = self.rows[i] if self.rows is not None else i
            if row in self.finished:
                done[i] = True
            elif self.stop and self._has_stop(input_ids[i, self.prompt_len :]):
                self.finished[row] = ("stop", step, now)
                done[i] = True
            elif last[i] in self.eos:
                self.finished[row] = ("eos", step, now)
        return done

    def _has_stop(self, new_ids: torch.Tensor) -> bool:
        tail = self.tokenizer.decode(new_ids[-self.window :], skip_special_tokens=True)
        return any(s in tail for s in self.stop)


def finish_output(
    loaded: LoadedModel,
    settings: GenerationSettings,
    new_ids: list[int],
    finished: tuple[FinishReason, int, float] | None,
    elapsed: float,
) -> dict[str, Any]:
    """Text, new-token count, finish reason and latency for one row of new tokens."""
    eos = set(loaded.eos_token_ids)
    if finished is not None:
        reason, steps, latency = finished
    else:  # not recorded (beam search) or never ended: read the tokens themselves
        first_eos = next((i for i, t in enumerate(new_ids) if t in eos), None)
        reason = "eos" if first_eos is not None else "length"
        steps = len(new_ids) if first_eos is None else first_eos + 1
        latency = elapsed
    text = loaded.tokenizer.decode(new_ids[:steps], skip_special_tokens=True)
    stop_string = None
    cut = [(text.find(s), s) for s in settings.stop if s in text]
    if cut:
        position, stop_string = min(cut)
        text, reason = text[:position], "stop"
    return dict(
        text=text,
        new_tokens=steps,
        finish_reason=reason,
        latency_s=latency,
        stop_string=stop_string,
    )
