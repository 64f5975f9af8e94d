"""Cold (GGUF conversion) vs cached load of the embedded model, side by side in one run.

    python -m bench.model_load [--repeats 3]

Each load runs in a fresh Python process, so nothing stays warm in memory between them; one
untimed load first warms the disk cache. Exits 1 when the cached load is not --target times
as fast as the cold one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time
from core.models.registry import ModelRequest, load_model
loaded = load_model(ModelRequest(device="cpu"), cache_dir=sys.argv[1])
print(json.dumps({"seconds": loaded.load_seconds, "from_cache": loaded.from_cache}))
"""


def load_once(cache_dir: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, cache_dir], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", type=float, default=3.0, help="cold/cached seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache_dir:
        load_once(cache_dir)  # warm-up: the GGUF file and the libraries in the page cache
    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache_dir:
            first, second = load_once(cache_dir), load_once(cache_dir)
            assert (first["from_cache"], second["from_cache"]) == (False, True)
            cold.append(first["seconds"])
            warm.append(second["seconds"])
    c, w = statistics.median(cold), statistics.median(warm)
    print(
        f"cold load (GGUF conversion + caching): median {c:5.1f} s  "
        f"runs {[round(x, 1) for x in cold]}"
    )
    print(
        f"cached load                          : median {w:5.1f} s  "
        f"runs {[round(x, 1) for x in warm]}"
    )
    print(f"ratio (cold / cached): {c / w:.1f}x")
    fast = c / w >= args.target
    print(f"target: cached at least {args.target:.1f}x faster: {'ok' if fast else 'MISSED'}")
    return 0 if fast else 1


if __name__ == "__main__":
    sys.exit(main())
