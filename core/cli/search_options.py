"""The shape of `python -m core search …` and `python -m core searches`: a prompt search's
options (what each does is in core/cli/searches.py)."""

from __future__ import annotations

from collections.abc import Callable


def add_search_commands(commands, common, command: Callable) -> None:
    """Register `search` and `searches`; `command` is core.cli's helper that adds one."""
    search = command(
        commands,
        common,
        "search",
        "searches.search",
        "search shots and designs for the best prompt, tested once on a locked test set",
    )
    search.epilog = (
        "The evaluated examples are split, with --seed, into a selection set that every "
        "candidate is scored on and a locked test set that only the base and the winner see, "
        "once, at the end; shots come from the dataset's pool. The winner is saved as a new "
        "version of the base's prompt (or --save-as). Interrupted, a search resumes with "
        "--resume ID, exactly where it stopped."
    )
    add = search.add_argument
    add("--prompt", metavar="NAME[@V]", help="the base: a saved prompt version")
    add("--resume", type=int, metavar="ID", help="go on with a stopped search instead")
    add(
        "--metric",
        default="chrf",
        help="rougeL, bleu, chrf, similarity or bertscore (default chrf)",
    )
    add("--budget", type=int, metavar="N", help="designs to score, the base included (default 20)")
    add("--minutes", type=float, metavar="M", help="time for the whole search, the test included")
    add("--seed", type=int, default=0, help="the split, random subsets, order of exploration")
    add("--dataset", default="dialogues", help="dataset name (default: the built-in dialogues)")
    add("--instruction", action="append", metavar="TEXT", help="an instruction variant to try")
    add("--max-shots", type=int, default=3, metavar="K", help="most shots a design has (3)")
    add("--test-fraction", type=float, default=0.5, metavar="F", help="locked away (0.5)")
    add("--limit", type=int, metavar="N", help="evaluated examples used (default: all)")
    add("--engine", choices=("transformers", "llama.cpp"), default="transformers")
    add("--model", help="model id, folder or .gguf (default: embedded SmolLM2)")
    add("--save-as", metavar="NAME", help="library name for the winner (default: the base's)")
    searches = command(commands, common, "searches", "searches.searches", "list prompt searches")
    searches.add_argument("id", type=int, nargs="?", metavar="ID", help="show one in full")
