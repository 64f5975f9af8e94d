"""Batched vs one-at-a-time greedy generation on the embedded model, side by side in one run.

    python -m bench.generation [--prompts 16] [--forced 64]

Prints new tokens per second for each way and their ratio, and checks the texts are identical.
"""

from __future__ import annotations

import argparse
import time

from core.data import load_builtin
from core.generation import generate
from core.models import ModelRequest, load_model
from core.prompts import PRESETS
from core.rendering import render_for_model
from core.settings import GenerationSettings


def measure(loaded, prompts, settings, batch_size):
    started = time.perf_counter()
    if batch_size == 1:
        outputs = [generate(loaded, [p], settings, batch_size=1)[0] for p in prompts]
    else:
        outputs = generate(loaded, prompts, settings, batch_size=batch_size)
    seconds = time.perf_counter() - started
    return outputs, seconds, sum(o.new_tokens for o in outputs)


def compare(loaded, prompts, settings, label, batch_size):
    single, s_sec, s_tok = measure(loaded, prompts, settings, 1)
    batched, b_sec, b_tok = measure(loaded, prompts, settings, batch_size)
    same = [a.text for a in single] == [b.text for b in batched]
    eos = sum(o.finish_reason == "eos" for o in batched)
    print(f"\n{label}: {len(prompts)} prompts, {eos} ended at end-of-sequence")
    print(f"  one at a time : {s_tok:5d} new tokens in {s_sec:6.1f} s = {s_tok / s_sec:6.1f} tok/s")
    print(
        f"  batch of {batch_size:<4d} : {b_tok:5d} new tokens in {b_sec:6.1f} s "
        f"= {b_tok / b_sec:6.1f} tok/s"
    )
    print(f"  ratio (batched / one at a time, tok/s): {(b_tok / b_sec) / (s_tok / s_sec):.2f}x")
    print(f"  greedy texts identical: {same}")
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--forced", type=int, default=64, help="0 skips the forced-length run")
    args = parser.parse_args()
    loaded = load_model(ModelRequest(device="cpu"))
    data = load_builtin()
    settings = GenerationSettings(max_new_tokens=160)  # room to finish: outputs end at EOS
    prompts = [
        render_for_model(loaded, PRESETS["instruction"], ex, max_new_tokens=settings.max_new_tokens)
        for ex in data.eval[: args.prompts]
    ]
    print(
        f"model {loaded.model_id} on {loaded.device} ({loaded.dtype}), "
        f"prompt tokens {min(p.prompt_tokens for p in prompts)}-"
        f"{max(p.prompt_tokens for p in prompts)}"
    )
    ok = compare(
        loaded, prompts, settings, "Summaries that stop at end-of-sequence", args.batch_size
    )
    if args.forced:
        forced = GenerationSettings(max_new_tokens=args.forced, min_new_tokens=args.forced)
        ok &= compare(loaded, prompts, forced, f"Forced {args.forced} new tokens", args.batch_size)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
