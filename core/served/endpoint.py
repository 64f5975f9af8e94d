"""A served model behind an OpenAI-compatible endpoint (vLLM, Text Generation Inference,
llama.cpp's server, Ollama): where it is, how Prompt Lab's settings map onto its parameters,
and which settings it cannot honour.

The API key is read from an environment variable named in the endpoint; only that name is
ever stored. Which variables and hosts may be named is the operator's (core/policy.py), checked
again before every request, so that a stored endpoint obeys the policy of today."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from core import policy
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings

Api = Literal["completions", "chat"]
Server = Literal["vllm", "llama.cpp", "openai"]
APIS: tuple[Api, ...] = ("completions", "chat")
SERVERS: dict[Server, str] = {
    "vllm": "vLLM (or another server taking top_k, repetition_penalty, min_tokens)",
    "llama.cpp": "llama.cpp server / llama-cpp-python (top_k, repeat_penalty, min_tokens)",
    "openai": "OpenAI API only (no extra parameters)",
}
OPENAI_MAX_STOPS = 4  # the OpenAI API takes at most four stop strings
LLAMA_CPP_REPEAT_WINDOW = 64  # llama.cpp's repeat_last_n default
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY_VARIABLES = policy.VARIABLES["key_variables"]
ENDPOINT_HOSTS = policy.VARIABLES["endpoint_hosts"]


@dataclass(frozen=True)
class Endpoint:
    """Where a served model is and how to talk to it; stored with each experiment it runs."""

    base_url: str  # e.g. http://gpu-node:8000/v1 (the part before /completions)
    model: str  # the name the server knows the model by
    api: Api = "completions"  # completions: the prompt exactly as rendered; chat: messages
    server: Server = "vllm"  # which parameters beyond the OpenAI API it accepts
    api_key_env: str = ""  # the NAME of the environment variable that holds the key
    concurrency: int = 4  # requests in flight at once
    timeout_s: float = 120.0  # per request
    max_retries: int = 4  # after a 429, a 5xx, a timeout or a dropped connection
    backoff_s: float = 1.0  # first wait before a retry; doubles each time, with jitter
    error_budget: float = 0.1  # fraction of a run's examples that may fail before it stops

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PromptLabError(
                f"The endpoint URL must start with http:// or https:// and name a host, e.g. "
                f"http://localhost:8000/v1; got '{self.base_url}'."
            )
        if parts.username or parts.password:
            raise PromptLabError(
                "Put no credentials in the endpoint URL: it is stored with every experiment. "
                "Give the name of an environment variable that holds the API key instead."
            )
        if not self.model.strip():
            raise PromptLabError("Name the model the server serves (its 'model' parameter).")
        if self.api not in APIS:
            raise PromptLabError(f"api must be one of {', '.join(APIS)}; got '{self.api}'.")
        if self.server not in SERVERS:
            raise PromptLabError(
                f"server must be one of {', '.join(SERVERS)}; got '{self.server}'."
            )
        if self.api_key_env and not _ENV_NAME.fullmatch(self.api_key_env):
            raise PromptLabError(
                "The API key setting takes the NAME of an environment variable (e.g. "
                f"{policy.KEY_PREFIX}VLLM), not the key itself, so that the key is never stored."
            )
        _whole("concurrency", self.concurrency, 1, 256)
        _whole("max_retries", self.max_retries, 0, 20)
        _number("timeout_s", self.timeout_s, low=0.1)
        _number("backoff_s", self.backoff_s, low=0.0)
        _number("error_budget", self.error_budget, low=0.0, high=1.0)

    @property
    def url(self) -> str:
        path = "chat/completions" if self.api == "chat" else "completions"
        return f"{self.base_url.strip().rstrip('/')}/{path}"

    def label(self) -> str:
        """What an experiment records as its endpoint."""
        return f"{self.base_url.strip().rstrip('/')} ({self.model})"

    def check_policy(self) -> None:
        """Refuse a host or a key variable that the operator's policy does not allow now."""
        rules = policy.current()
        host = (urlsplit(self.base_url.strip()).hostname or "").lower()
        if rules.endpoint_hosts and host not in rules.endpoint_hosts:
            raise PromptLabError(
                f"The endpoint host '{host}' is not one the operator allows: served endpoints "
                f"may name only the hosts listed in {ENDPOINT_HOSTS} "
                f"({', '.join(rules.endpoint_hosts)})."
            )
        self._check_key_variable(rules)

    def _check_key_variable(self, rules: policy.Policy) -> None:
        # Only the name is judged: whether such a variable is set, or holds what, is not told.
        name = self.api_key_env
        if name and not (name.startswith(policy.KEY_PREFIX) or name in rules.key_variables):
            raise PromptLabError(
                f"Prompt Lab reads API keys only from environment variables whose names start "
                f"with {policy.KEY_PREFIX} (e.g. {policy.KEY_PREFIX}VLLM) or that the operator "
                f"lists in {KEY_VARIABLES}; '{name}' is neither."
            )

    def api_key(self) -> str | None:
        """The key from the environment, or None when no variable is named."""
        if not self.api_key_env:
            return None
        self._check_key_variable(policy.current())
        key = os.environ.get(self.api_key_env)
        if not key:
            raise PromptLabError(
                f"The environment variable {self.api_key_env} holds no API key: set it in the "
                "shell that starts Prompt Lab, or clear the API key setting."
            )
        return key

    def auth_headers(self) -> dict[str, str]:
        """The headers of every request; asking for them checks the policy first."""
        self.check_policy()
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Endpoint:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise PromptLabError(f"Unknown endpoint setting(s): {', '.join(unknown)}.")
        return cls(**values)


