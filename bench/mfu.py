"""Training MFU: model FLOPs per second over this machine's bf16 matmul peak, both measured in this run.

Model FLOPs per token are PaLM's 6·N + 12·L·T·d (common.flops_per_token); the peak is the best rate of a
4096² bf16 matmul. Each shape trains as its recipe says (configs/train/<scale>.yaml: batch, context,
compile). The paper shape (1.1B parameters) does not fit AdamW state in this machine's memory next to its
activations, so on a CPU it is timed as forward + backward at batch 1, eager, and labelled so.

    python bench/mfu.py [--shapes smoke,cpu,paper] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401
from common import bf16_ok, flops_per_token, machine, matmul_peak, recipe, save, table, verdict
from train_throughput import VOCAB, make_step


def rate(scale: str, rounds: int, bf16: bool) -> tuple[float, str, object, int]:
    """(tokens/s, how it was run, cfg, seq_len) for one shape."""
    import contextlib

    import torch

    from modevo.train.model import GPT

    cfg, batch_size, seq_len, compiled = recipe(scale, VOCAB[scale])
    torch.manual_seed(0)
    if scale == "paper" and not torch.cuda.is_available():
        batch_size, compiled, how = 1, False, "forward+backward only, batch 1, eager"
        model = GPT(cfg)
        batch = torch.randint(0, cfg.vocab_size, (batch_size, seq_len + 1))

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                _, loss = model(batch[:, :-1], targets=batch[:, 1:])
            loss.backward()
            model.zero_grad(set_to_none=True)
    else:
        model = GPT(cfg)
        if compiled:
            model.compile()
        batch = torch.randint(0, cfg.vocab_size, (batch_size, seq_len + 1))
        step = make_step(model, batch, False, bf16)
        how = f"full step, batch {batch_size}, {'compiled' if compiled else 'eager'}"
    step()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return batch_size * seq_len / sorted(times)[len(times) // 2], how, cfg, seq_len


GROUPS = [("attention backward", ("flash_attention_for_cpu_backward",)), ("attention forward", ("flash_attention",)),
          ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear")),
          ("fused elementwise (compiled kernels)", ("CompiledFxGraph",)), ("optimizer", ("Optimizer", "lerp", "addc", "_foreach"))]


def profile_step(scale: str, bf16: bool) -> list[list]:
    """Where one training step's time goes (torch.profiler self time, grouped; shares of the step)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from modevo.train.model import GPT

    cfg, batch_size, seq_len, compiled = recipe(scale, VOCAB[scale])
    model = GPT(cfg)
    if compiled:
        model.compile()
    step = make_step(model, torch.randint(0, cfg.vocab_size, (batch_size, seq_len + 1)), False, bf16)
    step(), step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            step()
    fpt = flops_per_token(cfg, seq_len)
    attn_flops = 2 * 12.0 * cfg.n_layer * seq_len * cfg.d_model * batch_size * seq_len / 3  # fwd 1/3, bwd 2/3
    matmul_flops = 2 * (fpt - 12.0 * cfg.n_layer * seq_len * cfg.d_model) * batch_size * seq_len
    totals = {name: 0.0 for name, _ in GROUPS}
    total = 0.0
    for ev in prof.key_averages():
        total += ev.self_cpu_time_total
        for name, keys in GROUPS:
            if any(k in ev.key for k in keys):
                totals[name] += ev.self_cpu_time_total
                break
    totals["other"] = total - sum(totals.values())
    flops = {"attention backward": attn_flops, "matmul": matmul_flops, "attention forward": attn_flops / 2}
    rows = []
    for name, us in totals.items():
        sec = us / 1e6 / 2
        rate = f"{flops[name] / 2 / sec / 1e9:,.0f}" if name in flops and sec > 0 else ""
        rows.append([name, f"{1e3 * sec:,.0f}", f"{100 * us / total:.0f}%", rate])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="smoke,cpu,paper")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--goal", type=float, default=30.0, help="percent, at the cpu shape")
    ap.add_argument("--profile", action="store_true", help="also break the cpu-shape step down by operation")
    args = ap.parse_args()
    bf16 = bf16_ok()
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    peak = matmul_peak(dtype=dtype)
    rows, record = [], {}
    for scale in args.shapes.split(","):
        tok_s, how, cfg, seq_len = rate(scale, args.rounds, bf16)
        peak = max(peak, matmul_peak(dtype=dtype))  # the best seen in the run: load elsewhere only lowers it
        record[scale] = {"tokens_per_s": tok_s, "flops_per_token": flops_per_token(cfg, seq_len), "how": how,
                         "shape": f"{cfg.n_layer}L d{cfg.d_model} T{seq_len}"}
    for scale, r in record.items():
        r["mfu_percent"] = 100 * r["flops_per_token"] * r["tokens_per_s"] / peak
        rows.append([scale, r["shape"], r["how"], f"{r['tokens_per_s']:,.0f}",
                     f"{r['flops_per_token'] * r['tokens_per_s'] / 1e9:,.0f}", f"{r['mfu_percent']:.1f}%"])
    print(f"mfu: peak {'bf16' if bf16 else 'fp32'} matmul {peak / 1e9:,.0f} GFLOP/s (4096², best of 3 s before and after each shape); {machine()}")
    print(table(["shape", "model", "timed", "tokens/s", "GFLOP/s", "MFU"], rows))
    if args.profile:
        print("where a cpu-shape step goes (torch.profiler, self time per step):")
        print(table(["operations", "ms/step", "share", "GFLOP/s"], profile_step("cpu", bf16)))
    save("mfu", {"peak_flops": peak, "shapes": record, "goal_percent": args.goal})
    if "cpu" in record:
        print(verdict("training MFU at the cpu shape", record["cpu"]["mfu_percent"], args.goal, unit="%"))
    else:
        first = next(iter(record))
        print(f"RATIO training MFU at the {first} shape: {record[first]['mfu_percent']:.2f}% (the {args.goal:g}% "
              f"goal is for the cpu shape)")


if __name__ == "__main__":
    main()
