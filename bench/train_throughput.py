"""Training tokens/s of modevo's decoder against Hugging Face's LlamaForCausalLM of the same shape, like with
like: both eager, and both compiled (torch.compile of the whole model, default mode).

Both models: the same parameter count (checked) and FLOPs per token, the same batches, the same precision
(bf16 autocast where the CPU has bf16 units, else fp32), the same step (forward, loss, backward, clip at 1,
AdamW). The four contenders are timed in alternation. The headline ratio is modevo compiled / Hugging Face
compiled (what a user of either would run); the eager pair is printed beside it, and with --eager-only it is
the headline. modevo's own gains over a plain port (the fp32 attention backward on CPU, fused kernels) show
in both pairs; what torch.compile alone brings shows down each model's column.

    python bench/train_throughput.py [--scale cpu] [--rounds 5] [--eager-only]
"""

from __future__ import annotations

import argparse
import contextlib

import common  # noqa: F401  (puts the checkout on sys.path)
from common import bf16_ok, flops_per_token, interleaved, machine, recipe, save, table, verdict

VOCAB = {"smoke": 400, "cpu": 4000, "paper": 32000}  # the scale's text-bpe vocabulary


def hf_llama(cfg):
    from transformers import LlamaConfig, LlamaForCausalLM

    hc = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ff_dim,
                     num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
                     tie_word_embeddings=cfg.tie_embeddings, max_position_embeddings=cfg.max_seq_len,
                     rope_theta=cfg.rope_theta, rms_norm_eps=cfg.norm_eps, attention_bias=False, mlp_bias=False,
                     attn_implementation="sdpa")
    return LlamaForCausalLM(hc)


def make_step(model, batch, hf: bool, bf16: bool):
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    ids, targets = batch[:, :-1], batch[:, 1:]

    def step():
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            if hf:  # labels are shifted inside; passing ids gives the same targets as ours
                loss = model(input_ids=ids, labels=ids).loss
            else:
                _, loss = model(ids, targets=targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="cpu", choices=sorted(VOCAB))
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per contender (median reported)")
    ap.add_argument("--steps", type=int, default=2, help="steps per round")
    ap.add_argument("--eager-only", action="store_true", help="skip the compiled pair (compiling costs ~20 s each)")
    ap.add_argument("--goal", type=float, default=1.3)
    args = ap.parse_args()

    import torch

    from modevo.train.model import GPT

    cfg, batch_size, seq_len, _ = recipe(args.scale, VOCAB[args.scale])
    torch.manual_seed(0)
    batch = torch.randint(0, cfg.vocab_size, (batch_size, seq_len + 1))
    bf16 = bf16_ok()
    ours, ref = GPT(cfg), hf_llama(cfg)
    n_ours, n_ref = ours.param_counts()["total"], sum(p.numel() for p in ref.parameters())
    if n_ours != n_ref:
        raise SystemExit(f"parameter counts differ: modevo {n_ours:,} vs Hugging Face {n_ref:,}")
    contenders = {"hf eager": make_step(ref, batch, True, bf16), "modevo eager": make_step(ours, batch, False, bf16)}
    if not args.eager_only:
        ours_c, ref_c = GPT(cfg), hf_llama(cfg)
        ours_c.compile()
        ref_c.compile()
        contenders["hf compiled"] = make_step(ref_c, batch, True, bf16)
        contenders["modevo compiled"] = make_step(ours_c, batch, False, bf16)
    for step in contenders.values():  # warm-up (compiles) outside the timing
        step(), step()
    secs = interleaved(contenders, args.rounds, args.steps)
    tokens = batch_size * seq_len
    rate = {k: tokens / s for k, s in secs.items()}
    fpt = flops_per_token(cfg, seq_len)

    def vs_hf(name: str) -> str:
        return f"{rate[name] / rate[name.replace('modevo', 'hf')]:.2f}" if name.startswith("modevo") else "1.00"

    rows = [[name, f"{rate[name]:,.0f}", vs_hf(name), f"{rate[name] / rate['hf eager']:.2f}",
             f"{fpt * rate[name] / 1e9:,.0f}"] for name in secs]
    print(f"train_throughput: {args.scale} shape ({cfg.n_layer}L d{cfg.d_model} h{cfg.n_head}/{cfg.n_kv_head} "
          f"vocab {cfg.vocab_size}, batch {batch_size}x{seq_len}, {'bf16 autocast' if bf16 else 'fp32'}), "
          f"{n_ours:,} parameters both, {fpt / 1e6:.1f} MFLOP/token; {machine()}")
    print(table(["model", "tokens/s", "vs hf, same mode", "vs hf eager", "GFLOP/s"], rows))
    eager = rate["modevo eager"] / rate["hf eager"]
    compiled = None if args.eager_only else rate["modevo compiled"] / rate["hf compiled"]
    headline = eager if compiled is None else compiled
    save("train_throughput", {"scale": args.scale, "tokens_per_s": rate, "ratio_eager": eager,
                              "ratio_compiled": compiled, "ratio": headline, "goal": args.goal})
    if compiled is not None:
        print(f"eager vs eager: {eager:.2f}x")
    mode = "eager vs eager" if compiled is None else "compiled vs compiled"
    print(verdict(f"modevo / hf tokens per second, {mode}", headline, args.goal))


if __name__ == "__main__":
    main()