@dataclass(frozen=True)
class Mapping:
    """The request parameters for a settings object, and what could not be sent as asked."""

    params: dict[str, Any]
    refused: tuple[str, ...]  # settings the endpoint cannot honour: the run is not started
    approximate: tuple[str, ...]  # honoured differently than by the local backend

    def notes(self) -> list[str]:
        return [*self.refused, *self.approximate]


def map_settings(settings: GenerationSettings, endpoint: Endpoint) -> Mapping:
    """Every setting is sent explicitly, so a server's own defaults (llama.cpp's top_k=40 and
    min_p=0.05, vLLM's model generation_config) never leak in."""
    server = endpoint.server
    extra = server != "openai"
    params: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "seed": settings.seed}
    refused: list[str] = []
    approximate: list[str] = []
    if settings.do_sample:
        params.update(temperature=settings.temperature, top_p=settings.top_p)
        if extra:
            params["top_k"] = settings.top_k if settings.top_k else (-1 if server == "vllm" else 0)
        elif settings.top_k:
            refused.append(
                f"top_k={settings.top_k}: an OpenAI-only endpoint has no top_k. Set top_k to 0 "
                "(off) to sample from the whole distribution, or choose the vLLM or llama.cpp "
                "server type if the server takes it."
            )
    else:
        params.update(temperature=0.0, top_p=1.0)  # temperature 0 is greedy on these servers
        if extra:
            params["top_k"] = -1 if server == "vllm" else 0
    if extra:
        params["min_p"] = 0.0
        if server == "vllm":
            params["repetition_penalty"] = settings.repetition_penalty
        else:
            params["repeat_penalty"] = settings.repetition_penalty
            # llama.cpp's prompt cache reuses a slot's earlier computation, which changed the
            # answer to a second identical request: an experiment must repeat itself, so
            # reproducibility wins over prefill speed and the cache is always off.
            params["cache_prompt"] = False
            if settings.repetition_penalty != 1.0:
                approximate.append(
                    f"repetition_penalty={settings.repetition_penalty} is sent as llama.cpp's "
                    f"repeat_penalty, which looks at the last {LLAMA_CPP_REPEAT_WINDOW} tokens "
                    "only, not the whole prompt and answer."
                )
    elif settings.repetition_penalty != 1.0:
        refused.append(
            f"repetition_penalty={settings.repetition_penalty}: an OpenAI-only endpoint has no "
            "repetition penalty (its frequency/presence penalties work differently)."
        )
    if settings.min_new_tokens:
        if server in ("vllm", "llama.cpp"):
            params["min_tokens"] = settings.min_new_tokens
            if server == "llama.cpp":
                approximate.append(
                    f"min_new_tokens={settings.min_new_tokens} is sent as min_tokens, which "
                    "llama-cpp-python's server honours and llama.cpp's own server ignores."
                )
        else:
            refused.append(
                f"min_new_tokens={settings.min_new_tokens}: an OpenAI-only endpoint has no "
                "minimum answer length; set it to 0."
            )
    if settings.num_beams > 1:
        refused.append(
            f"num_beams={settings.num_beams}: completions endpoints do not run beam search; "
            "set num_beams to 1."
        )
    if settings.no_repeat_ngram_size:
        refused.append(
            f"no_repeat_ngram_size={settings.no_repeat_ngram_size}: served endpoints have no "
            "n-gram blocking; set it to 0."
        )
    if settings.stop:
        params["stop"] = list(settings.stop)
        if server == "openai" and len(settings.stop) > OPENAI_MAX_STOPS:
            params["stop"] = list(settings.stop[:OPENAI_MAX_STOPS])
            approximate.append(
                f"Only the first {OPENAI_MAX_STOPS} stop strings go to an OpenAI-only endpoint; "
                "the others cut the answer here, so its token count includes text after them."
            )
    return Mapping(params, tuple(refused), tuple(approximate))


