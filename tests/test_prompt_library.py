"""The prompt library: numbered immutable versions, references and their refusals, labels that
move, tags, diffs, prompt files (YAML and JSON) and who may change what; on SQLite and
PostgreSQL; and the `prompts` commands end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from core.cli import main
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.library import files, importing, versions
from core.library.diff import diff_versions
from core.library.refs import Ref, check_label, check_message, check_name, parse_ref
from core.policy import local_actor, signed_in_actor
from core.prompting.design import PRESETS, PromptDesign
from core.runs import experiments
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import session_scope
from storage.schema import ExperimentRecord

BASE = PRESETS["instruction"]
BRIEF = BASE.with_(instruction="Summarize the dialogue in one sentence.")
ALICE, BOB, ADA = "alice@example.com", "bob@example.com", "ada@example.com"


def three_versions(db: str) -> list[versions.PromptVersion]:
    return [
        versions.save_version("summarise", BASE, message="first", db_url=db),
        versions.save_version("summarise", BRIEF, message="shorter", db_url=db),
        versions.save_version(
            "summarise", BRIEF, GenerationSettings(max_new_tokens=60), "fewer tokens", db_url=db
        ),
    ]


# Versions and references -------------------------------------------------------------------


@pytest.mark.both_databases
def test_versions_are_numbered_per_prompt_from_one(db):
    assert [v.number for v in three_versions(db)] == [1, 2, 3]
    other = versions.save_version("dialogue-qa", BASE, db_url=db)
    assert other.ref == "dialogue-qa@1"
    assert [(s.name, s.versions, s.latest) for s in versions.list_prompts(db_url=db)] == [
        ("dialogue-qa", 1, 1),
        ("summarise", 3, 3),
    ]


@pytest.mark.both_databases
def test_a_version_keeps_its_design_settings_and_message_whatever_comes_after(db):
    first, _, third = three_versions(db)
    again = versions.get_version("summarise@1", db_url=db)
    assert (again.design, again.settings, again.message) == (BASE, None, "first")
    assert versions.get_version("summarise@3", db_url=db).settings == third.settings
    assert again.created_by == local_actor().name and again.id == first.id


@pytest.mark.both_databases
def test_saving_what_the_latest_version_holds_is_refused(db):
    three_versions(db)
    settings = GenerationSettings(max_new_tokens=60)
    with pytest.raises(PromptLabError, match=r"^This version is identical to summarise@3; nothing"):
        versions.save_version("summarise", BRIEF, settings, "again", db_url=db)
    # The same design as an older version is a new version: going back is a change.
    assert versions.save_version("summarise", BASE, db_url=db).number == 4


@pytest.mark.both_databases
def test_references_name_the_latest_a_number_or_a_label(db):
    three_versions(db)
    versions.move_label("summarise@2", "best", db_url=db)
    assert versions.get_version("summarise", db_url=db).number == 3
    assert versions.get_version("summarise@latest", db_url=db).number == 3
    assert versions.get_version("summarise@1", db_url=db).number == 1
    assert versions.get_version("summarise@best", db_url=db).number == 2


@pytest.mark.both_databases
def test_unknown_names_versions_and_labels_are_refused_with_sentences(db):
    three_versions(db)
    versions.move_label("summarise@3", "production", db_url=db)
    versions.move_label("summarise@2", "best", db_url=db)
    with pytest.raises(PromptLabError, match=r"^No prompt named 'x'\.$"):
        versions.get_version("x", db_url=db)
    with pytest.raises(PromptLabError) as caught:
        versions.get_version("summarise@7", db_url=db)
    assert str(caught.value) == "summarise has versions 1–3; there is no version 7."
    with pytest.raises(PromptLabError) as caught:
        versions.get_version("summarise@prod", db_url=db)
    assert str(caught.value) == "summarise has no label 'prod'; its labels: best, production."


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("summarise", Ref("summarise")),
        ("summarise@3", Ref("summarise", version=3)),
        ("summarise@best", Ref("summarise", label="best")),
        ("v1.2_final-b", Ref("v1.2_final-b")),
    ],
)
def test_references_are_read_as_name_number_or_label(text, ref):
    assert parse_ref(text) == ref


@pytest.mark.parametrize(
    ("check", "value", "says"),
    [
        (check_name, "", "needs a name"),
        (check_name, "-leading", "starts with a letter or digit"),
        (check_name, "has space", "letters, digits"),
        (check_name, "a@b", "cannot contain @"),
        (check_name, "x" * 101, "at most 100"),
        (check_label, "Prod", "lowercase"),
        (check_label, "123", "all digits"),
        (check_label, "latest", "newest version"),
        (check_message, "m" * 2001, "at most 2000"),
        (parse_ref, "summarise@0", "numbered from 1"),
        (parse_ref, "summarise@", "names no version"),
    ],
)
def test_bad_names_labels_and_messages_are_refused_with_sentences(check, value, says):
    with pytest.raises(PromptLabError, match=says):
        check(value)


# Labels and tags ---------------------------------------------------------------------------


@pytest.mark.both_databases
def test_a_label_moves_and_says_where_it_was(db):
    three_versions(db)
    assert versions.move_label("summarise@1", "best", db_url=db)[1] is None
    version, before = versions.move_label("summarise@3", "best", db_url=db)
    assert (version.number, before, version.labels) == (3, 1, ("best",))
    assert versions.get_version("summarise@1", db_url=db).labels == ()
    versions.remove_label("summarise", "best", db_url=db)
    with pytest.raises(PromptLabError, match="it has no labels"):
        versions.get_version("summarise@best", db_url=db)


@pytest.mark.both_databases
def test_tags_are_added_once_and_removed(db):
    three_versions(db)
    versions.tag("summarise@2", "reviewed", db_url=db)
    versions.tag("summarise@2", "reviewed", db_url=db)
    assert versions.tag("summarise@2", "short", db_url=db).tags == ("reviewed", "short")
    assert versions.tag("summarise@2", "reviewed", remove=True, db_url=db).tags == ("short",)
    assert versions.get_version("summarise@1", db_url=db).tags == ()
    with pytest.raises(PromptLabError, match="has no tag 'nope'"):
        versions.tag("summarise@2", "nope", remove=True, db_url=db)


@pytest.mark.both_databases
def test_anyone_saves_versions_but_only_the_creator_or_an_admin_moves_labels_tags_or_deletes(
    db, monkeypatch
):
    monkeypatch.setenv("PROMPT_LAB_ADMINS", ADA)
    alice, bob, ada = signed_in_actor(ALICE), signed_in_actor(BOB), signed_in_actor(ADA)
    versions.save_version("summarise", BASE, db_url=db, actor=alice)
    bobs = versions.save_version("summarise", BRIEF, db_url=db, actor=bob)
    assert bobs.created_by == BOB and bobs.number == 2
    refusals = [
        lambda: versions.move_label("summarise@2", "best", db_url=db, actor=bob),
        lambda: versions.tag("summarise@2", "mine", db_url=db, actor=bob),
        lambda: versions.delete_prompt("summarise", db_url=db, actor=bob),
    ]
    for refused in refusals:
        with pytest.raises(
            PromptLabError, match=rf"Only the creator of prompt 'summarise' \({ALICE}"
        ):
            refused()
    assert versions.get_version("summarise@2", db_url=db).tags == ()
    versions.move_label("summarise@2", "best", db_url=db, actor=alice)
    versions.tag("summarise@2", "checked", db_url=db, actor=ada)
    assert versions.delete_prompt("summarise", db_url=db, actor=ada) == 2
    with session_scope(db) as session:
        assert [d.kind for d in queries.list_deletions(session=session)] == ["prompt"]


# Diffs -------------------------------------------------------------------------------------


def test_a_diff_names_the_fields_that_differ_with_their_values_and_words():
    old = versions.PromptVersion(1, "summarise", 1, BASE, None, "", (), (), None, None)
    changed = BRIEF.with_(shots=2, system_prompt="Be brief.")
    new = versions.PromptVersion(
        2, "brief", 4, changed, GenerationSettings(), "", (), (), None, None
    )
    diff = diff_versions(old, new)
    assert (diff.old_ref, diff.new_ref) == ("summarise@1", "brief@4")
    design_changes = {f.field: (f.old, f.new) for f in diff.changed if f.part == "design"}
    assert design_changes == {
        "instruction": (BASE.instruction, BRIEF.instruction),
        "shots": (0, 2),
        "system_prompt": (None, "Be brief."),
    }
    instruction = next(f for f in diff.fields if f.field == "instruction")
    assert instruction.words == (
        ("equal", "Summarize the "),
        ("delete", "following conversation."),
        ("insert", "dialogue in one sentence."),
    )
    assert next(f for f in diff.fields if f.field == "shots").words == ()
    settings = [f for f in diff.fields if f.part == "settings"]
    assert {f.field for f in settings} == set(GenerationSettings().to_dict())
    assert all(f.old is None for f in settings)  # version 1 saved no settings
    assert len(diff.fields) == len(BASE.to_dict()) + len(settings)  # every field, side by side


def test_the_diff_of_a_version_with_itself_is_empty():
    same = versions.PromptVersion(1, "s", 1, BASE, GenerationSettings(), "", (), (), None, None)
    assert diff_versions(same, same).identical


# Prompt files ------------------------------------------------------------------------------


@pytest.mark.both_databases
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_prompt_file_round_trips_versions_labels_tags_authors_and_times(db, tmp_path, suffix):
    three_versions(db)
    versions.save_version(
        "summarise",
        BRIEF.with_(separator="\n\n\n", system_prompt="Line one.\nLine two."),
        GenerationSettings(stop=("\n\n",)),
        "multi-line texts",
        db_url=db,
    )
    versions.move_label("summarise@2", "best", db_url=db)
    versions.tag("summarise@3", "reviewed", db_url=db)
    path = tmp_path / f"summarise{suffix}"
    assert files.write_file("summarise", path, db_url=db) == 4
    loaded = json.loads(path.read_text()) if suffix == ".json" else yaml.safe_load(path.read_text())
    assert loaded["name"] == "summarise" and loaded["labels"] == {"best": 2}
    other = f"sqlite:///{tmp_path}/colleague.sqlite"  # another store, the file come from git
    if True:
        report = importing.import_file(path, db_url=other)
        assert report.created and report.saved == [(1, 1), (2, 2), (3, 3), (4, 4)]
        assert report.labels == {"best": 2}
        for a, b in zip(
            versions.history("summarise", db_url=db),
            versions.history("summarise", db_url=other),
            strict=True,
        ):
            keep = ("number", "design", "settings", "message", "tags", "labels", "created_by")
            assert [getattr(a, k) for k in keep] == [getattr(b, k) for k in keep]
            assert a.created_at.replace(tzinfo=None) == b.created_at.replace(tzinfo=None)


@pytest.mark.both_databases
def test_importing_appends_new_versions_and_reports_identical_ones(db, tmp_path):
    three_versions(db)
    path = tmp_path / "summarise.yaml"
    files.write_file("summarise", path, db_url=db)
    data = yaml.safe_load(path.read_text())
    new_design = BRIEF.with_(shots=1).to_dict()
    data["versions"].append({"version": 4, "message": "one shot", "design": new_design})
    data["labels"] = {"production": 4}
    path.write_text(yaml.safe_dump(data))
    report = importing.import_file(path, db_url=db)
    assert not report.created
    assert report.skipped == [(1, 1), (2, 2), (3, 3)] and report.saved == [(4, 4)]
    assert versions.get_version("summarise@production", db_url=db).design.shots == 1
    again = importing.import_file(path, db_url=db)
    assert again.saved == [] and len(again.skipped) == 4


def test_exporting_one_version_writes_it_alone_with_its_labels(db, tmp_path):
    three_versions(db)
    versions.move_label("summarise@2", "best", db_url=db)
    versions.move_label("summarise@3", "production", db_url=db)
    path = tmp_path / "one.json"
    assert files.write_file("summarise@best", path, db_url=db) == 1
    data = json.loads(path.read_text())
    assert [v["version"] for v in data["versions"]] == [2] and data["labels"] == {"best": 2}


def _file(**changes) -> dict:
    version = {"version": 1, "message": "m", "design": BASE.to_dict(), "settings": None}
    version.update(changes.pop("version", {}))
    return {"format": 1, "name": "summarise", "versions": [version], **changes}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ([1, 2], "holds a mapping"),
        ({"versions": _file()["versions"]}, "has no name"),
        (_file(name="bad name"), "letters, digits"),
        (_file(name=5), "name must be text"),
        (_file(extra=1), "unknown key\\(s\\): extra"),
        (_file(versions=[]), "at least one version"),
        (_file(version={"design": {**BASE.to_dict(), "shots_count": 2}}), "shots_count"),
        (_file(version={"design": {**BASE.to_dict(), "shots": "3"}}), "'shots' must be a whole"),
        (_file(version={"design": {**BASE.to_dict(), "instruction": 5}}), "'instruction' must be"),
        (_file(version={"design": {**BASE.to_dict(), "shots": -1}}), "shots must be"),
        (_file(version={"settings": {"top_p": 1.5}}), "top_p must be in"),
        (_file(version={"settings": {"temperature": "hot"}}), "'temperature' must be a number"),
        (_file(version={"settings": [1]}), "settings must be a mapping"),
        (_file(version={"created_at": "yesterday"}), "created_at must be a time"),
        (_file(version={"tags": "a,b"}), "tags must be a list"),
        (_file(version={"author": 3}), "author must be text"),
        (_file(version={"colour": "red"}), "unknown version key"),
        (_file(labels={"best": 2}), "not in the file"),
        (_file(labels={"Best": 1}), "lowercase"),
        (_file(format=2), "format 2"),
    ],
)
def test_malformed_prompt_files_are_refused_with_a_sentence_naming_the_problem(data, says):
    with pytest.raises(PromptLabError, match=says):
        files.parse(data)


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("p.yaml", "name: [unclosed", "not valid YAML"),
        ("p.json", "{", "not valid JSON"),
        ("p.yaml", "a: &x [1]\nb: *x\n", "anchors and aliases"),
        ("p.txt", "name: x", "ends in .yaml, .yml or .json"),
        ("p.yaml", "x" * (files.MAX_FILE_BYTES + 1), "at most 1,000,000"),
    ],
)
def test_unreadable_prompt_files_are_refused_whole(tmp_path, db, name, text, says):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PromptLabError, match=says):
        importing.import_file(path, db_url=db)
    assert versions.list_prompts(db_url=db) == []


# What experiments ran ----------------------------------------------------------------------


@pytest.mark.both_databases
def test_each_design_has_one_unnamed_version_and_experiments_name_named_ones(db):
    design = BRIEF.to_dict()
    with session_scope(db) as session:
        unnamed = queries.version_for_design(session=session, design=design, created_by="me")
        assert queries.version_for_design(session=session, design=dict(design)) == unnamed
        assert queries.version_label(session=session, version_id=unnamed) is None
    named = versions.save_version("summarise", BRIEF, db_url=db)
    first = experiments.create(RunSpec(limit=1, design=BRIEF), db_url=db)
    second = experiments.create(RunSpec(limit=1, design=BRIEF), db_url=db)
    with session_scope(db) as session:
        session.get(ExperimentRecord, first).prompt_version_id = named.id
        session.get(ExperimentRecord, second).prompt_version_id = unnamed
    with session_scope(db) as session:
        assert queries.version_label(session=session, version_id=named.id) == "summarise@1"
        labels = queries.version_labels(session=session, experiment_ids=[first, second, 999])
        assert labels == {first: "summarise@1", second: None}
    versions.delete_prompt("summarise", db_url=db)
    with session_scope(db) as session:  # the experiment keeps the design it ran
        assert session.get(ExperimentRecord, first).prompt_version_id == unnamed


# The command line --------------------------------------------------------------------------


def test_a_prompts_session_on_the_command_line(db, tmp_path, capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--db", db, "prompts", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("save", "summarise", "--shots", "1", "-m", "first")[:2] == (
        0,
        "saved summarise@1 (design)\n",
    )
    code, _, err = run("save", "summarise", "--shots", "1", "-m", "again")
    assert (code, err) == (1, "error: This version is identical to summarise@1; nothing saved.\n")
    instruction = "Summarize the dialogue in one sentence."
    code, out, _ = run("save", "summarise", "--instruction", instruction, "--temperature", "0.7")
    assert code == 0 and out == "saved summarise@2 (design and settings)\n"
    assert versions.get_version("summarise@2", db_url=db).design.instruction == instruction
    assert versions.get_version("summarise@2", db_url=db).settings.do_sample
    code, out, _ = run("list")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["summarise", "2", "2"]
    code, out, _ = run("diff", "summarise@1", "summarise@2")
    assert "design.instruction:\n  Summarize the [-following conversation.-]" in out
    assert "design.shots: 1 → 0" in out and "settings.temperature: null → 0.7" in out
    assert run("label", "summarise@1", "best")[1] == "best → summarise@1\n"
    assert run("tag", "summarise@best", "reviewed")[1] == "summarise@1 tags: reviewed\n"
    code, out, _ = run("show", "summarise")
    assert out.startswith("summarise@2\n") and "history:" in out and "[best]" in out
    assert run("show", "summarise@9")[2] == (
        "error: summarise has versions 1–2; there is no version 9.\n"
    )
    exported = tmp_path / "summarise.yaml"
    assert run("export", "summarise", "-o", str(exported))[0] == 0
    design_file = tmp_path / "design.json"
    design_file.write_text(json.dumps({"design": {"instruction": "Sum up.", "shots": 0}}))
    assert run("save", "summarise", "--file", str(design_file))[1] == "saved summarise@3 (design)\n"
    code, out, _ = run("import", str(exported))
    assert code == 0 and "updated summarise: 0 version(s) saved, 2 identical skipped" in out
    experiment = experiments.create(RunSpec(limit=1, design=PromptDesign(shots=0)), db_url=db)
    assert run("save", "from-run", "--from-experiment", str(experiment))[1] == (
        "saved from-run@1 (design and settings)\n"
    )
    code, _, err = run("save", "x", "--shots", "0,1")
    assert code == 1 and "one value for: shots" in err


def test_the_prompts_command_is_listed_in_help(capsys):
    assert main(["prompts", "--help"]) == 0
    assert "export" in capsys.readouterr().out


def test_a_design_file_with_an_unknown_field_is_refused_by_name(db, tmp_path, capsys):
    bad = tmp_path / "design.yaml"
    bad.write_text("instruction: Sum up.\nshotz: 2\n")
    assert main(["--db", db, "prompts", "save", "s", "--file", str(bad)]) == 1
    assert "design.yaml: Unknown design field(s): shotz" in capsys.readouterr().err


def test_files_are_read_as_written_in_any_case_of_suffix(tmp_path):
    assert files.kind_of(Path("A.YML")) == "yaml" and files.kind_of("a.Json") == "json"
