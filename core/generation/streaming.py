"""Streaming one prompt's answer piece by piece, ending in the same Output a batch would give."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from core.errors import PromptLabError
from core.generation.local import (
    FinishRecorder,
    Output,
    finish_output,
    generate_lock,
    generation_config,
)
from core.generation.settings import GenerationSettings
from core.models.loading import LoadedModel
from core.prompting.design import RenderedPrompt


class TokenStream:
    """Iterate for text pieces; afterwards `result` holds the Output.

    Text that could be the start of a stop string is held back until it is known not to be,
    so what is shown never includes a stop string. `stop()` ends generation at the next token;
    `close()` (also run when the reader stops reading) waits until the model is free again.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prompt: RenderedPrompt,
        settings: GenerationSettings,
        *,
        timeout_s: float = 120.0,
    ) -> None:
        self.loaded, self.prompt, self.settings = loaded, prompt, settings
        self.result: Output | None = None
        self.counted_here = False  # as in ServedStream; the generated ids are counted, not text
        self._error: BaseException | None = None
        self._streamer = TextIteratorStreamer(
            loaded.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout_s
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        # Set once this stream holds the model; waiting for another run's batch is not a hang.
        self._generating = threading.Event()
        self.stop_requested = threading.Event()  # set by stop(); read by generate at each token
        self._on_stop = _OnEvent(self.stop_requested)

    def stop(self) -> None:
        """End generation at the next token (or before it starts); safe from any thread."""
        self.stop_requested.set()

    def close(self) -> None:
        """Stop if still generating, and wait until the model is free for other runs."""
        if self._thread.is_alive():
            self.stop()
            self._thread.join()

    @property
    def stopped(self) -> bool:
        """Whether generation was cut short by stop() rather than ending by itself."""
        return self._on_stop.fired

    def __iter__(self) -> Iterator[str]:
        self._thread.start()
        try:
            yield from self._pieces()
        finally:  # also when the reader stops early (a rerun, or leaving the page)
            self.close()

    def _pieces(self) -> Iterator[str]:
        while not self._generating.wait(0.2) and self._thread.is_alive():
            pass  # another run's batch holds the model; the timeout starts when ours begins
        shown, pending = "", ""
        try:
            for piece in self._streamer:
                pending += piece
                safe, stopped = release(pending, self.settings.stop)
                if safe:
                    yield safe
                    shown += safe
                pending = pending[len(safe) :]
                if stopped:
                    break
        except Exception as exc:  # the queue timed out: generation hung or died
            if self._error is None:
                self._error = exc
        self._thread.join()
        if self._error is not None:
            raise _as_user_error(self._error, self.loaded) from self._error
        if self.result is not None and self.result.text.startswith(shown):
            rest = self.result.text[len(shown) :]
            if rest:
                yield rest

    def _run(self) -> None:
        loaded, settings = self.loaded, self.settings
        try:
            ids = loaded.tokenizer(
                self.prompt.sent_text,
                add_special_tokens=self.prompt.add_special_tokens,
                return_tensors="pt",
            ).to(loaded.device)
            prompt_len = ids["input_ids"].shape[1] if loaded.kind == "causal" else 1
            recorder = FinishRecorder(loaded, settings, prompt_len)
            if not self._acquire_model():  # stopped while another run's batch held the model
                self._on_stop.fired = True
                self._streamer.end()
                return
            try:
                with torch.inference_mode():
                    self._generating.set()
                    if settings.do_sample:
                        torch.manual_seed(settings.seed)
                    recorder.start()
                    sequences = loaded.model.generate(
                        **ids,
                        generation_config=generation_config(loaded, settings),
                        stopping_criteria=StoppingCriteriaList([recorder, self._on_stop]),
                        streamer=self._streamer,
                    )
            finally:
                generate_lock.release()
            elapsed = time.perf_counter() - recorder.started
            new = sequences[0, prompt_len:].tolist()
            self.result = Output(
                example_id=self.prompt.example_id,
                prompt_tokens=ids["input_ids"].shape[1],
                **finish_output(loaded, settings, new, recorder.finished.get(0), elapsed),
            )
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._error = exc
            self._streamer.end()

    def _acquire_model(self) -> bool:
        """Take the generation lock, unless stop() comes first while another run holds it."""
        while not generate_lock.acquire(timeout=0.1):
            if self.stop_requested.is_set():
                return False
        return True


class _OnEvent(StoppingCriteria):
    """Ends every row once its event is set: Stop, or the reader gone."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.fired = False

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.fired = self.fired or self.event.is_set()
        return torch.full(
            (input_ids.shape[0],), self.fired, dtype=torch.bool, device=input_ids.device
        )


def release(pending: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """The part of `pending` that is safe to show, and whether a stop string was reached."""
    if not stops:
        return pending, False
    hits = [pending.find(s) for s in stops if s in pending]
    if hits:
        return pending[: min(hits)], True
    hold = 0
    for stop in stops:  # the longest tail of pending that begins some stop string
        for k in range(min(len(stop) - 1, len(pending)), 0, -1):
            if pending.endswith(stop[:k]):
                hold = max(hold, k)
                break
    return pending[: len(pending) - hold], False


def _as_user_error(exc: BaseException, loaded: LoadedModel) -> PromptLabError:
    if isinstance(exc, PromptLabError):
        return exc
    if isinstance(exc, torch.OutOfMemoryError):
        return PromptLabError(
            f"Out of {loaded.device} memory while generating: lower max_new_tokens, use fewer "
            "shots, or load the model with a smaller dtype or on the CPU."
        )
    return PromptLabError(f"Generation failed: {exc}")
