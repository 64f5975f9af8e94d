"""The models kept in memory: one loaded model per process (asking for another frees it first,
unless a generation holds it) and the tokenizers of served runs."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from core.errors import PromptLabError
from core.models import access as model_access
from core.models import gguf_cache
from core.models.devices import resolve_device, resolve_dtype  # noqa: F401
from core.models.loading import (
    LoadedModel,
    ModelKind,
    ModelRequest,
    config_and_tokenizer,
    context_window,
    library_versions,  # noqa: F401
    load_model,
    prepare_tokenizer,
)
from core.models.locating import (
    EMBEDDED,
    EMBEDDED_ALIASES,
    embedded_gguf_path,  # noqa: F401
    explain_load_error,
    gguf_path,
    is_gguf,
    local_folder,
)

_lock = threading.RLock()
_current: LoadedModel | None = None
_holders = 0  # running generations that need _current to stay loaded
_tokenizers: dict[tuple[str, bool], LoadedModel] = {}


def prompt_tokenizer(request: ModelRequest) -> LoadedModel:
    """The tokenizer, chat template and context window of `request` without its weights: what a
    run on a served endpoint needs to render and fit prompts exactly as a local run would.
    Its `model` is None; tokenizers are small, so each one asked for is kept."""
    name = request.model_id.strip()
    key = (EMBEDDED if name in EMBEDDED_ALIASES else name, request.trust_remote_code)
    with _lock:
        if key in _tokenizers:
            return _tokenizers[key]
    model_id, trust = key
    model_access.check_remote_code(trust, model_id)
    started = time.perf_counter()
    try:
        if is_gguf(model_id):
            tokenizer, config, revision = gguf_cache.load_tokenizer(gguf_path(model_id))
            kind: ModelKind = "causal"
        else:
            _, _, config, kind, tokenizer = config_and_tokenizer(model_id, trust)
            revision = getattr(config, "_commit_hash", None)
    except PromptLabError:
        raise
    except Exception as exc:
        raise explain_load_error(exc, model_id) from exc
    prepare_tokenizer(tokenizer, kind)
    loaded = LoadedModel(
        model_id=model_id,
        model=None,
        tokenizer=tokenizer,
        kind=kind,
        device="server",
        dtype="",
        context_window=context_window(config, tokenizer),
        revision=revision,
        load_seconds=time.perf_counter() - started,
        request=ModelRequest(model_id, None, None, trust),
    )
    with _lock:
        return _tokenizers.setdefault(key, loaded)


def get_model(request: ModelRequest, *, cache_dir: Path | None = None) -> LoadedModel:
    """The process's loaded model for `request`, loading it (and freeing any other) if needed."""
    global _current
    req = request.resolved()
    with _lock:
        if _current is not None and _current.request == req:
            return _current
        _refuse_while_held(f"load {req.model_id}")
        # A refused or mistyped model must not cost the loaded one.
        model_access.check_remote_code(req.trust_remote_code, req.model_id)
        if is_gguf(req.model_id):
            gguf_path(req.model_id)
        else:
            local_folder(req.model_id)
        unload()
        _current = load_model(req, cache_dir=cache_dir)
        return _current


@contextmanager
def hold(request: ModelRequest) -> Iterator[LoadedModel]:
    """The model for `request`, kept loaded until the block ends: meanwhile a request for
    another model, or to unload, is refused instead of pulling it from under a generation."""
    global _holders
    with _lock:
        loaded = get_model(request)
        _holders += 1
    try:
        yield loaded
    finally:
        with _lock:
            _holders -= 1


def _refuse_while_held(action: str) -> None:
    if _holders and _current is not None:
        raise PromptLabError(
            f"Cannot {action} now: {_current.model_id} is generating for a running experiment "
            "or Playground run. Wait for it to finish, or cancel it on the Experiments page."
        )


def current_model() -> LoadedModel | None:
    return _current


def unload() -> None:
    """Free the loaded model's memory, GPU memory included."""
    global _current
    with _lock:
        if _current is None:
            return
        _refuse_while_held("unload the model")
        device = _current.device
        _current.model = None
        _current = None
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
