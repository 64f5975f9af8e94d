"""Every local generation path on the same prompts, in one table, against the machine's limit.

    python -m bench.speed [--prompts 48] [--max-new-tokens 160] [--rounds 2]
                          [--target-batching 6] [--target-llama 10]

The built-in evaluation dialogues, instruction preset, greedy, on the embedded SmolLM2-135M:
- transformers, one prompt at a time (generate(), batch 1): the 1.0x the others are measured by;
- transformers' own continuous batching (model.generate_batch);
- Prompt Lab's batching (core.generation.continuous, the default slots for the device);
- llama.cpp (local): llama.cpp's server (xllamacpp) on the embedded Q4_1 GGUF, as many
  requests in flight as it has slots (core.served.llama_engine).

Every path is warmed up first; the paths run in one order in the first round and in the
reverse order in the second, and each row is the faster of its rounds. Columns: new tokens/s,
the ratio to one at a time, how many greedy answers equal transformers' in float32 one at a
time, and the share of the machine's limit: FLOPs per generated token (2 per weight of the
layers and the LM head, plus attention over the mean context) times tokens/s, over this
machine's float32 matmul peak (measured here, printed). Exits 1 when Prompt Lab's batching is
not --target-batching times one at a time or its text differs, or llama.cpp (local) is not
--target-llama times one at a time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch
from transformers import GenerationConfig

from core.datasets.data import load_builtin
from core.generation import local
from core.generation.settings import GenerationSettings
from core.models import registry as models
from core.models.registry import ModelRequest, load_model
from core.prompting.design import PRESETS
from core.prompting.rendering import render_for_model
from core.served import llama_engine
from core.served.client import Client, Failure, run_concurrently
from core.served.endpoint import check_run

ONE = "transformers, one prompt at a time"
OWN = "transformers' continuous batching (generate_batch)"
OURS = "Prompt Lab's batching"
LLAMA = "llama.cpp (local)"


def matmul_peak() -> float:
    """The best float32 GFLOP/s of square matrix products on this machine (all threads)."""
    best = 0.0
    for n in (1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        for _ in range(5):
            started = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def flops_per_token(model, context: float) -> float:
    """2 FLOPs per weight used for a token (the layers and the LM head; not the embedding
    lookup), plus 2 x 2 x layers x context x attention width for scores and their sum."""
    config = model.config
    layers = sum(p.numel() for p in model.model.layers.parameters())
    head = model.lm_head.weight.numel()
    width = config.num_attention_heads * (config.hidden_size // config.num_attention_heads)
    return 2 * (layers + head) + 4 * config.num_hidden_layers * context * width


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target-batching", type=float, default=6.0)
    parser.add_argument("--target-llama", type=float, default=10.0)
    args = parser.parse_args()
    loaded = load_model(ModelRequest(device="cpu"))
    data = load_builtin()
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    prompts = [
        render_for_model(loaded, PRESETS["instruction"], ex, max_new_tokens=args.max_new_tokens)
        for ex in data.eval[: args.prompts]
    ]
    encoded = [
        loaded.tokenizer(p.sent_text, add_special_tokens=p.add_special_tokens)["input_ids"]
        for p in prompts
    ]
    config = llama_engine.config_for(models.embedded_gguf_path())
    endpoint_settings = check_run(
        settings, llama_engine.EXAMPLE_ENDPOINT, use_chat_template=True, who=LLAMA
    )
    slots = local.default_batch_size(loaded)

    def one_at_a_time(chosen=prompts):
        return [
            (o.text, o.new_tokens)
            for o in (local.generate(loaded, [p], settings, batch_size=1)[0] for p in chosen)
        ]

    def ours(chosen=prompts):
        return [(o.text, o.new_tokens) for o in local.generate(loaded, chosen, settings)]

    def own(chosen=prompts):
        ids = [encoded[prompts.index(p)] for p in chosen]
        eos = loaded.eos_token_ids
        config_ = GenerationConfig(
            max_new_tokens=args.max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=loaded.tokenizer.pad_token_id,
        )
        with local.generate_lock, torch.inference_mode():
            done = loaded.model.generate_batch(inputs=ids, generation_config=config_)
        answers = []
        for request in sorted(done, key=lambda r: int(r.rsplit("_", 1)[-1])):
            tokens = list(done[request].generated_tokens)
            end = next((i + 1 for i, t in enumerate(tokens) if t in eos), len(tokens))
            text = loaded.tokenizer.decode(tokens[:end], skip_special_tokens=True)
            answers.append((text, end))
        return answers

    engine = llama_engine.acquire(config)

    def llama(chosen=prompts):
        client = Client(engine.endpoint(), settings, endpoint_settings)
        answers: list = [None] * len(chosen)
        try:
            for index, result in run_concurrently(client, chosen, error_budget=0):
                if isinstance(result, Failure):
                    raise SystemExit(f"llama.cpp (local) failed: {result.error}")
                answers[index] = (result.text, result.new_tokens)
        finally:
            client.close()
        return answers

    paths: dict[str, Callable] = {
        ONE: one_at_a_time,
        OWN: own,
        f"{OURS}, {slots} slots": ours,
        f"{LLAMA}, {config.slots} slots": llama,
    }
    try:
        peak = matmul_peak()
        print(
            f"model {loaded.model_id} on {loaded.device} ({loaded.dtype}), "
            f"{torch.get_num_threads()} threads; {len(prompts)} dialogues, greedy, "
            f"max_new_tokens {args.max_new_tokens}; float32 matmul peak {peak:.1f} GFLOP/s"
        )
        for run in paths.values():  # warm-up: kernels, allocator, the server's first requests
            run(prompts[:2])
        best: dict[str, float] = {}
        answers: dict[str, list] = {}
        for round_ in range(args.rounds):
            order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
            for name in order:
                started = time.perf_counter()
                got = paths[name]()
                seconds = time.perf_counter() - started
                rate = sum(n for _, n in got) / seconds
                print(f"  round {round_ + 1}: {name}: {rate:.1f} tok/s ({seconds:.1f} s)")
                best[name] = max(best.get(name, 0.0), rate)
                answers[name] = got
    finally:
        llama_engine.stop(force=True)
    reference = [t for t, _ in answers[ONE]]
    context = sum(len(e) for e in encoded) / len(encoded) + args.max_new_tokens / 4
    per_token = flops_per_token(loaded.model, context)
    print(f"\nFLOPs per generated token: {per_token / 1e6:.0f} M (mean context {context:.0f})")
    print(
        "| path | new tok/s | vs one at a time | greedy text = fp32 one at a time "
        f"| share of {peak:.0f} GFLOP/s |"
    )
    print("|---|---|---|---|---|")
    base = best[ONE]
    for name in paths:
        agree = sum(a == b for (a, _), b in zip(answers[name], reference, strict=True))
        share = best[name] * per_token / (peak * 1e9)
        print(
            f"| {name} | {best[name]:.1f} | {best[name] / base:.1f}x | "
            f"{agree}/{len(reference)} | {share:.1%} |"
        )
    ours_name = f"{OURS}, {slots} slots"
    llama_name = f"{LLAMA}, {config.slots} slots"
    failed = []
    if best[ours_name] / base < args.target_batching:
        failed.append(f"{OURS} is {best[ours_name] / base:.1f}x, under {args.target_batching}x")
    if [t for t, _ in answers[ours_name]] != reference:
        failed.append(f"{OURS}'s greedy text differs from one at a time")
    if best[llama_name] / base < args.target_llama:
        failed.append(f"{LLAMA} is {best[llama_name] / base:.1f}x, under {args.target_llama}x")
    for line in failed:
        print(f"MISSED: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
