"""Tests for the local ROUGE metric (against rouge_score itself) and for core.evaluation.scoring."""

import doctest
import importlib.util
import socket
from pathlib import Path

import numpy as np
import pytest
from rouge_score import rouge_scorer, scoring

from core.errors import PromptLabError
from core.evaluation.scoring import (
    ROUGE_METRIC_DIR,
    ROUGE_TYPES,
    Aggregate,
    RougeOptions,
    load_rouge,
    mean_bootstrap_ci,
    score_rouge,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# (prediction, reference) pairs where tokenisation, emptiness or sentence splitting matter.
TRICKY_PAIRS: list[tuple[str, str]] = [
    ("", "the cat sat"),  # empty prediction
    ("the cat sat", ""),  # empty reference
    ("", ""),  # both empty
    ("!!! ... ?", "?!, ;"),  # punctuation only: no tokens at all
    ("你好世界", "你好世界"),  # identical, but nothing in [a-z0-9]
    ("Привет мир", "Привет мир"),
    ("café crème", "cafe creme"),  # accents split words: "caf", "cr", "me"
    ("café crème brûlée", "café crème"),
    ("the cat sat.\nthe dog ran.", "the dog ran.\nthe cat sat."),
    ("the cat sat. the dog ran.", "the dog ran. the cat sat."),
    ("the the the the", "the cat"),  # clipped counts for repeated tokens
    ("The CAT Sat", "the cat sat"),  # case is folded
    ("he was running fast", "he runs fast"),  # differs with stemming only
    ("Amanda baked cookies and will bring Jerry some tomorrow.", "Amanda will bring cookies."),
]

MULTI_REFERENCE_PAIRS: list[tuple[str, list[str]]] = [
    ("the cat sat on the mat", ["the dog barked", "a cat sat on a mat"]),
    ("hello there", ["hello there", "general kenobi"]),
    ("", ["", "something"]),
    ("he was running", ["he runs", "she walked"]),
]


def _scorer_fmeasures(
    pairs: list[tuple[str, str]] | list[tuple[str, list[str]]],
    *,
    use_stemmer: bool = False,
    rouge_types: tuple[str, ...] = ROUGE_TYPES,
) -> dict[str, list[float]]:
    """F-measures straight from rouge_score, the library the metric wraps."""
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    per_pair = [
        scorer.score_multi(ref, pred) if isinstance(ref, list) else scorer.score(ref, pred)
        for pred, ref in pairs
    ]
    return {name: [score[name].fmeasure for score in per_pair] for name in rouge_types}


def _metric_fmeasures(pairs: list, **kwargs: object) -> dict[str, list[float]]:
    predictions = [pred for pred, _ in pairs]
    references = [ref for _, ref in pairs]
    return load_rouge().compute(
        predictions=predictions, references=references, use_aggregator=False, **kwargs
    )


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    """Forty generated pairs with varied overlap, so bootstrap intervals have width."""
    rng = np.random.default_rng(7)
    words = np.array("the a cat dog sat ran on mat park quickly said hello will bring".split())
    predictions = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(40)]
    references = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(40)]
    return predictions, references


@pytest.fixture
def restore_numpy_global_state():
    state = np.random.get_state()
    yield
    np.random.set_state(state)


# --- the local metric reproduces rouge_score ---------------------------------------------------


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_metric_matches_rouge_score_on_tricky_pairs(use_stemmer: bool) -> None:
    expected = _scorer_fmeasures(TRICKY_PAIRS, use_stemmer=use_stemmer)
    assert _metric_fmeasures(TRICKY_PAIRS, use_stemmer=use_stemmer) == expected


def test_metric_takes_the_best_reference_per_type_like_score_multi() -> None:
    expected = _scorer_fmeasures(MULTI_REFERENCE_PAIRS)
    assert _metric_fmeasures(MULTI_REFERENCE_PAIRS) == expected
    assert expected["rouge1"][:2] == [pytest.approx(2 / 3), 1.0]


def test_metric_honours_rouge_types_and_order() -> None:
    types = ("rougeLsum", "rouge3")
    result = _metric_fmeasures(TRICKY_PAIRS, rouge_types=list(types))
    assert list(result) == list(types)
    assert result == _scorer_fmeasures(TRICKY_PAIRS, rouge_types=types)


def test_metric_uses_a_custom_tokenizer() -> None:
    # Whitespace tokens make identical non-Latin texts match, which the default cannot.
    result = _metric_fmeasures([("你好 世界", "你好 世界")], tokenizer=str.split)
    assert result == {name: [1.0] for name in ROUGE_TYPES}


def test_empty_texts_score_zero() -> None:
    result = _metric_fmeasures(TRICKY_PAIRS[:4])
    assert all(scores == [0, 0, 0, 0] for scores in result.values())


def test_identical_non_latin_texts_score_zero_with_the_default_tokenizer() -> None:
    # The default tokenizer replaces everything outside [a-z0-9] with spaces, so these
    # texts have no tokens and the F-measure of two empty token lists is 0, not 1.
    result = _metric_fmeasures([("你好世界", "你好世界"), ("Привет мир", "Привет мир")])
    assert result == {name: [0.0, 0.0] for name in ROUGE_TYPES}


