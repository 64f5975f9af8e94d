"""Uploads before import (preview, columns, guessed mapping) and datasets as tables."""

import csv
from datetime import datetime

import pandas as pd
import pytest

from core.datasets.data import Dataset, Example, SplitRoles
from core.datasets.files import (
    LINE,
    ColumnMapping,
    default_name,
    examples_frame,
    guess_mapping,
    import_problems,
    import_upload,
    preview_upload,
    search_examples,
    summaries_frame,
    upload_split_values,
)
from core.errors import PromptLabError
from storage.queries import DatasetSummary

CSV = b"ID,Dialogue,Summary,split\na,Hi,greeting,pool\nb,Bye,farewell,eval\nc,Yo,slang,eval\n"


def test_preview_reads_columns_and_first_rows_with_their_lines():
    found = preview_upload(CSV, filename="talk.csv", limit=2)
    assert found.columns == ("ID", "Dialogue", "Summary", "split")
    assert found.total_rows == 3
    assert list(found.rows[LINE]) == [2, 3]
    assert list(found.rows["Dialogue"]) == ["Hi", "Bye"]
    assert found.problems == ()


def test_preview_keeps_a_quoted_multiline_cell_on_its_starting_line():
    raw = b'input,reference\n"two\nlines",r1\nthree,r2\n'
    found = preview_upload(raw, filename="m.csv")
    assert list(found.rows[LINE]) == [2, 4]


def test_preview_of_jsonl_lists_unreadable_lines_and_shows_values_as_text():
    raw = b'{"input": "a", "n": 3}\n[1]\n{"input": "b", "meta": {"k": 1}}\n'
    found = preview_upload(raw, filename="d.jsonl")
    assert found.columns == ("input", "n", "meta")
    assert found.problems == ("line 2: a JSON object was expected",)
    assert found.rows["n"].tolist() == ["3", pd.NA]
    assert found.rows["meta"].tolist() == [pd.NA, '{"k": 1}']


@pytest.mark.parametrize(
    ("raw", "filename", "message"),
    [
        (b"a,b\n1,2\n", "data.xlsx", "only .csv, .tsv and .jsonl"),
        (b"\xff\xfea,b", "data.csv", "not UTF-8"),
        (b"input,reference\n", "empty.csv", "no data rows"),
    ],
)
def test_unreadable_uploads_are_refused_with_a_message(raw, filename, message):
    with pytest.raises(PromptLabError, match=message):
        preview_upload(raw, filename=filename)


def test_mapping_is_guessed_from_column_names_ignoring_case():
    assert guess_mapping(["ID", "Dialogue", "Summary", "split"]) == ColumnMapping(
        input="Dialogue", reference="Summary", id="ID", split="split"
    )
    assert guess_mapping(["body", "notes"]) == ColumnMapping(input="body")


def test_one_column_for_two_roles_is_refused():
    with pytest.raises(PromptLabError, match="both as the input and as the id"):
        ColumnMapping(input="text", id="text").check()


def test_import_upload_uses_the_mapping_and_the_name():
    mapping = ColumnMapping(input="Dialogue", reference="Summary", id="ID", split="split")
    dataset = import_upload(CSV, filename="talk.csv", name=" talk ", mapping=mapping)
    assert dataset.name == "talk"
    assert dataset.examples[0] == Example("a", "Hi", "greeting", "pool")
    assert [ex.id for ex in dataset.eval] == ["b", "c"]


def test_upload_split_values_are_listed_in_order_of_first_appearance():
    raw = CSV.replace(b",pool\n", b",train\n") + b"d,Oh,surprise,\n"
    assert upload_split_values(raw, filename="t.csv", column="split") == ["train", "eval"]


def test_import_upload_gives_chosen_split_values_their_roles():
    raw = CSV.replace(b",pool\n", b",dev\n").replace(b",eval\n", b",holdout\n")
    mapping = ColumnMapping(input="Dialogue", reference="Summary", id="ID", split="split")
    roles = SplitRoles(shots=("holdout",), evaluated=("dev",))
    dataset = import_upload(raw, filename="t.csv", name="t", mapping=mapping, split_roles=roles)
    assert [ex.id for ex in dataset.pool] == ["b", "c"] and [ex.id for ex in dataset.eval] == ["a"]


def test_import_without_a_reference_column_needs_no_reference():
    dataset = import_upload(
        b"body\nfirst\nsecond\n", filename="t.csv", name="t", mapping=ColumnMapping("body")
    )
    assert [(ex.id, ex.reference) for ex in dataset.examples] == [("1", None), ("2", None)]


def test_import_problems_split_into_headline_and_lines():
    raw, mapping = b"input,reference\na,\n,b\n", ColumnMapping("input", "reference")
    with pytest.raises(PromptLabError) as caught:
        import_upload(raw, filename="bad.csv", name="bad", mapping=mapping)
    head, problems = import_problems(str(caught.value))
    assert head == "'bad.csv' was not imported: 2 row(s) have problems."
    assert problems == ["line 2: empty or missing reference", "line 3: empty or missing input"]
    assert import_problems("just one line") == ("just one line", [])


def test_empty_name_is_refused():
    with pytest.raises(PromptLabError, match="Give the dataset a name"):
        import_upload(CSV, filename="talk.csv", name="  ", mapping=ColumnMapping("Dialogue"))


def test_default_name_is_the_file_stem():
    assert default_name("my data.v2.jsonl") == "my data.v2"


def test_examples_table_search_ignores_case_and_matches_id_input_or_reference():
    dataset = Dataset(
        "d", (Example("a1", "Hello there", "greeting"), Example("b2", "Bye (now)", None, "eval"))
    )
    frame = examples_frame(dataset)
    assert list(frame.columns) == ["id", "split", "input", "reference"]
    assert list(search_examples(frame, "HELLO")["id"]) == ["a1"]
    assert list(search_examples(frame, "(now)")["id"]) == ["b2"]  # not a regular expression
    assert list(search_examples(frame, "b2")["id"]) == ["b2"]
    assert list(search_examples(frame, "GREET")["id"]) == ["a1"]
    assert len(search_examples(frame, "  ")) == 2


def test_summaries_table_spells_out_the_splits():
    created = datetime(2026, 1, 1)
    summary = DatasetSummary("d", "d.csv", 3, 2, {"pool": 1, "eval": 2}, created)
    frame = summaries_frame([summary, DatasetSummary("e", "", 0, 0, {}, created)])
    assert list(frame["splits"]) == ["pool 1, eval 2", "none"]
    assert list(frame["with reference"]) == [2, 0]


def test_an_unreadable_csv_is_refused_in_the_preview_not_passed_over():
    limit = csv.field_size_limit(1000)  # a cell past the csv limit, without a 64 MiB file
    try:
        with pytest.raises(PromptLabError, match="'big.csv' line 2: not readable as CSV"):
            preview_upload(b'input,reference\n"' + b"x" * 2000 + b'",r\n', filename="big.csv")
    finally:
        csv.field_size_limit(limit)
