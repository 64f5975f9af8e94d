"""Sweeps: one base run spec and lists of values to vary, expanded to one experiment per
combination, grouped as a study and evaluated on the same examples."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.library import versions
from core.policy import Actor, local_actor
from core.prompting.design import PromptDesign
from core.runs import experiments
from core.runs.experiments import RunSpec
from core.served.endpoint import Endpoint
from storage import queries
from storage.db import session_scope

# A sweep dimension: which part of the spec it changes, and the name there.
DIMENSIONS: dict[str, tuple[str, str]] = {
    "prompt": ("prompt", "prompt"),  # saved prompt versions: name@2, name@best (see PromptChoice)
    "variant": ("variant", "variant"),  # whole designs with their settings (see VariantChoice)
    "shots": ("design", "shots"),
    "selection": ("design", "selection"),  # first, random, ids, similar or mmr
    "selection_seed": ("design", "selection_seed"),
    "mmr_lambda": ("design", "mmr_lambda"),
    "shot_order": ("design", "shot_order"),  # given, reversed or similar_last
    "shot_format": ("design", "shot_format"),  # inline or turns
    "instruction_role": ("design", "instruction_role"),  # user or system (with turns)
    "instruction": ("design", "instruction"),
    "example_format": ("design", "example_format"),
    "use_chat_template": ("design", "use_chat_template"),
    "temperature": ("settings", "temperature"),  # 0 means greedy decoding
    "top_k": ("settings", "top_k"),
    "top_p": ("settings", "top_p"),
    "max_new_tokens": ("settings", "max_new_tokens"),
    "repetition_penalty": ("settings", "repetition_penalty"),
    "seed": ("settings", "seed"),
    "model": ("model", "model_id"),
}

# What can be typed as a list of values (a variant is made in the Playground, not typed).
TYPED_DIMENSIONS = tuple(key for key in DIMENSIONS if key != "variant")


@dataclass(frozen=True)
class PromptChoice:
    """A saved prompt version as a sweep value: its exact ref and what it holds."""

    ref: str  # name@N, whatever label or latest it was asked for by
    design: PromptDesign
    settings: GenerationSettings | None

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True)
class VariantChoice:
    """A whole variant as a sweep value, e.g. a column of the Playground: its name, design and
    settings, and the saved version it started from, if any."""

    name: str
    design: PromptDesign
    settings: GenerationSettings
    prompt: str | None = None  # name@N, recorded while the design is still that version's
    endpoint: Endpoint | None = None  # where it generates; None: the local model

    def __str__(self) -> str:
        return self.name


def as_typed_lists(choices: Sequence[VariantChoice]) -> dict[str, str]:
    """The variants as typed sweep values (dimension -> "v1, v2"), when everything in which they
    differ is a dimension that can be typed; PromptLabError naming what is not. A sweep runs
    every combination of those values, which may be more experiments than there are variants."""
    designs = [c.design.to_dict() for c in choices]
    settings = [c.settings.to_dict() for c in choices]
    lists: dict[str, list[Any]] = {}
    cannot = []
    for part, rows in (("design", designs), ("settings", settings)):
        for name in rows[0]:
            values = [row.get(name) for row in rows]
            if len({repr(v) for v in values}) == 1:
                continue
            if part == "settings" and name in ("do_sample", "temperature"):
                temperature = [
                    row["temperature"] if row["do_sample"] else 0 for row in settings
                ]  # a temperature of 0 is greedy, as a sweep takes it
                lists["temperature"] = temperature
            elif DIMENSIONS.get(name) == (part, name) and name in TYPED_DIMENSIONS:
                lists[name] = values
            else:
                cannot.append(name)
    texts = {k: [str(v) for v in dict.fromkeys(values)] for k, values in lists.items()}
    cannot += [k for k, values in texts.items() if any("," in v for v in values)]
    if cannot:
        raise PromptLabError(
            f"The variants differ in {', '.join(dict.fromkeys(cannot))}, which a sweep typed in "
            "the Experiments form cannot vary (or whose values hold commas); open the study in "
            "Compare instead."
        )
    return {k: ", ".join(values) for k, values in texts.items()}


def resolve_prompts(refs: Sequence[str], *, db_url: str | None = None) -> tuple[PromptChoice, ...]:
    """Each reference (name, name@3, name@best) read from the library, as sweep values."""
    chosen = []
    for ref in refs:
        version = versions.get_version(ref, db_url=db_url)
        chosen.append(PromptChoice(version.ref, version.design, version.settings))
    return tuple(chosen)


@dataclass(frozen=True)
class Sweep:
    base: RunSpec
    variations: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variations) - set(DIMENSIONS))
        if unknown:
            raise PromptLabError(
                f"Cannot sweep over {', '.join(unknown)}; choose from {', '.join(DIMENSIONS)}."
            )
        for key, values in self.variations.items():
            if not values:
                raise PromptLabError(f"The sweep over {key} lists no values.")
            if len(set(map(repr, values))) != len(values):
                raise PromptLabError(f"The sweep over {key} lists a value twice: {list(values)}.")

    def expand(self) -> list[RunSpec]:
        """One spec per combination, in order, each labelled with what it changes."""
        # A variant or a prompt version sets the whole design first; the others change it after.
        keys = sorted(self.variations, key=lambda k: k not in ("variant", "prompt"))
        specs = []
        for combo in itertools.product(*(self.variations[k] for k in keys)):
            spec = self.base
            for key, value in zip(keys, combo, strict=True):
                spec = vary(spec, key, value)
            label = ", ".join(_named(k, v) for k, v in zip(keys, combo, strict=True))
            specs.append(replace(spec, label=label or self.base.label))
        return specs


def vary(spec: RunSpec, key: str, value: Any) -> RunSpec:
    """`spec` with one dimension set; every change is validated by the part it lands in."""
    part, name = DIMENSIONS[key]
    if key == "prompt":
        if not isinstance(value, PromptChoice):
            raise PromptLabError("A prompt to sweep over must be read from the library first.")
        settings = value.settings or spec.settings
        return replace(spec, design=value.design, settings=settings, prompt=value.ref)
    if key == "variant":
        if not isinstance(value, VariantChoice):
            raise PromptLabError("A variant to sweep over needs its design and settings.")
        return replace(
            spec,
            design=value.design,
            settings=value.settings,
            prompt=value.prompt,
            endpoint=value.endpoint,
        )
    if key == "temperature":
        if value == 0:  # a temperature of 0 is how people write "greedy"
            return replace(spec, settings=spec.settings.with_(do_sample=False, temperature=1.0))
        settings = spec.settings.with_(do_sample=True, temperature=float(value), num_beams=1)
        return replace(spec, settings=settings)
    if key == "shots" and spec.design.selection == "ids":
        raise PromptLabError(
            "Sweeping shots needs first, random, similar or mmr selection, not chosen ids."
        )
    if part == "design":
        return replace(spec, design=spec.design.with_(**{name: value}))
    if part == "settings":
        return replace(spec, settings=spec.settings.with_(**{name: value}))
    return replace(spec, model=replace(spec.model, model_id=str(value)))


def _named(key: str, value: Any) -> str:
    """How a sweep value names its experiment: a variant by its own name, the rest key=value."""
    return str(value) if key == "variant" else f"{key}={_show(key, value)}"


def _show(key: str, value: Any) -> str:
    if key == "temperature" and value == 0:
        return "0 (greedy)"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "…"


def run_sweep(
    sweep: Sweep,
    *,
    db_url: str | None = None,
    on_experiment: Callable[[int, int, RunSpec], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    actor: Actor | None = None,
) -> tuple[int, list[int]]:
    """Create the study and all its experiments, then run them in turn; a stop leaves the rest
    pending, to resume later. Returns (study, experiments)."""
    specs = sweep.expand()
    study_id, ids = create_sweep(sweep, db_url=db_url, actor=actor)
    for number, (experiment_id, spec) in enumerate(zip(ids, specs, strict=True), start=1):
        if on_experiment:
            on_experiment(number, experiment_id, spec)
        status = experiments.execute(
            experiment_id, db_url=db_url, on_progress=on_progress, should_stop=should_stop
        )
        if status != "completed":
            break
    return study_id, ids


def create_sweep(
    sweep: Sweep,
    *,
    db_url: str | None = None,
    actor: Actor | None = None,
    origin: str = "experiment",  # or "playground": variants tried there on a few examples
    example_keys: Sequence[str] | None = None,  # None: the base spec's slice of its dataset
) -> tuple[int, list[int]]:
    """The study and all its experiments, pending, up front and on one set of examples;
    `actor`'s (None: the local user's)."""
    specs = sweep.expand()
    keys = list(example_keys or ())
    if example_keys is None:
        dataset = experiments.get_dataset(sweep.base.dataset, db_url=db_url)
        keys = [ex.id for ex in experiments.examples_for(sweep.base, dataset)[0]]
    with session_scope(db_url) as session:
        study_id = queries.create_study(
            session=session,
            name=sweep.name or _default_name(sweep),
            base_spec=sweep.base.to_dict(),
            variations={k: [_stored(x) for x in v] for k, v in sweep.variations.items()},
            created_by=(actor or local_actor()).name,
        )
    ids = [
        experiments.create(
            spec, db_url=db_url, study_id=study_id, example_keys=keys, actor=actor, origin=origin
        )
        for spec in specs
    ]
    return study_id, ids


def _stored(value: Any) -> Any:
    """A sweep value as the study keeps it: a version by its ref, a variant by its name (each
    experiment's spec holds the whole design)."""
    return str(value) if isinstance(value, PromptChoice | VariantChoice) else value


def _default_name(sweep: Sweep) -> str:
    dims = " × ".join(sweep.variations) or "single run"
    return f"{sweep.base.dataset}: {dims}"


def parse_values(key: str, text: str, *, db_url: str | None = None) -> tuple[Any, ...]:
    """Values from a comma-separated list, typed for the dimension ('0,1,3' → (0, 1, 3));
    prompt references are read from the library in `db_url`."""
    if key not in TYPED_DIMENSIONS:
        raise PromptLabError(
            f"Cannot sweep over {key} by typing values; choose from {', '.join(TYPED_DIMENSIONS)}."
        )
    raw = [part.strip() for part in text.split(",") if part.strip()]
    if not raw:
        raise PromptLabError(f"No values given for {key}.")
    if key == "prompt":
        return resolve_prompts(raw, db_url=db_url)
    kind = _kinds().get(key, str)
    try:
        return tuple(kind(v) for v in raw)
    except ValueError as exc:
        raise PromptLabError(f"{key} takes {kind.__name__} values; got '{text}'.") from exc


def _kinds() -> dict[str, Callable[[str], Any]]:
    whole = ("shots", "selection_seed", "top_k", "max_new_tokens", "seed")
    real = ("temperature", "top_p", "repetition_penalty", "mmr_lambda")
    kinds: dict[str, Callable[[str], Any]] = {k: int for k in whole}
    kinds.update({k: float for k in real})
    kinds["use_chat_template"] = _boolean
    return kinds


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def sweep_from_lists(
    base: RunSpec,
    lists: Sequence[tuple[str, str]],
    name: str = "",
    *,
    db_url: str | None = None,
) -> Sweep:
    """A sweep from (dimension, 'v1,v2,…') pairs, as typed on a command line or in a form."""
    variations = {key: parse_values(key, text, db_url=db_url) for key, text in lists}
    return Sweep(base, variations, name)
