"""Metrics beyond ROUGE (core/evaluation/metric_set.py and the modules it names): sacrebleu's BLEU
and chrF reproduced, MiniLM similarity and BERTScore against direct computations, checks, the
operator's metric files, and the registry's keys, Nones and refusals."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from core import policy
from core.errors import PromptLabError
from core.evaluation import checks, custom_metrics, length, metric_set, overlap, similarity
from core.evaluation.checks import Check, checks_from, parse_check
from core.evaluation.metric_set import ScoreInfo
from core.evaluation.scoring import RougeOptions, score_rouge

PAIRS = [  # (prediction, reference)
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("the cat sat on a mat", "the cat sat on the mat"),
    ("", "a reference the prediction misses entirely"),
    ("#Person1# asks #Person2# about the train ticket.", "Person1 wants a train ticket for today."),
    ("Hello!", "hello"),
    ("Ça coûte 20 €, dit-elle.", "Elle dit que ça coûte 20 euros."),
    ("one", "one two three four five six seven"),
]
PREDICTIONS = [p for p, _ in PAIRS]
REFERENCES = [r for _, r in PAIRS]
BUILTIN_NAMES = "rouge, bleu, chrf, similarity, bertscore, length"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPT_LAB_CACHE", str(tmp_path / "cache"))  # embeddings' disk cache
    monkeypatch.delenv(policy.VARIABLES["metrics_dir"], raising=False)


# BLEU and chrF


def test_bleu_and_chrf_are_sacrebleus_own_numbers() -> None:
    assert overlap.sentence_bleu(PREDICTIONS, REFERENCES) == [
        sacrebleu.sentence_bleu(p, [r]).score for p, r in PAIRS
    ]
    assert overlap.sentence_chrf(PREDICTIONS, REFERENCES) == [
        sacrebleu.sentence_chrf(p, [r]).score for p, r in PAIRS
    ]
    assert overlap.corpus_bleu(PREDICTIONS, REFERENCES) == (
        sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score
    )
    assert overlap.corpus_chrf(PREDICTIONS, REFERENCES) == (
        sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score
    )
    bleu = overlap.sentence_bleu(PREDICTIONS, REFERENCES)
    assert bleu[0] == pytest.approx(100.0) and bleu[2] == 0.0  # the same text; an empty answer


def test_the_registry_gives_sacrebleus_numbers_and_corpus_scores_over_referenced_items() -> None:
    references = [*REFERENCES[:-1], None]
    scores = metric_set.score_outputs(["bleu", "chrf"], PREDICTIONS, references)
    assert scores == {
        "bleu": [sacrebleu.sentence_bleu(p, [r]).score for p, r in PAIRS[:-1]] + [None],
        "chrf": [sacrebleu.sentence_chrf(p, [r]).score for p, r in PAIRS[:-1]] + [None],
    }
    assert metric_set.corpus_scores(["rouge", "bleu", "chrf"], PREDICTIONS, references) == {
        "bleu": sacrebleu.corpus_bleu(PREDICTIONS[:-1], [REFERENCES[:-1]]).score,
        "chrf": sacrebleu.corpus_chrf(PREDICTIONS[:-1], [REFERENCES[:-1]]).score,
    }
    assert metric_set.corpus_scores(["chrf"], ["a"], [None]) == {}
    assert metric_set.corpus_scores(["rouge", "length"], PREDICTIONS, REFERENCES) == {}


def test_signatures_state_sacrebleus_settings() -> None:
    assert overlap.signatures() == {
        "bleu": "nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.6.0",
        "bleu_corpus": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
        "chrf": "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0",
    }


# Similarity and BERTScore


def test_similarity_is_the_dot_product_of_mean_pooled_normalised_minilm_embeddings() -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = similarity.model_folder()
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder)

    def embed(text: str) -> torch.Tensor:
        batch = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            states = model.eval()(**batch).last_hidden_state[0]
        mask = batch["attention_mask"][0].unsqueeze(-1).float()
        return torch.nn.functional.normalize((states * mask).sum(0) / mask.sum(), dim=0)

    direct = [float(embed(p) @ embed(r)) for p, r in PAIRS]
    assert similarity.embedding_similarity(PREDICTIONS, REFERENCES) == pytest.approx(
        direct, abs=1e-6
    )
    assert similarity.embedding_similarity(["same text"], ["same text"]) == pytest.approx([1.0])


def test_bertscore_is_bert_scores_f1_on_minilms_last_layer() -> None:
    import bert_score
    from transformers import AutoConfig

    folder = str(similarity.model_folder())
    assert similarity.BERTSCORE_LAYER == AutoConfig.from_pretrained(folder).num_hidden_layers
    pairs = [(p, r) for p, r in PAIRS if p]  # bert_score itself fails on an empty text
    cands, refs = [p for p, _ in pairs], [r for _, r in pairs]
    _, _, f1 = bert_score.score(cands, refs, model_type=folder, num_layers=6)
    assert similarity.bertscore_f1(cands, refs) == pytest.approx(f1.tolist(), abs=1e-6)
    assert similarity.bertscore_f1(["the same words", "", "x"], ["the same words", "y", " "]) == (
        pytest.approx([1.0, 0.0, 0.0], abs=1e-5)
    )
    assert "not comparable" in metric_set.BUILTIN["bertscore"].summary
    assert "roberta-large (layer 17)" in metric_set.BUILTIN["bertscore"].summary
    assert "layer 6 of 6" in similarity.bertscore_signature()


def test_importing_the_metric_set_loads_no_model_library() -> None:
    code = (
        "import sys, core.evaluation.metric_set; "
        "print(sorted(m for m in ('torch', 'transformers', 'bert_score') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Checks

KIND_CASES = [
    (Check("e", "equals", "Yes"), " Yes \n", True),
    (Check("e", "equals", "Yes"), "yes", False),
    (Check("c", "contains", "#Person"), "#Person1#: hi", True),
    (Check("c", "contains", "#Person"), "hi #person", False),
    (Check("s", "starts_with", "#Person1#"), "  #Person1#: hi", True),
    (Check("s", "starts_with", "#Person1#"), "So #Person1#: hi", False),
    (Check("r", "regex", r"^\w"), "  hello", True),
    (Check("r", "regex", r"^\w"), "!hello", False),
    (Check("m", "max_words", "3"), "one two\nthree", True),
    (Check("m", "max_words", "3"), "one two three four", False),
    (Check("m", "max_words", "0"), "  ", True),
    (Check("j", "json"), ' {"a": [1, 2]} ', True),
    (Check("j", "json"), "{a: 1}", False),
    (Check("j", "json"), "[" * 100_000, False),  # too deep for the parser: not JSON, no crash
]


@pytest.mark.parametrize("check, prediction, expected", KIND_CASES)
def test_each_kind_of_check_and_its_negation(check: Check, prediction: str, expected: bool) -> None:
    assert check.passes(prediction) is expected
    negated = Check(check.name, check.kind, check.value, negate=True)
    assert negated.passes(prediction) is (not expected)


@pytest.mark.parametrize(
    "text, check",
    [
        ("short=max_words:40", Check("short", "max_words", "40")),
        ("no_turns=not contains:#Person", Check("no_turns", "contains", "#Person", True)),
        ("opens=starts_with:#Person1#", Check("opens", "starts_with", "#Person1#")),
        ("ok=regex:^\\w", Check("ok", "regex", r"^\w")),
        ("valid=json", Check("valid", "json")),
        ("Not-JSON=not json", Check("Not-JSON", "json", negate=True)),
        ("link=contains:http://x", Check("link", "contains", "http://x")),  # later colons kept
    ],
)
def test_parse_check_reads_the_command_line_forms(text: str, check: Check) -> None:
    assert parse_check(text) == check
    assert Check.from_dict(check.to_dict()) == check


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "x=foo:1",
            "Check 'x' has unknown kind 'foo'; use one of equals, contains, starts_with, "
            "regex, max_words, json.",
        ),
        (
            "bad name=json",
            "A check's name uses letters, digits, _ and - (at most 40); got 'bad name'.",
        ),
        ("=json", "A check's name uses letters"),
        ("r=regex:(", "Check 'r' has a pattern that does not compile: missing ) at position 1."),
        (
            "n=max_words:forty",
            "Check 'n': max_words takes a whole number of words, e.g. 40; got 'forty'.",
        ),
        (
            "n=max_words:-1",
            "Check 'n': max_words takes a whole number of words, e.g. 40; got '-1'.",
        ),
        ("n=max_words:2.5", "Check 'n': max_words takes a whole number"),
        ("n=max_words:" + "9" * 5000, "Check 'n': max_words takes a whole number"),
        ("j=json:x", "Check 'j' is json, which takes no value; got 'x'."),
        ("c=contains:", "Check 'c' (contains) needs a value"),
        ("short max_words 40", "Write a check as NAME=KIND:VALUE"),
    ],
)
def test_parse_check_refuses_with_a_sentence(text: str, message: str) -> None:
    with pytest.raises(PromptLabError) as refused:
        parse_check(text)
    assert str(refused.value).startswith(message)


def test_a_catastrophic_pattern_times_out_as_an_error_naming_the_check() -> None:
    slow = Check("slow", "regex", "(a|aa)+$")
    with pytest.raises(PromptLabError, match=r"^Check 'slow' took over 0.05 s on one output"):
        slow.passes("a" * 40 + "b", timeout=0.05)
    with pytest.raises(PromptLabError, match=r"^On example '1': Check 'slow' took over 1 s"):
        metric_set.score_outputs([], ["fine", "a" * 40 + "b"], [None, None], checks=[slow])


def test_checks_from_dicts_refuse_unknown_fields_and_repeated_names() -> None:
    dicts = [{"name": "a", "kind": "json"}, {"name": "b", "kind": "contains", "value": "x"}]
    assert checks_from(dicts) == (Check("a", "json"), Check("b", "contains", "x"))
    with pytest.raises(PromptLabError, match="unknown: pattern"):
        Check.from_dict({"name": "a", "kind": "regex", "pattern": "x"})
    with pytest.raises(PromptLabError, match="needs a name and a kind"):
        Check.from_dict({"name": "a"})
    with pytest.raises(PromptLabError, match="used more than once: a"):
        checks_from([*dicts, {"name": "a", "kind": "equals"}])


# The operator's metrics

GOOD = '''"""Share of the reference's words found in the output.

