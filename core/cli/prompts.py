"""`python -m core prompts …`: the prompt library on the command line, as thin calls into
core.library, printed plainly."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

from core.cli import build_parser
from core.cli import runs as cli_runs
from core.cli.commands import EXIT_ERROR, EXIT_OK, _print_table, confirm, short
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.library import files, importing, versions
from core.library.checks import checked_design, checked_settings
from core.library.diff import diff_versions
from core.library.refs import parse_ref
from core.prompting.design import PromptDesign

# save's options that `run` takes too, read by its own code (cli_runs.build_sweep).
RUN_DESIGN_OPTIONS = (
    *("preset", "instruction", "format", "shots", "selection", "selection_seed", "mmr_lambda"),
    *("shot_order", "no_chat_template"),
)
RUN_SETTINGS_OPTIONS = (
    *("temperature", "top_k", "top_p", "max_new_tokens", "repetition_penalty", "seed", "stop"),
)
OWN_DESIGN_OPTIONS = ("shot_format", "instruction_role", "system_prompt")


def prompts_list(args: Namespace) -> int:
    summaries = versions.list_prompts(db_url=args.db_url)
    if not summaries:
        print("no prompts")
        return EXIT_OK
    rows = [
        (
            s.name,
            s.versions,
            s.latest,
            ", ".join(f"{label}@{n}" for label, n in s.labels.items()) or "–",
            s.created_by or "–",
            f"{s.updated_at:%Y-%m-%d %H:%M}",
        )
        for s in summaries
    ]
    _print_table(("name", "versions", "latest", "labels", "created by", "updated (UTC)"), rows)
    return EXIT_OK


def prompts_show(args: Namespace) -> int:
    ref = parse_ref(args.ref)
    version = versions.get_version(ref, db_url=args.db_url)
    for line in describe(version):
        print(line)
    if "@" not in args.ref:
        print("history:")
        for v in reversed(versions.history(ref.name, db_url=args.db_url)):
            labels = f"  [{', '.join(v.labels)}]" if v.labels else ""
            print(
                f"  {v.number:>3}  {v.created_at:%Y-%m-%d %H:%M}  {v.created_by or '–'}"
                f"{labels}  {short(v.message, 60)}".rstrip()
            )
    return EXIT_OK


def describe(version: versions.PromptVersion) -> list[str]:
    lines = [
        f"{version.ref}" + (f"  labels: {', '.join(version.labels)}" if version.labels else ""),
        f"  author    {version.created_by or '–'}",
        f"  created   {version.created_at:%Y-%m-%d %H:%M:%S}",
        f"  message   {short(version.message, 200) or '–'}",
        f"  tags      {', '.join(version.tags) or '–'}",
        "  design    " + _pairs(version.design.to_dict()),
    ]
    settings = _pairs(version.settings.to_dict()) if version.settings else "– (not saved)"
    return [*lines, "  settings  " + settings]


def prompts_save(args: Namespace) -> int:
    design, settings = _design_and_settings(args)
    version = versions.save_version(
        args.name, design, settings, cli_runs.unescape(args.message), db_url=args.db_url
    )
    kept = "design and settings" if settings is not None else "design"
    print(f"saved {version.ref} ({kept})")
    return EXIT_OK


def prompts_diff(args: Namespace) -> int:
    old = versions.get_version(args.old, db_url=args.db_url)
    new = versions.get_version(args.new, db_url=args.db_url)
    diff = diff_versions(old, new)
    if diff.identical:
        print(f"{old.ref} and {new.ref} are identical")
        return EXIT_OK
    print(f"--- {old.ref}\n+++ {new.ref}")
    for row in diff.changed:
        if row.words:
            marked = "".join(_marked(op, text) for op, text in row.words)
            print(f"{row.part}.{row.field}:\n  " + marked.replace("\n", "\n  "))
        else:
            old, new = (json.dumps(v, ensure_ascii=False) for v in (row.old, row.new))
            print(f"{row.part}.{row.field}: {old} → {new}")
    return EXIT_OK


def prompts_label(args: Namespace) -> int:
    if args.remove:
        name = parse_ref(args.ref).name
        versions.remove_label(name, args.label, db_url=args.db_url)
        print(f"removed label '{args.label}' from {name}")
        return EXIT_OK
    version, before = versions.move_label(args.ref, args.label, db_url=args.db_url)
    moved = f" (was on {version.name}@{before})" if before and before != version.number else ""
    print(f"{args.label} → {version.ref}{moved}")
    return EXIT_OK


def prompts_tag(args: Namespace) -> int:
    version = versions.tag(args.ref, args.tag, remove=args.remove, db_url=args.db_url)
    print(f"{version.ref} tags: {', '.join(version.tags) or '–'}")
    return EXIT_OK


def prompts_export(args: Namespace) -> int:
    written = files.write_file(args.ref, args.output, db_url=args.db_url)
    print(f"wrote {written} version(s) of {parse_ref(args.ref).name} to {args.output}")
    return EXIT_OK


def prompts_import(args: Namespace) -> int:
    report = importing.import_file(args.file, db_url=args.db_url)
    done = "created" if report.created else "updated"
    print(
        f"{done} {report.name}: {len(report.saved)} version(s) saved, "
        f"{len(report.skipped)} identical skipped"
    )
    for number, new in report.saved:
        print(f"  version {number} of the file → {report.name}@{new}")
    for number, existing in report.skipped:
        print(f"  version {number} of the file is identical to {report.name}@{existing}")
    for label, number in report.labels.items():
        print(f"  {label} → {report.name}@{number}")
    for note in report.notes:
        print(f"note: {note}")
    return EXIT_OK


def prompts_delete(args: Namespace) -> int:
    history = versions.history(args.name, db_url=args.db_url)  # refused here if unknown
    question = f"Delete prompt '{args.name}' and its {len(history)} version(s)? [y/N] "
    if not args.yes and not confirm(question):
        print("nothing deleted")
        return EXIT_ERROR
    versions.delete_prompt(args.name, db_url=args.db_url)
    print(f"deleted prompt '{args.name}' ({len(history)} version(s))")
    return EXIT_OK


def _design_and_settings(args: Namespace) -> tuple[PromptDesign, GenerationSettings | None]:
    options = [
        o
        for o in (*RUN_DESIGN_OPTIONS, *RUN_SETTINGS_OPTIONS, *OWN_DESIGN_OPTIONS)
        if getattr(args, o) not in (None, False)
    ]
    if args.from_experiment is not None or args.file:
        if options:
            given = ", ".join("--" + o.replace("_", "-") for o in options)
            raise PromptLabError(f"{given}: give design options or a source, not both.")
        if args.file:
            return _from_file(Path(args.file))
        return versions.from_experiment(args.from_experiment, db_url=args.db_url)
    return _from_options(args)


def _from_options(args: Namespace) -> tuple[PromptDesign, GenerationSettings | None]:
    """The design (and settings, if any is given) exactly as `run` builds them from the same
    options, through its own code."""
    run_args = build_parser().parse_args(["run"])
    run_args.db_url = args.db_url  # as core.cli.main sets it
    for option in (*RUN_DESIGN_OPTIONS, *RUN_SETTINGS_OPTIONS):
        if getattr(args, option) not in (None, False):
            setattr(run_args, option, getattr(args, option))
    sweep = cli_runs.build_sweep(run_args)
    if sweep.variations:
        several = ", ".join(sweep.variations)
        raise PromptLabError(f"A version holds one design; give one value for: {several}.")
    design = sweep.base.design
    own = {o: getattr(args, o) for o in OWN_DESIGN_OPTIONS if getattr(args, o) is not None}
    if own:
        design = design.with_(**{k: cli_runs.unescape(v) for k, v in own.items()})
    given = any(getattr(args, o) not in (None, False) for o in RUN_SETTINGS_OPTIONS)
    return design, sweep.base.settings if given else None


def _from_file(path: Path) -> tuple[PromptDesign, GenerationSettings | None]:
    """A design file: the design's fields, or `design:` and `settings:`."""
    kind = files.kind_of(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PromptLabError(f"Cannot read '{path}': {exc.strerror or exc}.") from exc
    if len(text) > files.MAX_FILE_BYTES:
        raise PromptLabError(f"'{path.name}' is too large for a design file.")
    data = files.load_text(text, kind)
    try:
        if isinstance(data, dict) and "design" in data:
            unknown = sorted(set(data) - {"design", "settings"})
            if unknown:
                raise PromptLabError(f"unknown key(s): {', '.join(map(str, unknown))}.")
            settings = data.get("settings")
            return checked_design(data["design"]), (
                None if settings is None else checked_settings(settings)
            )
        return checked_design(data), None
    except PromptLabError as exc:
        raise PromptLabError(f"{path.name}: {exc}") from exc


def _marked(op: str, text: str) -> str:
    return {"delete": f"[-{text}-]", "insert": f"{{+{text}+}}"}.get(op, text)


def _pairs(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
