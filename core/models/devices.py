"""Device and dtype names: validating the one asked for, or choosing the usual one for this
machine."""

from __future__ import annotations

import torch

from core.errors import PromptLabError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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