def problems(
    settings: GenerationSettings,
    endpoint: Endpoint,
    *,
    use_chat_template: bool,
    token_confidence: bool = False,
) -> tuple[list[str], list[str]]:
    """(what the endpoint cannot do as asked, what it does differently) for a run."""
    mapping = map_settings(settings, endpoint)
    refused = list(mapping.refused)
    if endpoint.api == "chat" and not use_chat_template:
        refused.append(
            "The chat API always applies the server's chat template: turn the chat template "
            "on, or use the completions API to send the prompt as written."
        )
    if token_confidence:
        refused.append(
            "Per-token confidence needs the model's probabilities, which only the local "
            "backend computes: turn it off for a served run."
        )
    return refused, list(mapping.approximate)


def check_run(
    settings: GenerationSettings,
    endpoint: Endpoint,
    *,
    use_chat_template: bool,
    token_confidence: bool = False,
    who: str | None = None,
) -> Mapping:
    """The mapping for a run, refusing (with every reason at once) what the endpoint (named
    `who`, else by its address) cannot do."""
    refused, _ = problems(
        settings, endpoint, use_chat_template=use_chat_template, token_confidence=token_confidence
    )
    if refused:
        raise PromptLabError(
            f"{who or endpoint.label()} cannot run these settings as asked:\n- "
            + "\n- ".join(refused)
        )
    return map_settings(settings, endpoint)


def _whole(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PromptLabError(f"{name} must be a whole number from {low} to {high}; got {value!r}.")


def _number(name: str, value: object, *, low: float, high: float | None = None) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"≥ {low}"
        raise PromptLabError(f"{name} must be a number {bound}; got {value!r}.")


def probe(endpoint: Endpoint, *, timeout_s: float = 10.0) -> list[str]:
    """Ask the server which models it serves (GET /models) before anything is stored, so a
    wrong URL, key or model name is reported at once; returns the names it listed."""
    import httpx

    url = f"{endpoint.base_url.strip().rstrip('/')}/models"
    try:
        response = httpx.get(url, headers=endpoint.auth_headers(), timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise PromptLabError(
            f"Cannot reach the endpoint {endpoint.base_url} ({type(exc).__name__}): is the "
            "server running, and is the URL right (it usually ends in /v1)?"
        ) from exc
    if response.status_code in (401, 403):
        raise PromptLabError(
            f"{endpoint.base_url} refused the request (HTTP {response.status_code}): "
            + (
                f"check the key in {endpoint.api_key_env}."
                if endpoint.api_key_env
                else "it wants an API key; name the environment variable that holds it."
            )
        )
    if response.status_code != 200:
        return []  # some servers have no model list; the first request will tell
    try:
        names = [str(item["id"]) for item in response.json().get("data", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    if names and endpoint.model not in names:
        raise PromptLabError(
            f"{endpoint.base_url} does not serve '{endpoint.model}'; it serves: "
            + ", ".join(names[:20])
        )
    return names
