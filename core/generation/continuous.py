"""Continuous batching of our own, for greedy decoding on a causal model: a fixed number of
slots decode together; a slot whose answer ended takes the next prompt from the queue, so the
batch stays full until the queue runs dry, and only then shrinks.

Where the time went before (one decode step profiled, and a 48-prompt run timed by phase, in
bench/decode_profile.py): prefilling all the batch's prompts in one call ran at ~60% of the
speed of prefilling eight at a time (and padded every prompt to the longest), the key/value
cache was copied whole at every step (torch.cat in DynamicCache), and each round of 16 steps
built generate()'s machinery again. Here prompts are prefilled a few at a time (similar
lengths, so little padding, and logits for the last position only), their keys and values are
copied into a preallocated cache that grows by whole blocks, and one plain loop decodes.

Every row sees only its own tokens (the columns before it are masked out) at its own
positions, so in float32 a greedy answer is the one it gets alone; the bench and the tests
check the text is identical.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from core.generation.settings import GenerationSettings
from core.models.loading import LoadedModel

PREFILL_ROWS = 8  # prompts prefilled together: ~560 prompt tok/s on 2 cores vs ~400 for 48
ROUND_STEPS = 16  # steps between admitting, dropping and yielding (and taking the lock again)
GROW_BY = 128  # cache columns added at a time
TRIM_AT = 64  # leading columns that no row uses, dropped once there are this many


def eligible(loaded: LoadedModel, settings: GenerationSettings) -> bool:
    """Greedy decoding with nothing that reads the tokens before (repetition penalty, n-gram
    blocking) on a causal model: what this loop does exactly as generate() does."""
    return (
        loaded.kind == "causal"
        and not settings.do_sample
        and settings.num_beams == 1
        and settings.repetition_penalty == 1.0
        and settings.no_repeat_ngram_size == 0
    )


class _Layer(DynamicLayer):
    """One layer's keys and values in a buffer [slots, heads, capacity, dim]; the model writes
    the new column at the cache's shared length, and attends over the columns up to it."""

    def __init__(self, owner: _Cache) -> None:
        super().__init__()
        self.owner = owner
        self.kbuf: torch.Tensor | None = None
        self.vbuf: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def allocate(self, like: torch.Tensor, rows: int, capacity: int) -> None:
        shape = (rows, like.shape[1], capacity, like.shape[3])
        self.kbuf = like.new_zeros(shape)  # zeros, not garbage: a masked column must be finite
        self.vbuf = like.new_zeros(shape)
        self.is_initialized = True
        self.device = like.device

    def update(self, key_states, value_states, *args, **kwargs):
        end = self.owner.length + key_states.shape[-2]
        self.kbuf[:, :, self.owner.length : end] = key_states
        self.vbuf[:, :, self.owner.length : end] = value_states
        return self.kbuf[:, :, :end], self.vbuf[:, :, :end]

    def get_seq_length(self) -> int:
        return self.owner.length


class _Cache(DynamicCache):
    def __init__(self, config) -> None:
        super().__init__(config=config)
        self.length = 0  # columns in use, shared by all rows
        self.layers = [_Layer(self) for _ in range(config.num_hidden_layers)]

    @property
    def buffers(self) -> list[_Layer]:
        return self.layers  # type: ignore[return-value]


@dataclass
class _Row:
    index: int  # into the prompts
    prompt_len: int
    started: float
    position: int  # of the next token
    tokens: list[int] = field(default_factory=list)
    finished: tuple[str, int, float] | None = None  # reason, steps, latency


@dataclass
class Finished:
    index: int
    tokens: list[int]
    finished: tuple[str, int, float] | None  # None: it ran to max_new_tokens
    latency_s: float


