"""Loading one model and its tokenizer from a request: what to load, what came back, and every
failure a user can cause turned into a message."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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

from core.errors import PromptLabError
from core.models import access as model_access
from core.models import gguf_cache, locating
from core.models.devices import DTYPES, resolve_device, resolve_dtype
from core.models.locating import (
    EMBEDDED,
    EMBEDDED_ALIASES,
    explain_load_error,
    gguf_path,
    is_gguf,
    local_folder,
)

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
        raise explain_load_error(exc, req.model_id) from exc
    model, tokenizer, kind, config, revision, from_cache = source
    model.eval()
    prepare_tokenizer(tokenizer, kind)
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


def _load_source(req: ModelRequest, cache_dir: Path | None) -> tuple:
    dtype = DTYPES[req.dtype]
    if is_gguf(req.model_id):
        path = gguf_path(req.model_id)
        model, tokenizer, sha, from_cache = gguf_cache.load(path, cache_dir=cache_dir)
        model = model.to(device=req.device, dtype=dtype)
        return model, tokenizer, "causal", model.config, sha, from_cache
    src, common, config, kind, tokenizer = config_and_tokenizer(req.model_id, req.trust_remote_code)
    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    model = auto.from_pretrained(src, dtype=dtype, **common).to(req.device)
    return model, tokenizer, kind, config, getattr(config, "_commit_hash", None), False


def config_and_tokenizer(model_id: str, trust: bool) -> tuple:
    """(where to load from, the loading options, config, kind, tokenizer) of a Hub id or a local
    folder under the operator's roots; offline, or with downloads off, only what the Hub cache
    already holds."""
    model_access.check_remote_code(trust, model_id)  # the last gate before transformers
    local = local_folder(model_id)
    offline = local is None and (not model_access.hub_downloads() or not locating.hub_reachable())
    src = str(local) if local else model_id
    common = dict(trust_remote_code=trust, local_files_only=offline)
    config = AutoConfig.from_pretrained(src, **common)
    kind = model_kind(config, model_id)
    return src, common, config, kind, AutoTokenizer.from_pretrained(src, **common)


def prepare_tokenizer(tokenizer: Any, kind: ModelKind) -> None:
    # Decoder-only models continue the last token of each row: pad on the left.
    tokenizer.padding_side = "left" if kind == "causal" else "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "transformers": transformers.__version__}
