"""Requests to a served model: one prompt per request, up to C in flight, retries with
backoff on 429, 5xx, timeouts and dropped connections, and an error budget per run."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import httpx

from core.errors import PromptLabError
from core.generation.local import Output
from core.generation.settings import GenerationSettings
from core.prompting.design import RenderedPrompt
from core.served.endpoint import Endpoint, Mapping

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_WAIT_S = 30.0  # the longest pause between two attempts, Retry-After included
POLL_S = 0.25  # how often a run looks for a stop while its requests are in flight


class RequestFailed(Exception):
    """A request that failed for good, with how many attempts it took."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class RequestCancelled(RequestFailed):
    """A request given up because the run stopped: its example is left to do, not failed."""


class BudgetExceeded(PromptLabError):
    """More examples failed than the run's error budget allows."""


@dataclass(frozen=True)
class Failure:
    example_id: str | None
    error: str
    attempts: int


class Client:
    """One endpoint's HTTP client, shared by the threads of a run."""

    def __init__(
        self,
        endpoint: Endpoint,
        settings: GenerationSettings,
        mapping: Mapping,
        *,
        transport: httpx.BaseTransport | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.mapping = mapping
        self.stopped = threading.Event()  # set when a run stops: no more retries
        # Waits between attempts; True when the run stopped meanwhile.
        self.wait = wait or self.stopped.wait
        self.http = httpx.Client(
            headers={"Content-Type": "application/json", **endpoint.auth_headers()},
            timeout=httpx.Timeout(endpoint.timeout_s, connect=min(10.0, endpoint.timeout_s)),
            limits=httpx.Limits(max_connections=endpoint.concurrency),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def body(self, prompt: RenderedPrompt) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.endpoint.model, **self.mapping.params}
        if self.endpoint.api == "chat":  # the messages the chat template was given
            body["messages"] = prompt.messages
        else:
            body["prompt"] = prompt.sent_text
        return body

    def complete(self, prompt: RenderedPrompt, index: int = 0) -> Output:
        """One answer, retrying what can be retried; RequestFailed when it cannot be had."""
        response, attempts, started = self.send(self.body(prompt))
        return self.read_output(prompt, response, time.perf_counter() - started, attempts, index)

    def send(
        self, body: dict[str, Any], *, stream: bool = False
    ) -> tuple[httpx.Response, int, float]:
        """(the first 200 answer, attempts made, when that attempt started), retrying what can
        be retried; RequestFailed otherwise. A streamed answer is open: close it after reading."""
        attempts = 0
        while True:
            attempts += 1
            started = time.perf_counter()
            request = self.http.build_request("POST", self.endpoint.url, json=body)
            try:
                response = self.http.send(request, stream=stream)
            except httpx.TimeoutException:
                problem, wait_s = f"no answer within {self.endpoint.timeout_s:g} s", None
            except httpx.TransportError as exc:
                problem, wait_s = f"connection failed ({type(exc).__name__}: {exc})", None
            else:
                if response.status_code == 200:
                    return response, attempts, started
                if stream:
                    response.read()
                    response.close()
                problem = f"HTTP {response.status_code}: {_excerpt(response)}"
                if response.status_code not in RETRY_STATUSES:
                    raise RequestFailed(_explain(response.status_code, problem), attempts)
                wait_s = _retry_after(response)
            if attempts > self.endpoint.max_retries:
                raise RequestFailed(f"{problem} (after {attempts} attempts)", attempts)
            pause = self._backoff(attempts) if wait_s is None else min(wait_s, MAX_WAIT_S)
            if self.wait(pause) or self.stopped.is_set():
                raise RequestCancelled(f"{problem}; the run stopped before a retry", attempts)

    def _backoff(self, attempt: int) -> float:
        base = self.endpoint.backoff_s * 2 ** (attempt - 1)
        return min(MAX_WAIT_S, base * random.uniform(0.5, 1.5))

    def read_output(
        self,
        prompt: RenderedPrompt,
        response: httpx.Response,
        latency: float,
        attempts: int,
        index: int,
    ) -> Output:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.endpoint.api == "chat" else choice["text"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RequestFailed(
                f"the server's answer is not an OpenAI-style completion: {_excerpt(response)}",
                attempts,
            ) from exc
        text = text or ""
        reason, stop_string = finish_of(choice, text, self.settings)
        if stop_string is not None and stop_string in text:
            text = text[: text.find(stop_string)]
        return Output(
            example_id=prompt.example_id,
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or prompt.prompt_tokens or 0),
            new_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=reason,
            latency_s=latency,
            stop_string=stop_string,
            batch_size=1,
            batch_index=index,
            attempts=attempts,
        )


def finish_of(choice: dict[str, Any], text: str, settings: GenerationSettings):
    """(finish reason, stop string): 'length' at max_tokens; a stop string when the server says
    which one (vLLM's stop_reason) or when it is still in the text; otherwise 'eos'."""
    cut = [(text.find(s), s) for s in settings.stop if s in text]
    if cut:
        return "stop", min(cut)[1]
    if choice.get("finish_reason") == "length":
        return "length", None
    stop_reason = choice.get("stop_reason")
    if isinstance(stop_reason, str) and stop_reason in settings.stop:
        return "stop", stop_reason
    return "eos", None


def run_concurrently(
    client: Client,
    prompts: Sequence[RenderedPrompt],
    *,
    error_budget: int,
    should_stop: Callable[[], bool] | None = None,
    on_idle: Callable[[], None] | None = None,
) -> Iterator[tuple[int, Output | Failure]]:
    """(index into `prompts`, its output or failure) as each request ends, with at most
    `concurrency` in flight. New requests stop once should_stop() is true or more than
    `error_budget` have failed; the requests in flight are still collected (but one waiting to
    be retried is dropped, left for a later resume), and then BudgetExceeded is raised for a
    blown budget. `on_idle` is called every POLL_S that passes with no request ending."""
    failures, last_error = 0, ""
    pending: dict[Future, int] = {}
    queue = iter(range(len(prompts)))
    with ThreadPoolExecutor(max_workers=client.endpoint.concurrency) as pool:

        def submit() -> None:
            for i in queue:
                pending[pool.submit(client.complete, prompts[i], i)] = i
                if len(pending) >= client.endpoint.concurrency:
                    return

        submit()
        while pending:
            # A timeout too, so that a stop reaches requests waiting to retry within POLL_S.
            done, _ = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            if not done and on_idle is not None:
                on_idle()
            finished: list[tuple[int, Output | Failure]] = []
            for future in done:
                i = pending.pop(future)
                try:
                    finished.append((i, future.result()))
                except RequestCancelled:
                    continue  # neither answered nor failed: resuming the run will send it
                except RequestFailed as exc:
                    failures += 1
                    last_error = str(exc)
                    finished.append((i, Failure(prompts[i].example_id, str(exc), exc.attempts)))
            stopping = failures > error_budget or (should_stop is not None and should_stop())
            if stopping:
                client.stopped.set()
            elif done:
                submit()  # before the caller stores these: the server is never left idle
            yield from finished
    if failures > error_budget:
        raise BudgetExceeded(
            f"{failures} request(s) failed, more than the error budget of {error_budget}; "
            f"the run stopped. Last error: {last_error}"
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] + ("…" if len(text) > 300 else "") or "(empty body)"


def _explain(status: int, problem: str) -> str:
    hints = {
        401: "the server wants an API key: name the environment variable that holds it",
        403: "the API key was refused",
        404: "check the base URL (it usually ends in /v1) and the model name",
    }
    return f"{problem} — {hints[status]}" if status in hints else problem
