"""One prompt's answer from a served model, streamed piece by piece (server-sent events) and
ending in the same Output a whole answer gives: the Playground's runs on an endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from core.errors import PromptLabError
from core.generation.local import Output
from core.generation.streaming import release
from core.prompting.design import RenderedPrompt
from core.served.client import Client, RequestFailed, finish_of


class ServedStream:
    """Iterate for text pieces; afterwards `result` holds the Output. As with the local
    TokenStream, text that could begin a stop string is held back until it is known not to.

    Failures before the answer starts are retried as in a run; one after it has started is
    reported, since what was shown cannot be taken back."""

    def __init__(
        self,
        client: Client,
        prompt: RenderedPrompt,
        *,
        count_tokens: Callable[[str], int] | None = None,
        close_client: bool = False,
    ) -> None:
        self.client, self.prompt = client, prompt
        self.close_client = close_client  # the stream's own client: closed once it ends
        self.count_tokens = count_tokens  # for servers that send no token counts when streaming
        self.result: Output | None = None
        self.counted_here = False  # new_tokens counted with the local tokenizer

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._read()
        finally:
            if self.close_client:
                self.client.close()

    def _read(self) -> Iterator[str]:
        body = self.client.body(self.prompt) | {
            "stream": True,
            "stream_options": {"include_usage": True},  # servers that know it send usage last
        }
        try:
            response, attempts, started = self.client.send(body, stream=True)
        except RequestFailed as exc:
            raise PromptLabError(f"The endpoint did not answer: {exc}") from exc
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            yield self._whole(response, started, attempts)  # a server that does not stream
            return
        state = _Answer(self.client.settings.stop)
        line = ""
        try:
            for line in response.iter_lines():
                yield from state.take(line, chat=self.client.endpoint.api == "chat")
                if state.ended:
                    break
        except httpx.TimeoutException as exc:
            raise PromptLabError(
                f"The endpoint stopped sending for {self.client.endpoint.timeout_s:g} s "
                f"after {len(state.text)} characters of the answer."
            ) from exc
        except httpx.TransportError as exc:
            raise PromptLabError(
                f"The connection to the endpoint broke mid-answer ({type(exc).__name__})."
            ) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PromptLabError(
                f"The endpoint's stream is not OpenAI-style server-sent events: {line[:300]}"
            ) from exc
        finally:
            response.close()
        if state.error:
            raise PromptLabError(f"The endpoint stopped the answer: {state.error}")
        if not state.ended and state.finish_reason is None:
            raise PromptLabError(
                f"The endpoint's stream ended after {len(state.text)} characters, before the "
                "answer did (no finish reason, no [DONE])."
            )
        if state.pending and not state.stopped:
            yield state.pending
        self.result = self._output(state, time.perf_counter() - started, attempts)

    def _whole(self, response: httpx.Response, started: float, attempts: int) -> str:
        try:
            response.read()
            self.result = self.client.read_output(
                self.prompt, response, time.perf_counter() - started, attempts, 0
            )
        except RequestFailed as exc:
            raise PromptLabError(f"The endpoint's answer cannot be read: {exc}") from exc
        finally:
            response.close()
        return self.result.text

    def _output(self, state: _Answer, latency: float, attempts: int) -> Output:
        settings = self.client.settings
        choice = {"finish_reason": state.finish_reason, "stop_reason": state.stop_reason}
        text = state.text
        reason, stop_string = finish_of(choice, text, settings)
        if stop_string is not None and stop_string in text:
            text = text[: text.find(stop_string)]
        new_tokens = state.usage.get("completion_tokens")
        if new_tokens is None and self.count_tokens is not None:
            new_tokens, self.counted_here = self.count_tokens(text), True
        return Output(
            example_id=self.prompt.example_id,
            text=text,
            prompt_tokens=int(state.usage.get("prompt_tokens") or self.prompt.prompt_tokens or 0),
            new_tokens=int(new_tokens or 0),
            finish_reason=reason,
            latency_s=latency,
            stop_string=stop_string,
            batch_size=1,
            attempts=attempts,
        )


class _Answer:
    """What the events so far say: the text, the part held back, and how it ended."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.text = self.pending = ""
        self.finish_reason: str | None = None
        self.stop_reason: Any = None
        self.usage: dict[str, Any] = {}
        self.error = ""
        self.stopped = self.ended = False

    def take(self, line: str, *, chat: bool) -> Iterator[str]:
        """The pieces safe to show from one line of the stream."""
        if not line.startswith("data:"):
            return  # blank lines between events, comments, event names
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.ended = True
            return
        event = json.loads(payload)
        if event.get("error"):
            error = event["error"]
            self.error = error.get("message", str(error)) if isinstance(error, dict) else error
            self.ended = True
            return
        self.usage = event.get("usage") or self.usage
        for choice in event.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            self.stop_reason = choice.get("stop_reason") or self.stop_reason
            if not piece or self.stopped:
                continue
            self.text += piece
            safe, self.stopped = release(self.pending + piece, self.stops)
            self.pending = (self.pending + piece)[len(safe) :]
            if safe:
                yield safe
        if self.stopped:  # the server ignored the stop string: the rest is not wanted
            self.ended = True