def test_accents_split_words_under_the_default_tokenizer() -> None:
    result = _metric_fmeasures([("café crème", "cafe creme"), ("café crème", "café crème")])
    assert result["rouge1"] == [0.0, 1.0]


def test_rouge_lsum_differs_from_rouge_l_only_across_newlines() -> None:
    with_newlines = ("the cat sat.\nthe dog ran.", "the dog ran.\nthe cat sat.")
    one_line = ("the cat sat. the dog ran.", "the dog ran. the cat sat.")
    result = _metric_fmeasures([with_newlines, one_line], rouge_types=["rougeL", "rougeLsum"])
    assert result["rougeLsum"][0] == 1.0 and result["rougeL"][0] == 0.5
    assert result["rougeLsum"][1] == result["rougeL"][1] == 0.5


def test_case_is_ignored_and_repeated_tokens_are_clipped() -> None:
    result = _metric_fmeasures([("The CAT Sat", "the cat sat"), ("the the the the", "the cat")])
    assert result["rouge1"] == [1.0, pytest.approx(1 / 3)]


def test_stemming_matches_inflected_forms_only_when_on() -> None:
    pair = [("he was running fast", "he runs fast")]
    plain = _metric_fmeasures(pair)["rouge1"][0]
    stemmed = _metric_fmeasures(pair, use_stemmer=True)["rouge1"][0]
    assert plain == pytest.approx(4 / 7) and stemmed == pytest.approx(6 / 7)


def test_aggregate_is_rouge_score_bootstrap_mid_under_the_same_seed(
    corpus: tuple[list[str], list[str]], restore_numpy_global_state: None
) -> None:
    import evaluate

    predictions, references = corpus
    metric = evaluate.load(str(ROUGE_METRIC_DIR), seed=1234, keep_in_memory=True)
    result = metric.compute(predictions=predictions, references=references)

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES))
    aggregator = scoring.BootstrapAggregator()
    for prediction, reference in zip(predictions, references, strict=True):
        aggregator.add_scores(scorer.score(reference, prediction))
    np.random.seed(1234)  # what evaluate does around every compute
    expected = {name: agg.mid.fmeasure for name, agg in aggregator.aggregate().items()}
    assert result == expected


def test_unseeded_aggregate_repeats_because_evaluate_fixes_a_seed_at_load(
    corpus: tuple[list[str], list[str]],
) -> None:
    # Without seed=, evaluate takes one from numpy's global state when the module is built
    # and restores that state after each compute, so one instance always gives the same answer.
    predictions, references = corpus
    metric = load_rouge()
    first = metric.compute(predictions=predictions, references=references)
    assert metric.compute(predictions=predictions, references=references) == first


def test_canonical_aggregate_is_close_to_but_not_the_plain_mean(
    corpus: tuple[list[str], list[str]], restore_numpy_global_state: None
) -> None:
    import evaluate

    predictions, references = corpus
    report = score_rouge(predictions, references)
    # A fixed seed: unseeded, the bootstrap's median can land on the plain mean by chance,
    # depending on what the rest of the process drew from numpy's global state before.
    metric = evaluate.load(str(ROUGE_METRIC_DIR), seed=1234, keep_in_memory=True)
    canonical = metric.compute(predictions=predictions, references=references)
    for name in ROUGE_TYPES:
        mean = report.aggregates[name].mean
        assert canonical[name] != mean
        assert canonical[name] == pytest.approx(mean, abs=0.02)


def test_metric_docstring_examples_run() -> None:
    spec = importlib.util.spec_from_file_location(
        "rouge_metric_source", ROUGE_METRIC_DIR / "rouge.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)  # the example loads the metric by its path from the repository root
        results = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.attempted >= 7 and results.failed == 0


def test_metric_loads_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluate

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access in a test")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_EVALUATE_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    metric = evaluate.load(str(ROUGE_METRIC_DIR), keep_in_memory=True)
    assert metric.compute(predictions=["hi there"], references=["hi there"])["rouge1"] == 1.0


# --- score_rouge -------------------------------------------------------------------------------


def test_report_holds_the_metric_scores_per_example(corpus: tuple[list[str], list[str]]) -> None:
    predictions, references = corpus
    report = score_rouge(predictions, references)
    expected = _scorer_fmeasures(list(zip(predictions, references, strict=True)))
    assert report.per_example == {name: tuple(values) for name, values in expected.items()}
    assert report.n == 40 and report.options == RougeOptions()


def test_report_mean_is_the_plain_mean_inside_its_interval(
    corpus: tuple[list[str], list[str]],
) -> None:
    report = score_rouge(*corpus)
    for name, values in report.per_example.items():
        aggregate = report.aggregates[name]
        assert aggregate.mean == float(np.mean(values))
        assert aggregate.ci_low < aggregate.mean < aggregate.ci_high


def test_interval_is_a_percentile_bootstrap_from_the_seeded_generator() -> None:
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.0, 0.55, 0.6, 0.2])
    rng = np.random.default_rng(11)
    means = [values[rng.integers(0, len(values), size=len(values))].mean() for _ in range(500)]
    low, high = np.percentile(means, [5.0, 95.0])
    result = mean_bootstrap_ci(values, confidence=0.9, resamples=500, seed=11)
    assert result == Aggregate(mean=float(values.mean()), ci_low=float(low), ci_high=float(high))


