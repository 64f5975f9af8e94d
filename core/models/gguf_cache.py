"""A disk cache of GGUF models converted to plain safetensors, keyed by the GGUF file's hash.

transformers dequantises a GGUF file on every load (about 25 s for the embedded model) and
refuses to `save_pretrained` the result, although its weights are then ordinary tensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.policy import cache_root

log = logging.getLogger(__name__)

MARKER = "prompt_lab_cache.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_dir(sha: str, cache_dir: Path | None = None) -> Path:
    # The transformers version is in the key: a new release may convert differently.
    return cache_root(cache_dir) / "models" / f"{sha[:16]}-transformers-{transformers.__version__}"


def load(path: Path, *, cache_dir: Path | None = None) -> tuple[Any, Any, str, bool]:
    """(model, tokenizer, sha256 of the file, whether it came from the cache)."""
    sha = file_sha256(path)
    entry = entry_dir(sha, cache_dir)
    if _is_complete(entry, sha):
        try:
            tokenizer = AutoTokenizer.from_pretrained(entry)
            model = AutoModelForCausalLM.from_pretrained(entry)
            return model, tokenizer, sha, True
        except Exception:  # a damaged entry is rebuilt, never trusted
            log.warning("cached conversion at %s is unreadable; converting again", entry)
            shutil.rmtree(entry, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    _forget_quantization(model)
    try:
        _store(model, tokenizer, entry, sha, source=path)
    except OSError as exc:  # a full or read-only disk costs speed next time, nothing else
        log.warning("could not cache the converted model in %s: %s", entry, exc)
    return model, tokenizer, sha, False


def load_tokenizer(path: Path, *, cache_dir: Path | None = None) -> tuple[Any, Any, str]:
    """(tokenizer, config, sha256 of the file) without the weights, from the cache if there."""
    from transformers import AutoConfig

    sha = file_sha256(path)
    entry = entry_dir(sha, cache_dir)
    if _is_complete(entry, sha):
        try:
            return AutoTokenizer.from_pretrained(entry), AutoConfig.from_pretrained(entry), sha
        except Exception:  # a damaged entry: read the GGUF file itself
            log.warning("cached conversion at %s is unreadable; reading the GGUF file", entry)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    return tokenizer, config, sha


def _is_complete(entry: Path, sha: str) -> bool:
    marker = entry / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("sha256") == sha
    except (OSError, ValueError):
        return False


def _store(model: Any, tokenizer: Any, entry: Path, sha: str, *, source: Path) -> None:
    """Save the dequantised weights; written to a temporary folder and renamed, so never half."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=entry.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({"sha256": sha, "source": str(source)}))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _forget_quantization(model: Any) -> None:
    """The weights are plain tensors after loading; only these references make saving refuse."""
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if "is_quantized" in vars(model):
        model.is_quantized = False
