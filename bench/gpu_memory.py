"""Check on a CUDA machine that unloading a model gives its GPU memory back.

    python -m bench.gpu_memory [--model MODEL_ID]

Loads the model (default: the embedded SmolLM2) on CUDA, unloads it through the same call the
Models page uses, and prints the allocated and reserved CUDA memory before and after. Exits 1
if anything is left; exits 2 on a machine without CUDA, where there is nothing to check.
"""

from __future__ import annotations

import argparse
import sys

import torch

from core.models import registry as models
from core.models.info import format_bytes, unload_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=models.EMBEDDED)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("No CUDA device here: run this on a GPU machine.", file=sys.stderr)
        return 2
    loaded = models.get_model(models.ModelRequest(args.model, device="cuda"))
    weights = loaded.memory_bytes()
    del loaded
    before, after = unload_model()
    print(f"weights            {format_bytes(weights)}")
    print(
        f"allocated  before  {format_bytes(before.cuda_allocated or 0)}"
        f"   after {format_bytes(after.cuda_allocated or 0)}"
    )
    print(
        f"reserved   before  {format_bytes(before.cuda_reserved or 0)}"
        f"   after {format_bytes(after.cuda_reserved or 0)}"
    )
    return 0 if not after.cuda_allocated and not after.cuda_reserved else 1


if __name__ == "__main__":
    sys.exit(main())