def decode(
    loaded: LoadedModel,
    encoded: Sequence[list[int]],
    settings: GenerationSettings,
    slots: int,
    lock,
) -> Iterator[list[Finished]]:
    """Answers to the prompts `encoded` (longest first: a prompt longer than the cache in use
    moves every row along), yielded a round of steps at a time as they finish. `lock` is held
    for each round, so that other callers get the model in between."""
    model, device = loaded.model, loaded.device
    eos = set(loaded.eos_token_ids)
    eos_t = torch.tensor(sorted(eos), device=device, dtype=torch.long) if eos else None
    pad = loaded.tokenizer.pad_token_id
    pad = pad if pad is not None else min(eos, default=0)
    stop_window = max((len(s) for s in settings.stop), default=0) + 8
    queue = list(range(len(encoded)))
    cache = _Cache(model.config)
    rows: list[_Row | None] = [None] * min(slots, len(queue))
    mask = torch.zeros(len(rows), 0, dtype=torch.long, device=device)
    last = torch.full((len(rows), 1), pad, dtype=torch.long, device=device)

    def make_room(columns: int, filled: DynamicCache | None = None) -> None:
        """Buffers of at least `columns` columns, the columns in use kept; shaped like the
        prefilled cache `filled` at first."""
        if cache.buffers[0].kbuf is not None and columns <= cache.buffers[0].kbuf.shape[2]:
            return
        for i, layer in enumerate(cache.buffers):
            old_k, old_v = layer.kbuf, layer.vbuf
            like = old_k if old_k is not None else filled.layers[i].keys
            layer.allocate(like, len(rows), columns + GROW_BY)
            if old_k is not None:
                layer.kbuf[:, :, : cache.length] = old_k[:, :, : cache.length]
                layer.vbuf[:, :, : cache.length] = old_v[:, :, : cache.length]

    def admit(free: list[int]) -> None:
        """Prefill queued prompts a few at a time into the free slots."""
        nonlocal mask
        while free and queue:
            take = queue[: min(PREFILL_ROWS, len(free))]
            slots_taken = free[: len(take)]
            del queue[: len(take)]
            free = free[len(take) :]
            batch = loaded.tokenizer.pad(
                {"input_ids": [encoded[i] for i in take]}, return_tensors="pt"
            ).to(device)
            ids, chunk_mask = batch["input_ids"], batch["attention_mask"]
            started = time.perf_counter()
            filled = DynamicCache(config=model.config)
            logits = model(
                input_ids=ids,
                attention_mask=chunk_mask,
                position_ids=(chunk_mask.cumsum(-1) - 1).clamp(min=0),
                cache=filled,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
            width = ids.shape[1]
            make_room(max(cache.length, width) + 1, filled)
            if cache.length < width:  # the first prompts, or a longer one after a trim
                shift = width - cache.length
                for layer in cache.buffers:
                    for buf in (layer.kbuf, layer.vbuf):
                        buf[:, :, shift:width] = buf[:, :, : cache.length].clone()
                mask = torch.cat([mask.new_zeros(len(rows), shift), mask], dim=1)
                cache.length = width
            begin = cache.length - width
            index = torch.tensor(slots_taken, device=device)
            for layer, new in zip(cache.buffers, filled.layers, strict=True):
                for buf, values in ((layer.kbuf, new.keys), (layer.vbuf, new.values)):
                    buf[index, :, :begin] = 0
                    buf[index, :, begin : cache.length] = values
            mask[index] = 0
            mask[index, begin:] = chunk_mask
            first = _greedy(logits, settings, eos_t, [0] * len(take))
            now = time.perf_counter()
            for j, (i, slot) in enumerate(zip(take, slots_taken, strict=True)):
                rows[slot] = _Row(i, len(encoded[i]), started, len(encoded[i]))
                _append(loaded, settings, rows[slot], first[j], eos, stop_window, now - started)
                last[slot, 0] = first[j]

    def step() -> None:
        nonlocal mask, last
        positions = [[r.position if r is not None else 0] for r in rows]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        logits = model(
            input_ids=last,
            attention_mask=mask,
            position_ids=torch.tensor(positions, device=device),
            cache=cache,
            use_cache=True,
        ).logits[:, -1]
        cache.length += 1
        chosen = _greedy(logits, settings, eos_t, [len(r.tokens) if r else 0 for r in rows])
        last = chosen.unsqueeze(1)
        now = time.perf_counter()
        for s, row in enumerate(rows):
            if row is not None and row.finished is None:
                row.position += 1
                _append(loaded, settings, row, chosen[s], eos, stop_window, now - row.started)

    def compact() -> None:
        """Drop the empty slots when nothing waits to fill them, and the leading columns
        that no row attends to."""
        nonlocal rows, mask, last
        kept = [s for s, r in enumerate(rows) if r is not None]
        if not queue and kept and len(kept) < len(rows):
            index = torch.tensor(kept, device=device)
            for layer in cache.buffers:
                layer.kbuf, layer.vbuf = layer.kbuf[index], layer.vbuf[index]
            rows, mask, last = [rows[s] for s in kept], mask[index], last[index]
        used = mask[:, : cache.length].any(dim=0).nonzero()
        lead = int(used[0]) if len(used) else 0
        lead = min(lead, cache.length - max((len(encoded[i]) for i in queue), default=0))
        if lead >= TRIM_AT:
            for layer in cache.buffers:
                for buf in (layer.kbuf, layer.vbuf):
                    buf[:, :, : cache.length - lead] = buf[:, :, lead : cache.length].clone()
            mask = mask[:, lead:]
            cache.length -= lead

    while True:
        with lock, torch.inference_mode():
            free = [s for s, r in enumerate(rows) if r is None]
            if free and queue:
                admit(free)
            for _ in range(ROUND_STEPS):
                if all(r is None or r.finished is not None for r in rows):
                    break
                make_room(cache.length + 1)
                step()
            ended = [s for s, r in enumerate(rows) if r is not None and r.finished is not None]
            answers = [_finish(rows[s]) for s in ended]
            for s in ended:
                rows[s] = None
            if any(r is not None for r in rows):
                compact()
        if answers:
            yield answers
        if not queue and all(r is None for r in rows):
            return


def _greedy(
    logits: torch.Tensor, settings: GenerationSettings, eos: torch.Tensor | None, counts
) -> torch.Tensor:
    """The most likely token of each row; end-of-sequence is barred before min_new_tokens, as
    generate's MinNewTokensLengthLogitsProcessor bars it."""
    if settings.min_new_tokens and eos is not None:
        early = torch.tensor([c < settings.min_new_tokens for c in counts], device=logits.device)
        if bool(early.any()):
            logits = logits.clone()
            logits[early.nonzero().squeeze(1).unsqueeze(1), eos.unsqueeze(0)] = -float("inf")
    return logits.argmax(dim=-1)


def _append(loaded, settings, row: _Row, token, eos, stop_window, latency) -> None:
    token = int(token)
    row.tokens.append(token)
    steps = len(row.tokens)
    if token in eos:
        row.finished = ("eos", steps, latency)
    elif settings.stop and _has_stop(loaded, row.tokens, settings.stop, stop_window):
        row.finished = ("stop", steps, latency)
    elif steps >= settings.max_new_tokens:
        row.finished = ("length", steps, latency)


def _has_stop(loaded, tokens: list[int], stop: tuple[str, ...], window: int) -> bool:
    tail = loaded.tokenizer.decode(tokens[-window:], skip_special_tokens=True)
    return any(s in tail for s in stop)


def _finish(row: _Row) -> Finished:
    reason, steps, latency = row.finished
    # Ran to the limit: finish_output reads the tokens themselves, as for generate().
    finished = None if reason == "length" else (reason, steps, latency)
    return Finished(row.index, row.tokens, finished, latency)
