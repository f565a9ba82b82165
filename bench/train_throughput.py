"""Training tokens/s of modevo's decoder against Hugging Face's LlamaForCausalLM of the same shape.

Both models: the same parameter count and FLOPs per token (checked), the same batches, the same precision
(bf16 autocast where the CPU has bf16 units, else fp32), the same step (forward, loss, backward, clip at 1,
AdamW). modevo runs as its recipe trains it (configs/train/<scale>.yaml: torch.compile where `compile`
is on, the fp32 attention backward on CPU); Hugging Face runs as it ships (eager, SDPA). Two more rows say
where the difference comes from: modevo eager, and Hugging Face compiled.

    python bench/train_throughput.py [--scale cpu] [--rounds 5] [--no-hf-compiled]
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
    ap.add_argument("--no-hf-compiled", action="store_true", help="skip the compiled Hugging Face row")
    ap.add_argument("--goal", type=float, default=1.3)
    args = ap.parse_args()

    import torch

    from modevo.train.model import GPT

    cfg, batch_size, seq_len, compiled = recipe(args.scale, VOCAB[args.scale])
    torch.manual_seed(0)
    batch = torch.randint(0, cfg.vocab_size, (batch_size, seq_len + 1))
    bf16 = bf16_ok()
    ours_eager, ours = GPT(cfg), GPT(cfg)
    if compiled:
        ours.compile()
    ref, ref_compiled = hf_llama(cfg), hf_llama(cfg)
    n_ours, n_ref = ours.param_counts()["total"], sum(p.numel() for p in ref.parameters())
    if n_ours != n_ref:
        raise SystemExit(f"parameter counts differ: modevo {n_ours:,} vs Hugging Face {n_ref:,}")
    contenders = {"hf eager (reference)": make_step(ref, batch, True, bf16),
                  f"modevo ({'compiled' if compiled else 'eager'}, as trained)": make_step(ours, batch, False, bf16)}
    if compiled:
        contenders["modevo eager"] = make_step(ours_eager, batch, False, bf16)
        if not args.no_hf_compiled:
            ref_compiled.compile()
            contenders["hf compiled"] = make_step(ref_compiled, batch, True, bf16)
    for step in contenders.values():  # warm-up (compiles) outside the timing
        step(), step()
    secs = interleaved(contenders, args.rounds, args.steps)
    tokens = batch_size * seq_len
    ref_rate = tokens / secs["hf eager (reference)"]
    fpt = flops_per_token(cfg, seq_len)
    rows = [[name, f"{tokens / s:,.0f}", f"{tokens / s / ref_rate:.2f}", f"{fpt * tokens / s / 1e9:,.0f}"]
            for name, s in secs.items()]
    print(f"train_throughput: {args.scale} shape ({cfg.n_layer}L d{cfg.d_model} h{cfg.n_head}/{cfg.n_kv_head} "
          f"vocab {cfg.vocab_size}, batch {batch_size}x{seq_len}, {'bf16 autocast' if bf16 else 'fp32'}), "
          f"{n_ours:,} parameters both, {fpt / 1e6:.1f} MFLOP/token; {machine()}")
    print(table(["model", "tokens/s", "vs hf eager", "GFLOP/s"], rows))
    ratio = secs["hf eager (reference)"] / secs[next(k for k in secs if k.startswith("modevo ("))]
    save("train_throughput", {"scale": args.scale, "tokens_per_s": {k: tokens / s for k, s in secs.items()},
                              "ratio": ratio, "goal": args.goal})
    print(verdict("modevo / hf tokens per second", ratio, args.goal))


if __name__ == "__main__":
    main()