def test_same_seed_same_interval_and_another_seed_another(
    corpus: tuple[list[str], list[str]],
) -> None:
    first = score_rouge(*corpus, seed=3)
    assert score_rouge(*corpus, seed=3) == first
    other = score_rouge(*corpus, seed=4)
    assert other.per_example == first.per_example
    assert other.aggregates["rouge1"] != first.aggregates["rouge1"]
    assert other.aggregates["rouge1"].mean == first.aggregates["rouge1"].mean


def test_wider_confidence_gives_a_wider_interval() -> None:
    values = np.linspace(0, 1, 25)
    narrow = mean_bootstrap_ci(values, confidence=0.5)
    wide = mean_bootstrap_ci(values, confidence=0.99)
    assert wide.ci_low < narrow.ci_low and narrow.ci_high < wide.ci_high


def test_single_example_interval_collapses_to_its_score() -> None:
    report = score_rouge(["the cat sat"], ["the cat sat on the mat"])
    aggregate = report.aggregates["rouge1"]
    assert aggregate.mean == aggregate.ci_low == aggregate.ci_high == pytest.approx(2 / 3)


def test_lab_options_stem_and_change_the_scores() -> None:
    assert RougeOptions.lab() == RougeOptions(use_stemmer=True, rouge_types=ROUGE_TYPES)
    pair = (["he was running fast"], ["he runs fast"])
    plain = score_rouge(*pair).aggregates["rouge1"].mean
    stemmed = score_rouge(*pair, options=RougeOptions.lab()).aggregates["rouge1"].mean
    assert plain == pytest.approx(4 / 7) and stemmed == pytest.approx(6 / 7)


def test_chosen_rouge_types_are_the_only_ones_reported() -> None:
    report = score_rouge(["a b c"], ["a b d"], options=RougeOptions(rouge_types=["rouge2"]))
    assert report.options.rouge_types == ("rouge2",)
    assert list(report.per_example) == list(report.aggregates) == ["rouge2"]
    assert report.per_example["rouge2"] == (0.5,)


def test_mixed_single_and_multiple_references_score_like_each_alone() -> None:
    predictions = ["the cat sat on the mat", "he was running"]
    mixed = score_rouge(predictions, ["a cat sat on a mat", ["she walked", "he runs"]])
    expected = _scorer_fmeasures(
        [(predictions[0], "a cat sat on a mat"), (predictions[1], ["she walked", "he runs"])]
    )
    assert mixed.per_example == {name: tuple(values) for name, values in expected.items()}


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ([], [], "Nothing to score"),
        (["a", "b", "c"], ["a", "b"], "Got 3 predictions but 2 references"),
        (["a", "b", "c"], ["a", None, []], "2 of 3 predictions lack a reference"),
        (["a", None], ["a", "b"], "1 of 2 predictions are not text"),
        (["a", "b"], ["a", ["b", 3]], "Every reference must be text"),
        ("a prediction", "a reference", "not a single string"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(
    predictions: list, references: list, message: str
) -> None:
    with pytest.raises(PromptLabError, match=message):
        score_rouge(predictions, references)


def test_empty_reference_text_is_scored_not_refused() -> None:
    report = score_rouge(["the cat"], [""])
    assert report.per_example["rouge1"] == (0.0,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rouge_types": ["rougeLSum"]}, "Unknown ROUGE type 'rougeLSum'"),
        ({"rouge_types": ["rouge10", "rouge0"]}, "Unknown ROUGE type 'rouge10', 'rouge0'"),
        ({"rouge_types": []}, "at least one ROUGE type"),
        ({"rouge_types": ["rouge1", "rouge1"]}, "listed twice"),
    ],
)
def test_bad_rouge_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(PromptLabError, match=message):
        RougeOptions(**options)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"confidence": 1.0}, "confidence must be between 0 and 1"),
        ({"confidence": 0.0}, "confidence must be between 0 and 1"),
        ({"resamples": 0}, "resamples must be at least 1"),
    ],
)
def test_bad_bootstrap_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(PromptLabError, match=message):
        score_rouge(["a"], ["a"], **settings)
    with pytest.raises(PromptLabError, match=message):
        mean_bootstrap_ci([0.5], **settings)


@pytest.mark.parametrize(
    ("values", "message"),
    [([], "at least one score"), ([0.5, float("nan")], "finite"), ([[0.1, 0.2]], "flat list")],
)
def test_bootstrap_refuses_values_it_cannot_average(values: list, message: str) -> None:
    with pytest.raises(PromptLabError, match=message):
        mean_bootstrap_ci(values)
