"""What can be told about the loaded model: its facts, the memory it and this process use, the
exact text its chat template makes of a prompt, and unloading with memory measured around it."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.models import registry as models
from core.models.loading import LoadedModel
from core.prompting.rendering import apply_chat_template

PROC_STATUS = Path("/proc/self/status")
KIND_NAMES = {"causal": "causal (decoder-only)", "seq2seq": "seq2seq (encoder-decoder)"}
SAMPLE_SYSTEM = "You are a concise assistant."
SAMPLE_USER = "Summarize the following conversation.\n\n#Person1#: Hi!\n#Person2#: Hello."


@dataclass(frozen=True)
class MemorySnapshot:
    """Memory in use at one moment; None where this machine cannot tell."""

    rss_bytes: int | None  # resident memory of the whole process, not just the model
    cuda_allocated: int | None  # held by tensors; None without CUDA
    cuda_reserved: int | None  # held by torch's caching allocator, allocated or not


@dataclass(frozen=True)
class ModelFacts:
    """The loaded model as the Models page describes it."""

    model_id: str
    revision: str | None
    kind: str
    device: str
    dtype: str
    parameters: int
    weight_bytes: int
    context_window: int | None
    load_seconds: float
    from_cache: bool
    chat_template: str | None  # the template's Jinja source; None when the model has none


@dataclass(frozen=True)
class TemplatePreview:
    """The exact text a prompt becomes, and its length in the model's tokens."""

    text: str
    tokens: int
    templated: bool  # False: the model has no chat template and gets the text as written

    @property
    def escaped(self) -> str:
        """The text as a JSON string: every newline and space visible, nothing trimmed."""
        return json.dumps(self.text, ensure_ascii=False)


def describe(loaded: LoadedModel) -> ModelFacts:
    """The facts of a loaded model."""
    return ModelFacts(
        model_id=loaded.model_id,
        revision=loaded.revision,
        kind=loaded.kind,
        device=loaded.device,
        dtype=loaded.dtype,
        parameters=parameter_count(loaded.model),
        weight_bytes=loaded.memory_bytes(),
        context_window=loaded.context_window,
        load_seconds=loaded.load_seconds,
        from_cache=loaded.from_cache,
        chat_template=chat_template_source(loaded.tokenizer),
    )


def facts_rows(facts: ModelFacts, memory: MemorySnapshot) -> list[tuple[str, str]]:
    """(fact, value) pairs in the order the page lists them, values as text."""
    window = f"{facts.context_window} tokens" if facts.context_window else "not stated"
    load = f"{facts.load_seconds:.1f} s"
    if facts.revision and len(facts.revision) == 64:  # a GGUF file's sha256
        load += ", from the converted-GGUF cache" if facts.from_cache else ", converted from GGUF"
    rows = [
        ("model", facts.model_id),
        ("revision", facts.revision or "none (a local folder)"),
        (
            "kind",
            "causal (decoder-only)" if facts.kind == "causal" else "seq2seq (encoder-decoder)",
        ),
        ("device", facts.device),
        ("dtype", facts.dtype),
        ("parameters", f"{facts.parameters:,}"),
        ("memory of the weights", format_bytes(facts.weight_bytes)),
        ("process memory (RSS)", format_bytes(memory.rss_bytes)),
    ]
    if memory.cuda_allocated is not None:
        rows.append(("CUDA memory allocated", format_bytes(memory.cuda_allocated)))
        rows.append(("CUDA memory reserved", format_bytes(memory.cuda_reserved)))
    rows += [
        ("context window", window),
        ("load time", load),
        ("chat template", "present" if facts.chat_template else "none"),
        ("libraries", ", ".join(f"{n} {v}" for n, v in models.library_versions().items())),
    ]
    return rows


def parameter_count(model: Any) -> int:
    """Parameters of a torch model; tied weights (shared embeddings) count once."""
    return sum(p.numel() for p in model.parameters())


def chat_template_source(tokenizer: Any) -> str | None:
    """The tokenizer's chat template as text; several named ones are joined, each under its name."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        return "\n\n".join(f"{{# {name} #}}\n{text}" for name, text in template.items()) or None
    return template or None


def preview_prompt(loaded: LoadedModel, user: str, system: str | None = None) -> TemplatePreview:
    """What `user` (and `system`) become through the model's chat template, as the app sends it."""
    tokenizer = loaded.tokenizer
    if not loaded.has_chat_template:
        ids = tokenizer(user, add_special_tokens=True)["input_ids"]
        return TemplatePreview(user, len(ids), templated=False)
    text = apply_chat_template(tokenizer, user, system or None)
    # The template already holds the special tokens: adding them again would double the BOS.
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return TemplatePreview(text, len(ids), templated=True)


def memory_snapshot() -> MemorySnapshot:
    """Process RSS and, when CUDA is present, what torch holds on the current GPU."""
    allocated = reserved = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    elif torch.cuda.is_available():
        allocated = reserved = 0  # no tensor has reached the GPU yet: nothing to ask it
    return MemorySnapshot(process_rss_bytes(), allocated, reserved)


def process_rss_bytes() -> int | None:
    """Resident memory of this process now (not its peak); None where it cannot be read."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional: macOS and Windows have no /proc
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


def unload_model() -> tuple[MemorySnapshot, MemorySnapshot]:
    """Unload the model and give its memory back; memory before and after. Refused
    (PromptLabError) while a generation holds the model."""
    before = memory_snapshot()
    models.unload()
    release_memory()
    return before, memory_snapshot()


def release_memory() -> None:
    """Hand freed memory back to the system, so that RSS and the GPU show it."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        # glibc keeps freed heap pages for reuse; without this the RSS barely moves.
        name = ctypes.util.find_library("c")
        if name:
            try:
                ctypes.CDLL(name).malloc_trim(0)
            except (OSError, AttributeError):  # musl has no malloc_trim
                pass


def format_bytes(count: int | None) -> str:
    """1536 → '1.5 KiB'; None → 'unknown'."""
    if count is None:
        return "unknown"
    if abs(count) < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
