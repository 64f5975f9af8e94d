"""The shape of `python -m core prompts …`: the prompt library's subcommands and their options
(what each does is in core/cli/prompts.py)."""

from __future__ import annotations

from collections.abc import Callable

REF_HELP = "NAME (its latest version), NAME@VERSION or NAME@LABEL"


def add_prompt_commands(commands, common, command: Callable) -> None:
    """Register `prompts` and its actions; `command` is core.cli's helper that adds one."""
    prompts = commands.add_parser("prompts", help="the prompt library: named, versioned prompts")
    actions = prompts.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, common, "list", "prompts.prompts_list", "list the named prompts")
    show = command(actions, common, "show", "prompts.prompts_show", "a version and its history")
    show.add_argument("ref", metavar="REF", help=REF_HELP)
    _save_command(actions, common, command)
    diff = command(actions, common, "diff", "prompts.prompts_diff", "two versions side by side")
    diff.add_argument("old", metavar="REF", help=REF_HELP)
    diff.add_argument("new", metavar="REF", help="another, of the same prompt or another")
    label = command(actions, common, "label", "prompts.prompts_label", "point a label at a version")
    label.add_argument("ref", metavar="REF", help=REF_HELP)
    label.add_argument("label", metavar="LABEL", help="e.g. production or best")
    label.add_argument("--remove", action="store_true", help="take the label off instead")
    tag = command(actions, common, "tag", "prompts.prompts_tag", "tag a version")
    tag.add_argument("ref", metavar="REF", help=REF_HELP)
    tag.add_argument("tag", metavar="TAG")
    tag.add_argument("--remove", action="store_true", help="take the tag off instead")
    export = command(actions, common, "export", "prompts.prompts_export", "write a prompt file")
    export.add_argument("ref", metavar="REF", help="NAME for every version, NAME@V for one")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help=".yaml or .json")
    imp = command(actions, common, "import", "prompts.prompts_import", "read a prompt file")
    imp.add_argument("file", metavar="FILE", help=".yaml, .yml or .json")
    delete = command(actions, common, "delete", "prompts.prompts_delete", "delete a prompt")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _save_command(actions, common, command: Callable) -> None:
    save = command(actions, common, "save", "prompts.prompts_save", "save a new version")
    save.epilog = (
        "The design comes from an experiment (with the settings it ran), from a file (a design "
        "mapping, or one with design and settings), or from the options `run` takes; settings "
        r"are saved when one is given. In texts, \n and \t stand for a newline and a tab."
    )
    add = save.add_argument
    add("name", metavar="NAME")
    add("-m", "--message", default="", help="what changed, and why")
    source = save.add_mutually_exclusive_group()
    source.add_argument("--from-experiment", type=int, metavar="ID")
    source.add_argument("--file", metavar="FILE", help="a design as .yaml, .yml or .json")
    add("--preset", choices=("instruction", "flan"), help="prompt design to start from")
    add("--instruction", action="append", metavar="TEXT", help="replaces the preset's")
    add("--format", action="append", metavar="TEXT", help="example format with {input}/{output}")
    add("--shots", help="worked examples per prompt")
    add("--selection", help="first, random, similar or mmr")
    add("--selection-seed", metavar="S")
    add("--mmr-lambda", metavar="L")
    add("--shot-order", help="given, reversed or similar_last")
    add("--shot-format", help="inline or turns")
    add("--instruction-role", help="with turns: user or system")
    add("--system-prompt", metavar="TEXT")
    add("--no-chat-template", action="store_true", help="send the prompt raw")
    add("--temperature", help="0 means greedy")
    for name in ("top-k", "top-p", "max-new-tokens", "repetition-penalty", "seed"):
        add(f"--{name}", help="as in Hugging Face generate")
    add("--stop", action="append", metavar="STR", help="cut the output here (repeatable)")
