"""Which models the operator lets Prompt Lab open (core/policy.py): a repository's own code only
when allowed, local folders and GGUF files only under the listed roots, the Hub as allowed."""

from __future__ import annotations

import re
from pathlib import Path

from core import policy
from core.errors import PromptLabError

REMOTE_CODE = policy.VARIABLES["allow_remote_code"]
ROOTS = policy.VARIABLES["model_roots"]
HUB = policy.VARIABLES["hub_downloads"]
# owner/name or a bare name, as the Hub spells them; anything else is a path
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def check_remote_code(trust: bool, model_id: str = "") -> None:
    """Refuse trust_remote_code unless the operator allowed it."""
    if trust and not remote_code_allowed():
        what = f"'{model_id}' with " if model_id else ""
        raise PromptLabError(
            f"Prompt Lab does not load {what}trust_remote_code here: the operator has not "
            f"allowed a model repository's own code to run (set {REMOTE_CODE}=1 to allow it). "
            "Choose a model that transformers supports without its own code."
        )


def refused(model_id: str) -> PromptLabError:
    """The one answer to every local path that may not be opened: the same whether it is outside
    the roots, missing, a file or a folder without a model, so that no answer tells them apart."""
    return PromptLabError(
        f"'{model_id}' is not a model folder or GGUF file that Prompt Lab may open: local models "
        f"are opened only from the folders the operator lists in {ROOTS}."
    )


def is_hub_id(model_id: str) -> bool:
    """Whether `model_id` names a Hub model rather than a path; a relative path that exists here
    is a path (transformers would open it as a folder)."""
    if not _HUB_ID.fullmatch(model_id) or model_id.lower().endswith(".gguf"):
        return False
    return not Path(model_id).exists()


def local_path(model_id: str, *, gguf: bool) -> Path:
    """The resolved folder (with config.json) or GGUF file `model_id` names, under a root."""
    try:
        path = Path(model_id).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte, ~nobody
        raise refused(model_id) from None
    if not any(path.is_relative_to(root) for root in allowed_roots()):
        raise refused(model_id)
    if gguf and path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if not gguf and path.is_dir() and (path / "config.json").is_file():
        return path
    raise refused(model_id)


def allowed_roots() -> list[Path]:
    roots = []
    for root in policy.current().model_roots:
        try:
            roots.append(root.expanduser().resolve())
        except (OSError, RuntimeError, ValueError):
            continue  # a root that cannot be resolved admits nothing
    return roots


def remote_code_allowed() -> bool:
    return policy.current().allow_remote_code


def hub_downloads() -> bool:
    return policy.current().hub_downloads


def not_cached(model_id: str) -> PromptLabError:
    return PromptLabError(
        f"Model '{model_id}' is not in the local Hugging Face cache, and the operator does not "
        f"let Prompt Lab download models from the Hub ({HUB}=0): ask the operator to put it in "
        "the cache, or give a model folder under one of the listed roots."
    )
