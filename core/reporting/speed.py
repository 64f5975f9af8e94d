"""How fast and on what an experiment generated: its engine as people read it, and its
throughput in new tokens per second."""

from __future__ import annotations

from datetime import datetime


def engine_label(backend: str | None, device: str | None, endpoint: str | None) -> str:
    """The engine as the records say: "transformers (cpu)", "llama.cpp (local), 4 slot(s), …"
    (the engine's own record) or "served: <url> (<model>)"."""
    if backend == "served":
        return f"served: {endpoint or '?'}"
    if backend == "llama.cpp":
        return endpoint or "llama.cpp (local)"
    return f"transformers ({device or '?'})"


def tokens_per_s(new_tokens: float | None, seconds: float | None) -> float | None:
    """New tokens over the seconds they took; None when either is unknown or no time passed."""
    if new_tokens is None or seconds is None or seconds <= 0:
        return None
    return new_tokens / seconds


def seconds_between(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return (finished - started).total_seconds()
