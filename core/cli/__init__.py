"""The headless front door, `python -m core …`: the command line's shape and its error contract.
What each command does lives in `core/cli/commands.py` (or the `cli_*` module its handler
names), imported only once a command runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from core.cli.metric_options import add_metric_commands, add_scoring_options
from core.cli.prompt_options import add_prompt_commands
from core.cli.search_options import add_search_commands
from core.errors import PromptLabError

PROG = "python -m core"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
log = logging.getLogger(__name__)

SWEEP_HELP = "sweepable"


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one `error: …` line, like every other error."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _configure_logging(getattr(args, "debug", False))
    args.db_url = getattr(args, "db", None)
    try:
        from core.cli import commands as cli_commands

        if not getattr(args, "debug", False):
            cli_commands.quiet_libraries()
        if args.needs_db:
            cli_commands.open_db(args.db_url)
        module, _, name = args.handler.rpartition(".")
        handlers = importlib.import_module(f"core.cli.{module}") if module else cli_commands
        return getattr(handlers, name)(args)
    except PromptLabError as exc:
        report_error(str(exc))
    except KeyboardInterrupt:  # the run commands handle their own; this is any other moment
        report_error("interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except Exception as exc:  # a bug: a short apology here, the traceback only with --debug
        if getattr(args, "debug", False):
            log.exception("unexpected error in `%s`", args.command)
            hint = ""
        else:
            hint = "; run again with --debug for the traceback"
        report_error(f"sorry, Prompt Lab failed unexpectedly ({type(exc).__name__}){hint}.")
    return EXIT_ERROR


def report_error(message: str) -> None:
    """One `error: …` line on stderr; a multi-line message (e.g. bad rows) is joined with '; '."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = " ".join([lines[0], "; ".join(lines[1:])]).strip() if lines else "unknown error."
    print(f"error: {text}", file=sys.stderr)


