"""Where the time of batched greedy generation goes, before and after continuous batching.

    python -m bench.decode_profile [--batch 32] [--cache 300] [--prompts 48]  (0: skip part 3)

1. One decode step of the embedded model at --batch rows over --cache cached columns, under
   torch.profiler: as generate() runs it (DynamicCache, grown by torch.cat every step) and as
   core.generation.continuous runs it (a preallocated cache), by operator: the matrix
   products (the 30 layers' projections and the 49,152-row LM head, timed apart), attention,
   the cache copies, and the rest (Python and small operators).
2. Prefill of the same prompts all at once vs eight at a time (prompt tokens/s).
3. The --prompts built-in dialogues generated as before (generate() in batches of 16, finished
   rows dropped every 16 steps) and with continuous batching, seconds split into prefill and
   decode, with the batch width over the run.

A profile, not a pass/fail bench: the targets are in bench.speed.
"""

from __future__ import annotations

import argparse
import collections
import time

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import DynamicCache

from core.datasets.data import load_builtin
from core.generation import continuous, local
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest, load_model
from core.prompting.design import PRESETS
from core.prompting.rendering import render_for_model

GROUPS = (  # operator name → the part of a step it belongs to
    ("aten::mm", "matrix products"),
    ("aten::addmm", "matrix products"),
    ("aten::bmm", "matrix products"),
    ("scaled_dot_product", "attention"),
    ("aten::cat", "cache copies (cat)"),
    ("aten::copy_", "cache copies (copy_)"),
    ("aten::index", "cache copies (copy_)"),
)


def one_step(model, batch: int, cached: int, *, preallocated: bool) -> tuple[dict, float]:
    """Self-CPU milliseconds by part for one decode step, and the step's wall time (median of
    five, outside the profiler)."""
    ids = torch.randint(0, 1000, (batch, cached))
    mask = torch.ones_like(ids)
    mask[: batch // 2, : cached // 5] = 0  # half the rows left-padded, as in a real batch
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        filled = DynamicCache(config=model.config)
        model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=filled,
            use_cache=True,
            logits_to_keep=1,
        )
        if preallocated:
            cache = continuous._Cache(model.config)
            for layer, new in zip(cache.buffers, filled.layers, strict=True):
                layer.allocate(new.keys, batch, cached + 64)
                layer.kbuf[:, :, :cached] = new.keys
                layer.vbuf[:, :, :cached] = new.values
            cache.length = cached
        else:
            cache = filled
        token = torch.zeros(batch, 1, dtype=torch.long)
        position = positions[:, -1:] + 1
        walls = []

        def step() -> None:
            nonlocal mask, position
            mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
            model(
                input_ids=token, attention_mask=mask, position_ids=position, cache=cache
            ).logits.argmax(-1)
            if preallocated:
                cache.length += 1
            position = position + 1

        for _ in range(6):
            started = time.perf_counter()
            step()
            walls.append(time.perf_counter() - started)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
    parts: dict[str, float] = collections.Counter()
    for event in prof.key_averages():
        part = next((p for name, p in GROUPS if name in event.key), None)
        if part is not None:
            parts[part] += event.self_cpu_time_total / 1000
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1000
    parts["the rest (Python, small operators)"] = total - sum(parts.values())
    with torch.inference_mode():  # the LM head's share of the matrix products
        hidden = torch.randn(batch, 1, model.config.hidden_size)
        model.lm_head(hidden)
        started = time.perf_counter()
        for _ in range(5):
            model.lm_head(hidden)
        parts["  of which the LM head (timed alone)"] = (time.perf_counter() - started) / 5 * 1000
    return dict(parts), sorted(walls[1:])[2] * 1000


def prefill_rate(model, prompts, rows: int) -> float:
    tokenizer = prompts[0][0]
    encoded = [p for _, p in prompts]
    started = time.perf_counter()
    with torch.inference_mode():
        for at in range(0, len(encoded), rows):
            batch = tokenizer.pad({"input_ids": encoded[at : at + rows]}, return_tensors="pt")
            model(**batch, use_cache=True, logits_to_keep=1)
    return sum(map(len, encoded)) / (time.perf_counter() - started)