More words that are not the summary."""
LOW = 0
HIGH = 1


def score(prediction, reference, example):
    words = reference.split()
    return sum(word in prediction.split() for word in words) / len(words)
'''


def metrics_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> Path:
    folder = tmp_path / "operator_metrics"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    monkeypatch.setenv("PROMPT_LAB_METRICS_DIR", str(folder))
    return folder


def test_only_good_metric_files_are_offered_and_the_rest_are_named(tmp_path, monkeypatch) -> None:
    metrics_folder(
        tmp_path,
        monkeypatch,
        {
            "good.py": GOOD,
            "broken.py": "import no_such_module_for_prompt_lab\n",
            "syntax.py": "def score(:\n",
            "noscore.py": "X = 1\n",
            "Bad-Name.py": GOOD,
            "badlow.py": GOOD.replace("LOW = 0", "LOW = 'zero'"),
            "notes.txt": "not python",
        },
    )
    assert list(custom_metrics.available()) == ["good"]
    assert list(metric_set.available()) == [*metric_set.BUILTIN, "custom:good"]
    assert metric_set.available()["custom:good"] == metric_set.MetricDef(
        "custom:good", "Share of the reference's words found in the output.", ("custom:good",)
    )
    problems = custom_metrics.problems()
    assert problems == [
        "Bad-Name.py: not offered; a metric file is named with lower-case letters, digits and _ "
        "(at most 40), e.g. word_overlap.py.",
        "badlow.py: LOW must be a finite number or None; got 'zero'.",
        "broken.py: could not be loaded (ModuleNotFoundError: No module named "
        "'no_such_module_for_prompt_lab').",
        "noscore.py: defines no function score(prediction, reference, example); not offered.",
        "syntax.py: could not be loaded (SyntaxError: invalid syntax (syntax.py, line 1)).",
    ]
    assert not any(str(tmp_path) in p or "Traceback" in p for p in problems)
    assert metric_set.info("custom:good") == ScoreInfo(
        "custom:good", "good (custom)", 0.0, 1.0, True, False, True, False
    )
    with pytest.raises(PromptLabError, match="could not be loaded"):
        metric_set.parse_metrics("rouge,custom:broken")


def test_an_operator_metric_scores_each_example_and_skips_those_without_reference(
    tmp_path, monkeypatch
) -> None:
    folder = metrics_folder(tmp_path, monkeypatch, {"good.py": GOOD})
    assert metric_set.parse_metrics("custom:good,rouge") == ("custom:good", "rouge")
    scores = metric_set.score_outputs(["custom:good"], ["a b", "a", "c"], ["a b c d", None, "c"])
    assert scores == {"custom:good": [0.5, None, 1.0]}
    (folder / "good.py").write_text("NEEDS_REFERENCE = False\ndef score(p, r, e):\n    return 2\n")
    scores = metric_set.score_outputs(["custom:good"], ["a b", "a"], ["a b c d", None])
    assert scores == {"custom:good": [2.0, 2.0]}  # edited at once: imported again
    assert not (folder / "__pycache__").exists()  # nothing written into the operator's folder


def test_a_failing_operator_score_is_an_error_naming_metric_and_example(tmp_path, monkeypatch):
    folder = metrics_folder(
        tmp_path,
        monkeypatch,
        {
            "raises.py": "def score(p, r, e):\n    if e['id'] == 'b':\n"
            "        raise ValueError('bad input ' * 50)\n    return 1\n",
            "nan.py": "NEEDS_REFERENCE = False\ndef score(p, r, e):\n    return float('nan')\n",
            "text.py": "def score(p, r, e):\n    return '0.5'\n",
        },
    )
    examples = [
        {"id": "a", "input": "", "reference": "x"},
        {"id": "b", "input": "", "reference": "y"},
    ]
    with pytest.raises(PromptLabError) as failed:
        metric_set.score_outputs(["custom:raises"], ["x", "y"], ["x", "y"], examples=examples)
    message = str(failed.value)
    assert message.startswith("Metric custom:raises on example 'b' failed: ValueError: bad input ")
    assert message.endswith("….") and len(message) < 260 and "Traceback" not in message
    with pytest.raises(PromptLabError, match=r"^Metric custom:nan on example '0' returned nan; "):
        metric_set.score_outputs(["custom:nan"], ["x"], [None])  # needs no reference: scored
    with pytest.raises(PromptLabError, match="custom:text on example '0' returned str"):
        metric_set.score_outputs(["custom:text"], ["x"], ["x"])
    assert str(folder) not in message


def test_no_metrics_folder_means_no_operator_metrics(tmp_path, monkeypatch) -> None:
    assert custom_metrics.available() == {} and custom_metrics.problems() == []
    assert metric_set.available() == metric_set.BUILTIN
    monkeypatch.setenv("PROMPT_LAB_METRICS_DIR", str(tmp_path / "missing"))
    assert policy.current().metrics_dir == tmp_path / "missing"
    assert custom_metrics.available() == {}
    assert custom_metrics.problems() == [
        "PROMPT_LAB_METRICS_DIR is set but names no folder; no operator metrics are offered."
    ]


# The registry


def test_score_outputs_gives_none_without_reference_but_still_runs_checks() -> None:
    predictions = ["#Person1# buys a ticket.", "It rains.", "They talk about the weather today."]
    references = ["#Person1# buys a train ticket.", None, "The two talk about today's weather."]
    short = Check("short", "max_words", "4")
    metrics = ["rouge", "bleu", "chrf", "similarity", "length"]
    scores = metric_set.score_outputs(metrics, predictions, references, checks=[short])
    assert (
        list(scores)
        == metric_set.score_keys(metrics, [short])
        == [
            *("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "similarity", "words"),
            *("length_ratio", "check:short"),
        ]
    )
    for key in ("rouge1", "bleu", "chrf", "similarity", "length_ratio"):
        assert scores[key][1] is None and None not in (scores[key][0], scores[key][2])
    assert scores["words"] == [4.0, 2.0, 6.0] and scores["length_ratio"] == [0.8, None, 1.0]
    assert scores["check:short"] == [1.0, 1.0, 0.0]
    rouge = score_rouge(
        [predictions[0], predictions[2]], [references[0], references[2]], options=RougeOptions.lab()
    )
    for key, values in rouge.per_example.items():
        assert scores[key] == [values[0], None, values[1]]


def test_score_outputs_takes_the_stemmer_setting_and_handles_no_references() -> None:
    plain = score_rouge(["cats running"], ["cat runs"]).per_example
    scores = metric_set.score_outputs(
        ["rouge"], ["cats running"], ["cat runs"], rouge=RougeOptions(use_stemmer=False)
    )
    assert scores == {key: list(values) for key, values in plain.items()}
    assert metric_set.score_outputs(["rouge", "bertscore"], ["a", "b"], [None, None]) == {
        key: [None, None] for key in ("rouge1", "rouge2", "rougeL", "rougeLsum", "bertscore")
    }
    assert metric_set.score_outputs(["bleu"], [], []) == {"bleu": []}


def test_parse_metrics_validates_and_keeps_order() -> None:
    assert metric_set.parse_metrics("rouge, chrf,similarity") == ("rouge", "chrf", "similarity")
    assert metric_set.parse_metrics(["BLEU", "bleu", "length"]) == ("bleu", "length")
    assert metric_set.DEFAULT_METRICS == ("rouge",)


@pytest.mark.parametrize(
    "value, message",
    [
        ("", f"Choose at least one metric, e.g. rouge; known: {BUILTIN_NAMES}."),
        (" , ", f"Choose at least one metric, e.g. rouge; known: {BUILTIN_NAMES}."),
        ([], "Choose at least one metric"),
        ("rouge,bogus", f"Unknown metric 'bogus'; choose from {BUILTIN_NAMES}."),
        ("custom:mine", f"Unknown metric 'custom:mine'; choose from {BUILTIN_NAMES}."),
        (
            "meteor",
            "METEOR is not available: it needs nltk's WordNet data, which no package on "
            "PyPI ships (the `nltkdata` sdist is empty)",
        ),
    ],
)
def test_parse_metrics_refuses_with_a_sentence(value, message: str) -> None:
    with pytest.raises(PromptLabError) as refused:
        metric_set.parse_metrics(value)
    assert str(refused.value).startswith(message)


def test_each_score_key_says_how_to_read_it() -> None:
    assert metric_set.info("rougeL") == ScoreInfo(
        "rougeL", "ROUGE-L", 0.0, 1.0, True, False, True, False
    )
    assert metric_set.info("bleu") == ScoreInfo("bleu", "BLEU", 0.0, 100.0, True, False, True, True)
    assert metric_set.info("chrf").label == "chrF" and metric_set.info("chrf").corpus
    assert metric_set.info("similarity").low == -1.0
    assert metric_set.info("bertscore").label == "BERTScore F1"
    assert metric_set.info("words") == ScoreInfo(
        "words", "Words", 0.0, None, None, False, False, False
    )
    assert metric_set.info("length_ratio") == ScoreInfo(
        "length_ratio", "Length ratio", 0.0, None, None, False, True, False
    )
    assert metric_set.info("check:no_turns") == ScoreInfo(
        "check:no_turns", "Check no_turns", 0.0, 1.0, True, True, False, False
    )
    keys = [key for metric in metric_set.BUILTIN.values() for key in metric.keys]
    assert [metric_set.info(key).key for key in keys] == keys
    for key in ("nope", "custom:Bad Name", "check:bad name"):
        with pytest.raises(PromptLabError, match=f"Unknown score '{key}'"):
            metric_set.info(key)
    # Stored scores of an operator metric no longer offered stay readable, with no direction.
    assert metric_set.info("custom:absent") == ScoreInfo(
        "custom:absent", "absent (custom, no longer offered)", None, None, None, False, False, False
    )


@pytest.mark.parametrize("module", [metric_set, overlap, similarity, length, checks])
def test_the_docstring_examples_run(module) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
