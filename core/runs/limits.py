"""What the operator's policy (core/policy.py) asks of a run before anything of it is stored or
started: no model code unless allowed, an allowed endpoint, and no more examples than the limit."""

from __future__ import annotations

from core import policy
from core.errors import PromptLabError
from core.models import access as model_access
from core.runs.spec import RunSpec

MAX_EXAMPLES = policy.VARIABLES["max_examples_per_run"]


def check_spec(spec: RunSpec, n_examples: int | None = None) -> None:
    """Refuse a run the policy does not allow now, a stored spec run again included;
    `n_examples` None: not known yet (experiments.examples_for checks it once chosen)."""
    model_access.check_remote_code(spec.model.trust_remote_code, spec.model.model_id)
    if spec.endpoint is not None:
        spec.endpoint.check_policy()
    if n_examples is not None:
        check_example_count(n_examples)


def check_example_count(n_examples: int) -> None:
    limit = policy.current().max_examples_per_run
    if limit and n_examples > limit:
        raise PromptLabError(
            f"A run may evaluate at most {limit} examples here (the operator's "
            f"{MAX_EXAMPLES}); this one has {n_examples}. Set a smaller limit, or split it "
            "into several runs."
        )
