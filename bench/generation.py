"""Batched vs one-at-a-time greedy generation on the embedded model, side by side in one run.

    python -m bench.generation [--prompts 16] [--forced 64]

Prints new tokens per second for each way and their ratio, and checks the texts are identical.
Both ways are warmed up first; the first comparison runs one at a time first, the second runs
the batch first. Exits 1 when a text differs or batching is not --target times as fast.
"""

from __future__ import annotations

import argparse
import time

from core.datasets.data import load_builtin
from core.generation.local import generate
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest, load_model
from core.prompting.design import PRESETS
from core.prompting.rendering import render_for_model


def measure(loaded, prompts, settings, batch_size):
    started = time.perf_counter()
    if batch_size == 1:
        outputs = [generate(loaded, [p], settings, batch_size=1)[0] for p in prompts]
    else:
        outputs = generate(loaded, prompts, settings, batch_size=batch_size)
    seconds = time.perf_counter() - started
    return outputs, seconds, sum(o.new_tokens for o in outputs)


def compare(loaded, prompts, settings, label, batch_size, *, batch_first=False):
    if batch_first:
        batched, b_sec, b_tok = measure(loaded, prompts, settings, batch_size)
        single, s_sec, s_tok = measure(loaded, prompts, settings, 1)
    else:
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
    ratio = (b_tok / b_sec) / (s_tok / s_sec)
    print(f"  ratio (batched / one at a time, tok/s): {ratio:.2f}x")
    print(f"  greedy texts identical: {same}")
    return same, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--forced", type=int, default=64, help="0 skips the forced-length run")
    parser.add_argument("--target", type=float, default=2.0, help="batched/single tok/s")
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
    warm = GenerationSettings(max_new_tokens=8)
    measure(loaded, prompts[:2], warm, 1)  # warm-up: kernels, allocator, both code paths
    measure(loaded, prompts[:2], warm, args.batch_size)
    label = "Summaries that stop at end-of-sequence"
    same, ratio = compare(loaded, prompts, settings, label, args.batch_size)
    ok, ratios = same, [ratio]
    if args.forced:
        forced = GenerationSettings(max_new_tokens=args.forced, min_new_tokens=args.forced)
        label = f"Forced {args.forced} new tokens"
        same, ratio = compare(loaded, prompts, forced, label, args.batch_size, batch_first=True)
        ok, ratios = ok and same, [*ratios, ratio]
    fast = min(ratios) >= args.target
    print(f"\ntarget: batched at least {args.target:.1f}x: {min(ratios):.2f}x  "
          f"{'ok' if fast else 'MISSED'}")  # fmt: skip
    raise SystemExit(0 if ok and fast else 1)


if __name__ == "__main__":
    main()