def _configure_logging(debug: bool) -> None:
    root = logging.getLogger()
    if debug:  # our own details; other libraries' warnings only
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        for name in ("core", "storage"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    elif not root.handlers:
        # Without a handler, Python's last-resort one would print logged tracebacks to stderr.
        root.addHandler(logging.NullHandler())


# The parser ------------------------------------------------------------------------------------


def build_parser() -> Parser:
    common = _common_options()
    parser = Parser(
        prog=PROG,
        parents=[common],
        description=(
            "Prompt Lab without the browser: datasets, experiments, sweeps, searches, exports."
        ),
        epilog=f"Run `{PROG} COMMAND --help` for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _datasets_commands(commands, common)
    _run_command(commands, common)
    _experiment_commands(commands, common)
    _compare_command(commands, common)
    _export_command(commands, common)
    add_prompt_commands(commands, common, _command)
    add_metric_commands(commands, common, _command)
    add_search_commands(commands, common, _command)
    return parser


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS lets the options stand before or after the command without one hiding the other.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="database URL (default: $PROMPT_LAB_DB, else data/prompt_lab.sqlite)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log details, and show the traceback of an unexpected error",
    )
    return common


def _command(commands, common, name: str, handler: str, summary: str) -> Parser:
    parser = commands.add_parser(name, parents=[common], help=summary, description=summary + ".")
    parser.set_defaults(handler=handler, needs_db=True)
    return parser


def _datasets_commands(commands, common) -> None:
    datasets = commands.add_parser("datasets", help="import, list and delete datasets")
    actions = datasets.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = _command(actions, common, "import", "datasets_import", "import a CSV/TSV/JSONL file")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--name", required=True, help="the dataset's name in Prompt Lab")
    for role in ("input", "reference", "id", "split"):
        imp.add_argument(f"--{role}-col", metavar="COLUMN", help=f"the {role} column")
    for role, what in (("shots", "give the shots"), ("eval", "are evaluated")):
        imp.add_argument(
            f"--{role}-split",
            metavar="VALUES",
            help=f"split values (comma-separated) whose examples {what}; default: guessed from "
            "the usual names (train; test, else validation). Give either, and the other "
            "is only what it names (no --shots-split: zero-shot only)",
        )
    imp.add_argument("--replace", action="store_true", help="replace a dataset of that name")
    _command(actions, common, "list", "datasets_list", "list stored datasets")
    delete = _command(actions, common, "delete", "datasets_delete", "delete a dataset")
    delete.add_argument("name", metavar="NAME")


def _run_command(commands, common) -> None:
    run = _command(
        commands,
        common,
        "run",
        "runs.run",
        "run an experiment, or a sweep of them as one study",
    )
    run.epilog = (
        "A sweepable option takes one value or several separated by commas (--shots 0,1,3); "
        "each option given several is a sweep dimension, and every combination runs as one "
        "experiment of a study. "
        "--instruction and --format may contain commas, so they are swept by repeating them. "
        "With one value everywhere, a single experiment runs, outside any study. "
        r"In --instruction, --format and --stop, \n and \t stand for a newline and a tab."
    )
    add = run.add_argument
    add("--dataset", default="dialogues", help="dataset name (default: the built-in dialogues)")
    add("--model", help=f"model id, folder or .gguf (default: embedded SmolLM2); {SWEEP_HELP}")
    add(
        "--prompt",
        metavar="NAME[@V]",
        help="start from a saved prompt version (NAME@3, NAME@best, NAME: the latest): its "
        f"design, and its settings if it saved them; other options change it; {SWEEP_HELP}",
    )
    add("--shots", help=f"worked examples per prompt (default 0); {SWEEP_HELP}")
    add("--preset", choices=("instruction", "flan"), default="instruction", help="prompt design")
    add("--instruction", action="append", metavar="TEXT", help="replaces the preset's")
    add("--format", action="append", metavar="TEXT", help="example format with {input}/{output}")
    add(
        "--selection",
        help=f"first, random, or by similarity to the input: similar or mmr; {SWEEP_HELP}",
    )
    add("--selection-seed", metavar="S", help=f"seed of random selection; {SWEEP_HELP}")
    add("--mmr-lambda", metavar="L", help=f"mmr: 1 most similar, 0 most diverse; {SWEEP_HELP}")
    add("--shot-order", help=f"given, reversed or similar_last; {SWEEP_HELP}")
    add(
        "--shot-format",
        help="inline (one message) or turns (each shot a user and an assistant turn; needs a "
        f"chat template); {SWEEP_HELP}",
    )
    add(
        "--instruction-role",
        help=f"with turns: the instruction in each user turn (user) or once (system); {SWEEP_HELP}",
    )
    add("--split", default="eval", help="split to evaluate, or 'all' (default: eval)")
    add("--limit", default="20", help="examples to evaluate, or 'all' (default: 20)")
    add("--offset", type=int, default=0, help="examples to skip first (default: 0)")
    add("--seed", help=f"sampling seed (default 0); {SWEEP_HELP}")
    add("--temperature", help=f"0 means greedy (the default); {SWEEP_HELP}")
    for name in ("top-k", "top-p", "max-new-tokens", "repetition-penalty"):
        add(f"--{name}", help=f"as in Hugging Face generate; {SWEEP_HELP}")
    add("--stop", action="append", metavar="STR", help="cut the output here (repeatable)")
    add("--no-chat-template", action="store_true", help="send the prompt raw")
    add("--device", help="cpu, cuda, cuda:N or mps (default: the best present)")
    add("--dtype", help="float32, float16 or bfloat16 (default: chosen for the device)")
    add(
        "--trust-remote-code",
        action="store_true",
        help="let the model's repository run its own Python code; refused unless the operator "
        "set PROMPT_LAB_ALLOW_REMOTE_CODE=1",
    )
    add("--batch-size", type=int, metavar="N", help="prompts per batch (default: by device)")
    add(
        "--engine",
        choices=("transformers", "llama.cpp"),
        default="transformers",
        help="who generates here: transformers (default), or llama.cpp's server started for a "
        "GGUF model (much faster on CPU; its greedy text can differ, see --slots)",
    )
    add(
        "--slots",
        type=int,
        metavar="N",
        help="llama.cpp's parallel requests (default: 4 a core, at most 8); greedy text "
        "depends on it: 1 reproduces exactly",
    )
    add("--no-stem", action="store_true", help="score ROUGE without the Porter stemmer")
    add_scoring_options(add)
    add(
        "--token-confidence",
        action="store_true",
        help="also store each answer token's probability (one more forward pass per example)",
    )
    add("--name", metavar="STUDY", help="the study's name (a single experiment's label)")
    served = run.add_argument_group(
        "served model",
        "Generate on an OpenAI-compatible endpoint (vLLM, TGI, llama.cpp, Ollama) instead of "
        "locally; --model then only supplies the tokenizer and chat template for the prompts.",
    )
    served.add_argument("--endpoint", metavar="URL", help="base URL, e.g. http://host:8000/v1")
    served.add_argument("--served-model", metavar="NAME", help="the model's name on the server")
    served.add_argument("--api", choices=("completions", "chat"), default="completions")
    served.add_argument(
        "--server",
        choices=("vllm", "llama.cpp", "openai"),
        default="vllm",
        help="which extra parameters it takes (top_k, repetition penalty); default vllm",
    )
    served.add_argument(
        "--api-key-env",
        metavar="VAR",
        default="",
        help="environment variable holding the key: its name starts with PROMPT_LAB_KEY_, "
        "or the operator lists it in PROMPT_LAB_KEY_VARIABLES",
    )
    served.add_argument("--concurrency", type=int, default=4, metavar="C", help="default 4")
    served.add_argument("--request-timeout", type=float, default=120.0, metavar="S")
    served.add_argument("--max-retries", type=int, default=4, metavar="N")
    served.add_argument(
        "--error-budget",
        type=float,
        default=0.1,
        metavar="F",
        help="share of examples that may fail before the run stops (default 0.1)",
    )


def _experiment_commands(commands, common) -> None:
    listing = _command(commands, common, "list", "list_experiments", "list experiments")
    listing.add_argument("--model")
    listing.add_argument("--dataset")
    listing.add_argument("--study", type=int, metavar="ID")
    listing.add_argument(
        "--status", choices=("pending", "running", "completed", "interrupted", "failed")
    )
    show = _command(commands, common, "show", "show", "an experiment's settings and scores")
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument("--results", type=int, default=3, metavar="N", help="results to show")
    rerun = _command(
        commands,
        common,
        "rerun",
        "runs.rerun",
        "run an experiment again, as a new one on its examples",
    )
    rerun.add_argument("id", type=int, metavar="ID")
    resume = _command(
        commands,
        common,
        "resume",
        "runs.resume",
        "finish interrupted, failed or pending experiments",
    )
    resume.add_argument("ids", type=int, nargs="+", metavar="ID")
    retry = _command(
        commands,
        common,
        "retry-failed",
        "runs.retry_failed",
        "run the failed examples of experiments again, keeping the rest",
    )
    retry.add_argument("ids", type=int, nargs="+", metavar="ID")
    delete = _command(commands, common, "delete", "delete", "delete experiments and results")
    delete.add_argument("ids", type=int, nargs="+", metavar="ID")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _compare_command(commands, common) -> None:
    summary = "is the difference real? paired tests, shot-count curve, luck of the seed"
    cmp = _command(commands, common, "compare", "compare.compare_experiments", summary)
    cmp.add_argument("ids", type=int, nargs="*", metavar="ID")
    cmp.add_argument("--study", type=int, metavar="ID", help="every experiment of a study")
    cmp.add_argument(
        "--metric",
        default="rougeL",
        help="the score compared: rougeL (default), rouge1, rouge2, rougeLsum, bleu, chrf, "
        "similarity, bertscore, words, length_ratio, check:NAME, custom:NAME",
    )
    family = cmp.add_mutually_exclusive_group()
    family.add_argument(
        "--baseline", type=int, metavar="ID", help="compare each with it (default: the first)"
    )
    family.add_argument("--all-pairs", action="store_true", help="compare every pair")


def _export_command(commands, common) -> None:
    export = _command(commands, common, "export", "export_csv", "write experiments to a CSV file")
    export.add_argument("ids", type=int, nargs="*", metavar="ID")
    export.add_argument("--study", type=int, metavar="ID", help="every experiment of a study")
    export.add_argument("-o", "--output", required=True, metavar="FILE.csv")
    table = export.add_mutually_exclusive_group()
    table.add_argument(
        "--summary",
        dest="table",
        action="store_const",
        const="summary",
        help="one row per experiment (the default)",
    )
    table.add_argument(
        "--per-example",
        dest="table",
        action="store_const",
        const="per_example",
        help="one row per experiment and example",
    )
    table.add_argument(
        "--wide",
        dest="table",
        action="store_const",
        const="wide",
        help="one row per example, experiments side by side",
    )
    for name, what in (("ratings", "people's ratings"), ("choices", "blind A/B choices")):
        table.add_argument(
            f"--{name}",
            dest="table",
            action="store_const",
            const=name,
            help=f"one row per rater and output: {what}",
        )
    export.set_defaults(table="summary")
    export.add_argument("--bom", action="store_true", help="start with a UTF-8 byte-order mark")
