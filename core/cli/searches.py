"""`python -m core search` and `searches`: a prompt search run on the terminal, a line per
candidate as it is scored, the test-set verdict at the end; stopped, how to resume it."""

from __future__ import annotations

import shlex
import sys
from argparse import Namespace

from core.cli.commands import EXIT_INTERRUPTED, EXIT_OK
from core.errors import PromptLabError
from core.evaluation.wording import format_score, metric_label
from core.search import final
from core.search import search as searching
from core.search.state import SearchConfig, SearchState


def search_config(args: Namespace) -> SearchConfig:
    if not args.prompt:
        raise PromptLabError("Name the base prompt with --prompt NAME@V, or --resume ID.")
    return SearchConfig(
        prompt=args.prompt,
        metric=args.metric,
        budget=args.budget if args.budget is not None or args.minutes is not None else 20,
        minutes=args.minutes,
        seed=args.seed,
        dataset=args.dataset,
        instructions=tuple(args.instruction or ()),
        max_shots=args.max_shots,
        test_fraction=args.test_fraction,
        limit=args.limit,
        engine=args.engine,
        model=args.model,
        save_as=args.save_as,
    )


def search(args: Namespace) -> int:
    """Start a search (or resume one) and follow it to its end."""
    if args.resume is not None:
        if args.prompt:
            raise PromptLabError("Give --prompt for a new search or --resume ID, not both.")
        search_id = args.resume
        state = searching.get_search(search_id, db_url=args.db_url)
        if state.status == "completed":
            raise PromptLabError(f"Search {search_id} is complete; see `searches {search_id}`.")
    else:
        search_id = searching.create_search(search_config(args), db_url=args.db_url)
        state = searching.get_search(search_id, db_url=args.db_url)
    split = state.split
    print(
        f"search {search_id} (study {state.study_id}): {len(split.pool)} pool, "
        f"{len(split.selection)} selection and {len(split.test)} locked test examples",
        flush=True,
    )
    shown = {c.number for c in state.candidates if c.score is not None}
    try:
        ended = searching.run_search(
            search_id, db_url=args.db_url, on_candidate=lambda s: _print_new(s, shown)
        )
    except KeyboardInterrupt:
        print(_resume_hint(args, search_id, "interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except PromptLabError as exc:
        raise PromptLabError(_resume_hint(args, search_id, f"failed ({exc})")) from exc
    _print_result(ended)
    return EXIT_OK


def _print_new(state: SearchState, shown: set[int]) -> None:
    best = state.best()
    for c in state.candidates:
        if c.score is None or c.number in shown:
            continue
        shown.add(c.number)
        score = "failed" if c.failed else format_score(c.score)
        top = format_score(best.score) if best else "—"
        print(f"  #{c.number:<3} {score:>8}  best {top:>8}  {c.how}", flush=True)


def _resume_hint(args: Namespace, search_id: int, how: str) -> str:
    db = f" --db {shlex.quote(args.db)}" if getattr(args, "db", None) else ""
    return f"search {search_id} {how}; go on with: python -m core{db} search --resume {search_id}"


def _print_result(state: SearchState) -> None:
    result = state.result or {}
    winner = next(c for c in state.candidates if c.number == result.get("winner"))
    label = metric_label(state.config.metric)
    print(f"best-so-far ({label} on the selection set):")
    print("  " + "  ".join(f"#{n} {format_score(v)}" for n, v in state.curve()))
    print(f"winner: #{winner.number}, {winner.how}")
    for line in design_lines(winner.design):
        print(f"  {line}")
    print(final.summary(state))
    print(f"compare every candidate: python -m core compare --study {state.study_id}")


def design_lines(design: dict) -> list[str]:
    """What a design does with its shots and instruction, as a few lines."""
    shots = design["shots"]
    how = design["selection"]
    if how == "ids":
        how = "examples " + ", ".join(design["shot_ids"])
    lines = [
        f"shots: {shots}" + (f" ({how}, order {design['shot_order']})" if shots else ""),
        f"shot format: {design['shot_format']}"
        + (f", instruction as {design['instruction_role']}" if shots else ""),
        f"instruction: {design['instruction'] or '(none)'}",
    ]
    return lines


def searches(args: Namespace) -> int:
    """The stored searches, newest first; with an id, one in full."""
    if args.id is not None:
        state = searching.get_search(args.id, db_url=args.db_url)
        print(f"{state.name}: {state.status}, {len(state.candidates)} candidates")
        _print_new(state, set())
        if state.status == "completed":
            _print_result(state)
        return EXIT_OK
    found = searching.list_searches(db_url=args.db_url)
    if not found:
        print("no searches yet; start one with: python -m core search --prompt NAME@V")
    for state in found:
        best = state.best()
        top = f", best {format_score(best.score)} (#{best.number})" if best else ""
        version = (state.result or {}).get("version")
        saved = f", saved as {version}" if version else ""
        print(
            f"{state.id}  {state.status:<11} {len(state.candidates)} candidates{top}{saved}  "
            f"{state.name}"
        )
    return EXIT_OK
