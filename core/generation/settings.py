"""Generation settings, named as in Hugging Face `generate`, validated on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from core.errors import PromptLabError

# generate's own defaults, so a setting left alone is not reported as ignored.
SAMPLING_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0}


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128  # a dialogue summary is one or two sentences
    do_sample: bool = False  # greedy by default: reproducible and comparable across prompts
    temperature: float = 1.0
    top_k: int = 50  # 0 turns top-k filtering off, as in generate
    top_p: float = 1.0
    seed: int = 0  # seeds sampling; recorded with every run
    repetition_penalty: float = 1.0
    num_beams: int = 1  # beam search is for greedy decoding only
    no_repeat_ngram_size: int = 0
    min_new_tokens: int = 0
    stop: tuple[str, ...] = ()  # the output is cut before the first of these

    def __post_init__(self) -> None:
        _whole("max_new_tokens", self.max_new_tokens, low=1)
        _whole("min_new_tokens", self.min_new_tokens, low=0)
        if self.min_new_tokens > self.max_new_tokens:
            raise PromptLabError(
                f"min_new_tokens ({self.min_new_tokens}) cannot exceed "
                f"max_new_tokens ({self.max_new_tokens})."
            )
        _whole("top_k", self.top_k, low=0)
        _whole("num_beams", self.num_beams, low=1)
        _whole("no_repeat_ngram_size", self.no_repeat_ngram_size, low=0)
        _whole("seed", self.seed, low=0)
        if not isinstance(self.do_sample, bool):
            raise PromptLabError(f"do_sample must be true or false; got {self.do_sample!r}.")
        _real("temperature", self.temperature)
        if self.do_sample and self.temperature <= 0:
            raise PromptLabError(
                f"temperature must be > 0 when sampling; got {self.temperature}. "
                "For the most likely token every time, use greedy decoding."
            )
        _real("top_p", self.top_p)
        if not 0 < self.top_p <= 1:
            raise PromptLabError(f"top_p must be in (0, 1]; got {self.top_p}.")
        _real("repetition_penalty", self.repetition_penalty)
        if self.repetition_penalty <= 0:
            raise PromptLabError(f"repetition_penalty must be > 0; got {self.repetition_penalty}.")
        if self.do_sample and self.num_beams > 1:
            raise PromptLabError(
                "num_beams > 1 is beam search, which Prompt Lab runs with greedy decoding only; "
                "set num_beams to 1 to sample."
            )
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) and s for s in self.stop):
            raise PromptLabError("stop must be a list of non-empty strings.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GenerationSettings:
        """Build from a plain dict (a stored record, a form); unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PromptLabError(f"Unknown generation setting(s): {', '.join(unknown)}.")
        values = dict(values)
        if "stop" in values:
            values["stop"] = tuple(values["stop"] or ())
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["stop"] = list(self.stop)
        return values

    def with_(self, **changes: Any) -> GenerationSettings:
        return replace(self, **changes)

    def ignored(self) -> list[str]:
        """Settings that this mode does not use although they were changed, as sentences."""
        if self.do_sample:
            return []
        return [
            f"{name}={getattr(self, name)} is ignored: greedy decoding always takes the most "
            "likely token (turn sampling on to use it)."
            for name, default in SAMPLING_DEFAULTS.items()
            if getattr(self, name) != default
        ]

    def generate_kwargs(self) -> dict[str, Any]:
        """What `generate` is given; settings the mode ignores are left out, not passed."""
        kwargs: dict[str, Any] = dict(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            repetition_penalty=self.repetition_penalty,
            num_beams=self.num_beams,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            min_new_tokens=self.min_new_tokens,
        )
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        return kwargs


def _whole(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PromptLabError(f"{name} must be a whole number ≥ {low}; got {value!r}.")


def _real(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PromptLabError(f"{name} must be a number; got {value!r}.")
