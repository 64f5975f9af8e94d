"""Datasets: the built-in set, and all-or-nothing CSV/JSONL imports that name bad lines."""

import csv
import json

import pytest

from core.datasets.data import (
    SplitRoles,
    guess_split_roles,
    import_bytes,
    import_file,
    load_builtin,
)
from core.errors import PromptLabError


def test_builtin_set_has_a_pool_and_an_eval_split_that_do_not_overlap():
    ds = load_builtin()
    assert len(ds.examples) >= 60
    assert len(ds.pool) == 16 and len(ds.eval) == len(ds.examples) - 16
    assert not {e.id for e in ds.pool} & {e.id for e in ds.eval}
    for ex in ds.examples:
        assert ex.input.startswith("#Person1#:") and ex.reference


def test_csv_with_quoted_newlines_and_bom(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        'id,dialogue,summary\n1,"#Person1#: Hi.\n#Person2#: Hi!",They greet.\n2,"A, B",C\n',
        encoding="utf-8-sig",
    )
    ds = import_file(path, name="mine")
    assert ds.name == "mine" and ds.input_column == "dialogue" and ds.reference_column == "summary"
    assert [e.input for e in ds.examples] == ["#Person1#: Hi.\n#Person2#: Hi!", "A, B"]


def test_rows_with_missing_values_are_reported_by_line_and_nothing_is_imported(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,target\n"multi\nline",ok\n,missing input\nfine,\n', encoding="utf-8")
    with pytest.raises(PromptLabError) as err:
        import_file(path)
    message = str(err.value)
    assert "2 row(s) have problems" in message
    assert "line 4: empty or missing text" in message  # the quoted cell spans lines 2-3
    assert "line 5: empty or missing target" in message


def test_jsonl_bad_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [json.dumps({"input": "a", "output": "b"}), "{not json", json.dumps(["x"])]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(PromptLabError, match=r"line 2: not valid JSON(.|\n)*line 3: a JSON object"):
        import_file(path)


def test_explicit_columns_and_unknown_column_lists_what_exists():
    raw = b'{"q": "what?", "a": "that", "other": 1}\n'
    ds = import_bytes(raw, filename="x.jsonl", name="x", input_column="q", reference_column="a")
    assert ds.examples[0].input == "what?" and ds.examples[0].reference == "that"
    with pytest.raises(PromptLabError, match="no column 'answer'.*q, a, other"):
        import_bytes(raw, filename="x.jsonl", name="x", input_column="q", reference_column="answer")


def test_unguessable_columns_ask_the_user_to_choose():
    with pytest.raises(PromptLabError, match="Choose the input column.*foo, bar"):
        import_bytes(b"foo,bar\n1,2\n", filename="x.csv", name="x")


def test_repeated_ids_are_refused():
    raw = b"id,input,reference\n7,a,b\n7,c,d\n"
    with pytest.raises(PromptLabError, match="line 3: id '7' repeats line 2"):
        import_bytes(raw, filename="x.csv", name="x", id_column="id")


def test_dataset_without_references_when_allowed():
    ds = import_bytes(b"input\nhello\n", filename="x.csv", name="x", require_reference=False)
    assert ds.examples[0].reference is None and ds.reference_column is None


@pytest.mark.parametrize(
    "raw, filename, message",
    [
        (b"\xff\xfeinput\n", "x.csv", "not UTF-8"),
        (b"input,reference\n", "x.csv", "no data rows"),
        (b"input\n", "x.xlsx", "only .csv, .tsv and .jsonl"),
    ],
)
def test_unreadable_files_get_a_clear_message(raw, filename, message):
    with pytest.raises(PromptLabError, match=message):
        import_bytes(raw, filename=filename, name="x")


def test_missing_file_is_a_message_not_a_traceback(tmp_path):
    with pytest.raises(PromptLabError, match="Cannot read"):
        import_file(tmp_path / "nope.csv")


def test_a_long_csv_cell_imports_and_one_past_the_limit_names_its_line():
    long = "#Person1#: " + "word " * 60_000  # 300 KB, past csv's default 128 KiB cell limit
    raw = f'dialogue,summary\n"{long}",short\n'.encode()
    assert import_bytes(raw, filename="long.csv", name="long").examples[0].input == long.strip()
    limit = csv.field_size_limit(1000)  # the same refusal, without a 64 MiB file
    try:
        with pytest.raises(PromptLabError, match="'long.csv' line 2: not readable as CSV"):
            import_bytes(raw, filename="long.csv", name="long")
    finally:
        csv.field_size_limit(limit)


SPLITS_CSV = (
    b"id,dialogue,summary,split\n"
    b"a,Hi,greeting,train\nb,Bye,farewell,train\nc,Yo,slang,validation\n"
    b"d,Hm,doubt,test\ne,Oh,surprise,test\n"
)


def test_train_validation_test_give_shots_from_train_and_evaluate_test():
    ds = import_bytes(SPLITS_CSV, filename="s.csv", name="s", id_column="id", split_column="split")
    assert [ex.id for ex in ds.pool] == ["a", "b"] and [ex.id for ex in ds.eval] == ["d", "e"]
    assert ds.by_id("c").split == "validation"  # kept under its own name, in neither
    assert ds.source == "s.csv (split train → pool, test → eval)"


def test_validation_is_evaluated_when_there_is_no_test_split():
    raw = SPLITS_CSV.replace(b",test", b",train")
    ds = import_bytes(raw, filename="s.csv", name="s", id_column="id", split_column="split")
    assert [ex.id for ex in ds.eval] == ["c"] and len(ds.pool) == 4


def test_chosen_roles_override_the_guess_and_leftover_canonical_names_are_renamed():
    raw = SPLITS_CSV.replace(b",validation", b",pool")
    roles = SplitRoles(shots=("train",), evaluated=("test",))
    ds = import_bytes(raw, filename="s.csv", name="s", split_column="split", split_roles=roles)
    assert [ex.id for ex in ds.pool] == ["1", "2"]  # not row 3, once named pool in the file
    assert ds.examples[2].split == "pool (unused)"


@pytest.mark.parametrize(
    ("values", "roles"),
    [
        (["pool", "eval"], SplitRoles(("pool",), ("eval",))),
        (["Train", "Validation", "Test"], SplitRoles(("Train",), ("Test",))),
        (["test"], SplitRoles((), ("test",))),
        (["train", "holdout"], None),  # not a usual name: only the user knows
    ],
)
def test_roles_are_guessed_for_the_usual_split_names_only(values, roles):
    assert guess_split_roles(values) == roles


def test_unknown_split_values_are_asked_for_with_every_value_listed():
    raw = SPLITS_CSV.replace(b",validation", b",holdout")
    with pytest.raises(PromptLabError, match="split column 'split'.*train, holdout, test"):
        import_bytes(raw, filename="s.csv", name="s", split_column="split")


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        (SplitRoles(("train",), ()), "whose examples are evaluated"),
        (SplitRoles(("train",), ("train",)), "cannot give the shots and be evaluated"),
        (SplitRoles(("train",), ("tset",)), "'tset' is not a value.*train, validation, test"),
    ],
)
def test_an_import_that_no_page_could_use_is_refused(roles, message):
    with pytest.raises(PromptLabError, match=message):
        import_bytes(
            SPLITS_CSV, filename="s.csv", name="s", split_column="split", split_roles=roles
        )


def test_a_split_column_with_train_only_is_refused_for_want_of_examples_to_evaluate():
    raw = SPLITS_CSV.replace(b",validation", b",train").replace(b",test", b",train")
    with pytest.raises(PromptLabError, match="whose examples are evaluated"):
        import_bytes(raw, filename="s.csv", name="s", split_column="split")
