"""What a search is and where it stands: its configuration (validated on creation), each
candidate tried with its selection-set score, the best-so-far curve, and its stored form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from core.datasets.data import BUILTIN_NAME
from core.errors import PromptLabError
from core.evaluation import metric_set
from core.library.refs import check_name
from core.runs.spec import ENGINES
from core.search.split import SearchSplit
from storage.schema import SearchRecord

MAX_INSTRUCTIONS = 10
MAX_BUDGET = 500


@dataclass(frozen=True)
class SearchConfig:
    """What a search explores and how long; validated on creation."""

    prompt: str  # the base: a library reference, NAME@V (or NAME, NAME@label)
    metric: str = "chrf"  # a score key: rougeL, bleu, chrf, similarity, bertscore, custom:…
    budget: int | None = 20  # candidate designs scored, the base included; None: minutes only
    minutes: float | None = None  # for the whole search, the final test included
    seed: int = 0  # the split, the random subsets and the order of exploration
    dataset: str = BUILTIN_NAME
    instructions: tuple[str, ...] = ()  # instruction variants the user wrote, tried on the base
    max_shots: int = 3
    test_fraction: float = 0.5  # of the evaluated examples, locked away for the final test
    limit: int | None = None  # evaluated examples used (selection and test); None: all
    engine: str = "transformers"  # or "llama.cpp" (local)
    model: str | None = None  # a model id or local path; None: the embedded default
    save_as: str | None = None  # the library name the winner is saved under; None: the base's

    def __post_init__(self) -> None:
        object.__setattr__(self, "instructions", tuple(self.instructions))
        if self.budget is None and self.minutes is None:
            raise PromptLabError("A search needs a budget: a number of designs, or minutes.")
        if self.budget is not None and not (
            isinstance(self.budget, int) and 1 <= self.budget <= MAX_BUDGET
        ):
            raise PromptLabError(
                f"The budget is 1 to {MAX_BUDGET} designs (the base is one); got {self.budget!r}."
            )
        if self.minutes is not None and not 0 < self.minutes <= 24 * 60:
            raise PromptLabError(
                f"minutes must be more than 0 and at most a day; got {self.minutes}."
            )
        if not isinstance(self.max_shots, int) or not 0 <= self.max_shots <= 16:
            raise PromptLabError(f"max_shots must be 0 to 16; got {self.max_shots!r}.")
        if self.limit is not None and self.limit < 4:
            raise PromptLabError(
                f"limit must be at least 4 (two to select on, two to test); got {self.limit}."
            )
        if self.engine not in ENGINES:
            raise PromptLabError(
                f"engine must be one of {', '.join(ENGINES)}; got '{self.engine}'."
            )
        if len(self.instructions) > MAX_INSTRUCTIONS:
            raise PromptLabError(
                f"At most {MAX_INSTRUCTIONS} instruction variants; got {len(self.instructions)}."
            )
        if any(not isinstance(t, str) or not t.strip() for t in self.instructions):
            raise PromptLabError("An instruction variant is empty; write one, or leave it out.")
        if self.save_as is not None:
            check_name(self.save_as)
        if metric_set.info(self.metric).higher_is_better is None:
            raise PromptLabError(
                f"{metric_set.info(self.metric).label} has no better direction, so a search "
                "cannot maximise it; choose rougeL, bleu, chrf, similarity or bertscore."
            )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["instructions"] = list(self.instructions)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class Candidate:
    """One design tried: its number in the order tried, its experiment, how it was found."""

    number: int
    experiment_id: int
    how: str
    design: dict[str, Any]
    score: float | None = None  # the mean on the selection set; None: unscored or failed
    failed: int = 0  # selection examples it failed on (it cannot win then)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchState:
    id: int
    name: str
    study_id: int | None
    config: SearchConfig
    split: SearchSplit
    status: str
    error: str | None
    candidates: tuple[Candidate, ...]
    result: dict[str, Any] | None
    elapsed_s: float
    created_by: str | None
    created_at: datetime
    higher_is_better: bool = True

    def best(self) -> Candidate | None:
        """The winner on the selection set so far; ties go to the earlier (the base first)."""
        scored = [c for c in self.candidates if c.score is not None and not c.failed]
        if not scored:
            return None
        sign = 1 if self.higher_is_better else -1
        return max(scored, key=lambda c: (sign * c.score, -c.number))

    def curve(self) -> list[tuple[int, float]]:
        """(candidate number, best selection-set score up to it), for the best-so-far chart."""
        points, best = [], None
        sign = 1 if self.higher_is_better else -1
        for c in self.candidates:
            if (
                c.score is not None
                and not c.failed
                and (best is None or sign * c.score > sign * best)
            ):
                best = c.score
            if best is not None:
                points.append((c.number, best))
        return points


def state_of(record: SearchRecord) -> SearchState:
    config = SearchConfig.from_dict(record.config)
    return SearchState(
        id=record.id,
        name=record.name,
        study_id=record.study_id,
        config=config,
        split=SearchSplit.from_dict(record.split),
        status=record.status,
        error=record.error,
        candidates=tuple(Candidate(**c) for c in record.candidates or ()),
        result=record.result,
        elapsed_s=record.elapsed_s or 0.0,
        created_by=record.created_by,
        created_at=record.created_at,
        higher_is_better=metric_set.info(config.metric).higher_is_better is not False,
    )