def timeline(loaded, prompts, settings, *, old: bool) -> dict:
    """Seconds in prefill and decode forward calls, and the batch width of each decode step."""
    model = loaded.model
    forward = model.forward
    spent = collections.Counter()
    widths: list[int] = []

    def timed(*args, **kwargs):
        started = time.perf_counter()
        out = forward(*args, **kwargs)
        ids = kwargs.get("input_ids", args[0] if args else None)
        phase = "prefill" if ids.shape[1] > 1 else "decode"
        spent[phase] += time.perf_counter() - started
        if phase == "decode":
            widths.append(ids.shape[0])
        return out

    eligible = continuous.eligible
    model.forward = timed
    if old:
        continuous.eligible = lambda *a: False
    try:
        # generate() asks the forward's signature whether it takes logits_to_keep
        timed.__signature__ = __import__("inspect").signature(forward)
        started = time.perf_counter()
        outputs = local.generate(loaded, prompts, settings, batch_size=16 if old else None)
        seconds = time.perf_counter() - started
    finally:
        model.forward = forward
        continuous.eligible = eligible
    tokens = sum(o.new_tokens for o in outputs)
    return dict(
        seconds=seconds,
        tokens=tokens,
        prefill=spent["prefill"],
        decode=spent["decode"],
        steps=len(widths),
        mean_width=sum(widths) / max(1, len(widths)),
        texts=[o.text for o in outputs],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cache", type=int, default=300)
    parser.add_argument("--prompts", type=int, default=48)
    args = parser.parse_args()
    loaded = load_model(ModelRequest(device="cpu"))
    model = loaded.model
    print(
        f"model {loaded.model_id} on {loaded.device} ({loaded.dtype}), "
        f"{torch.get_num_threads()} threads"
    )
    print(f"\n1. One decode step, batch {args.batch}, {args.cache} cached columns (ms)")
    before, wall_before = one_step(model, args.batch, args.cache, preallocated=False)
    after, wall_after = one_step(model, args.batch, args.cache, preallocated=True)
    print(f"  {'part':40s} {'before':>8s} {'after':>8s}")
    for part in dict.fromkeys([*before, *after]):
        print(f"  {part:40s} {before.get(part, 0):8.1f} {after.get(part, 0):8.1f}")
    print(f"  {'step, wall (median of 5)':40s} {wall_before:8.1f} {wall_after:8.1f}")
    data = load_builtin()
    settings = GenerationSettings(max_new_tokens=160)
    prompts = [
        render_for_model(loaded, PRESETS["instruction"], ex, max_new_tokens=160)
        for ex in data.eval[: args.prompts]
    ]
    encoded = [
        (
            loaded.tokenizer,
            loaded.tokenizer(p.sent_text, add_special_tokens=p.add_special_tokens)["input_ids"],
        )
        for p in prompts
    ]
    encoded.sort(key=lambda e: -len(e[1]))
    encoded = encoded or [
        (loaded.tokenizer, loaded.tokenizer(p.sent_text)["input_ids"])
        for p in [
            render_for_model(loaded, PRESETS["instruction"], ex, max_new_tokens=160)
            for ex in data.eval[:16]
        ]
    ]
    print("\n2. Prefill (prompt tokens/s)")
    for rows in (len(encoded), 16, continuous.PREFILL_ROWS):
        print(f"  {rows:3d} prompts at a time: {prefill_rate(model, encoded, rows):6.0f}")
    if not prompts:
        return  # --prompts 0: the step and the prefill only
    print(f"\n3. {len(prompts)} dialogues, greedy, max_new_tokens 160")
    local.generate(loaded, prompts[:2], GenerationSettings(max_new_tokens=4))  # warm-up
    runs = {
        "before: batches of 16, dropped every 16 steps": timeline(
            loaded, prompts, settings, old=True
        ),
        f"after: continuous, {local.default_batch_size(loaded)} slots": timeline(
            loaded, prompts, settings, old=False
        ),
    }
    for name, r in runs.items():
        print(
            f"  {name}: {r['tokens']} new tokens in {r['seconds']:.1f} s "
            f"= {r['tokens'] / r['seconds']:.1f} tok/s; prefill {r['prefill']:.1f} s, "
            f"decode {r['decode']:.1f} s over {r['steps']} steps "
            f"(mean width {r['mean_width']:.1f})"
        )
    first, second = runs.values()
    print(f"  greedy texts identical: {first['texts'] == second['texts']}")


if __name__ == "__main__":
    main()
