"""The run spec: everything that decides an experiment's outputs, and its stored form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.datasets.data import BUILTIN_NAME
from core.errors import PromptLabError
from core.evaluation.checks import Check, checks_from
from core.evaluation.scoring import RougeOptions
from core.generation.settings import GenerationSettings
from core.models.loading import ModelRequest
from core.prompting.design import PRESETS, PromptDesign
from core.served.endpoint import Endpoint

ENGINES = ("transformers", "llama.cpp")


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides an experiment's outputs."""

    dataset: str = BUILTIN_NAME
    split: str | None = "eval"  # None: every example
    limit: int | None = None  # None: the whole split
    offset: int = 0
    design: PromptDesign = field(default_factory=lambda: PRESETS["instruction"])
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    model: ModelRequest = field(default_factory=ModelRequest)
    rouge: RougeOptions = field(default_factory=RougeOptions.lab)  # as the classic lab scores
    batch_size: int | None = None  # None: chosen for the device
    label: str = ""
    pool_dataset: str | None = None  # None: shots come from `dataset`'s pool
    token_confidence: bool = False  # also store each answer token's probability (a forward pass)
    # None: the local model generates. Otherwise a served endpoint does, and `model` only
    # supplies the tokenizer and chat template that render and fit its prompts.
    endpoint: Endpoint | None = None
    # The saved prompt version (name@N) the design and settings came from; None: typed in.
    # Options applied after it (shots=3) change the design, so the experiment records the
    # version its design is exactly (core.runs.stored.create), named or unnamed.
    prompt: str | None = None
    # What scores its outputs (core.evaluation.metric_set names), and the user's pass/fail
    # checks; they decide no output, so a stored experiment can be scored again with others.
    metrics: tuple[str, ...] = ("rouge",)
    checks: tuple[Check, ...] = ()
    # Who generates, when no endpoint is named: "transformers" (the model loaded here) or
    # "llama.cpp" (llama.cpp's server started here for a GGUF model: core.served.llama_engine).
    engine: str = "transformers"
    slots: int | None = None  # llama.cpp's parallel slots; None: chosen from the machine

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise PromptLabError(
                f"engine must be one of {', '.join(ENGINES)}; got '{self.engine}'."
            )
        if self.engine == "llama.cpp" and self.endpoint is not None:
            raise PromptLabError(
                "Generate with llama.cpp (local) or on a served endpoint, not both."
            )
        if self.slots is not None and (self.engine != "llama.cpp" or not 1 <= self.slots <= 64):
            raise PromptLabError(
                "slots (1 to 64) are llama.cpp (local)'s parallel requests; they need that engine."
            )
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "checks", checks_from(self.checks))
        if not self.metrics and not self.checks:
            raise PromptLabError("Choose at least one metric or check to score the outputs with.")
        if self.limit is not None and self.limit < 1:
            raise PromptLabError(f"limit must be at least 1; got {self.limit}.")
        if self.offset < 0:
            raise PromptLabError(f"offset must be ≥ 0; got {self.offset}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise PromptLabError(f"batch_size must be at least 1; got {self.batch_size}.")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["settings"] = self.settings.to_dict()
        values["design"] = self.design.to_dict()
        values["rouge"]["rouge_types"] = list(self.rouge.rouge_types)
        values["endpoint"] = self.endpoint.to_dict() if self.endpoint else None
        values["metrics"] = list(self.metrics)
        values["checks"] = [check.to_dict() for check in self.checks]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSpec:
        values = dict(values)
        design = values.pop("design")
        endpoint = values.pop("endpoint", None)
        return cls(
            endpoint=Endpoint.from_dict(endpoint) if endpoint else None,
            design=PromptDesign.from_dict(design),
            settings=GenerationSettings.from_dict(values.pop("settings")),
            model=ModelRequest(**values.pop("model")),
            rouge=RougeOptions(**values.pop("rouge")),
            **values,
        )
