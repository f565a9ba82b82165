"""Training MFU on a GPU at the paper shape (TinyLlama 1.1B) through the real data path, against that GPU's
own bf16 matmul peak measured in the same run. Without a GPU it runs the same code on the CPU at the smoke
shape, so the script stays tested (tests/test_bench.py); the 40% goal applies to the GPU figure only.

The data path is the one training uses: a view built by `modevo views build` (text-bpe of the smoke corpus
by default, in a workspace of its own; `--workdir` keeps it between runs), memory-mapped, read through
modevo.train.data (ViewDataModule's train stream, StepBatches: the batch of global step s is a function of
(seed, s), each rank taking its 1/W of it) by a DataLoader with worker processes and pinned memory. The
model keeps the paper's 32,000-token head even when the view's vocabulary is smaller (ids stay in range;
the FLOPs are the paper's). With several GPUs, one process per GPU under DistributedDataParallel (NCCL),
each with a micro-batch of --batch sequences; MFU is per GPU.

The step is the recipe's (configs/train/paper.yaml: compiled, bf16 autocast, fused AdamW, clip at 1).

    python bench/gpu_train.py [--batch 4] [--steps 10] [--tiny] [--workdir DIR] [--gpus N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import common  # noqa: F401
from common import ROOT, flops_per_token, machine, matmul_peak, recipe, save, table, verdict

PAPER_VOCAB = 32000


def build_view(workdir: Path, view: str, sentences: int):
    """The view, built (or reused) in workdir's own cache with the smoke corpus config; memory-mapped."""
    os.environ["MODEVO_CACHE"] = str(workdir / "cache")
    os.environ["MODEVO_TOKENIZERS"] = str(workdir / "tokenizers")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from modevo.config import load
    from modevo.train.config import TrainStageConfig
    from modevo.views.build import build_views, load_view

    stage = load(TrainStageConfig, ROOT / "configs" / "train" / "smoke.yaml",
                 [f"corpus.source.max_sentences_per_document={sentences}", "corpus.num_proc=1"])
    return load_view(build_views(stage, [view], progress=False)[view])


def run_rank(rank: int, world: int, args, view_root: str, init: str | None, out: dict | None) -> None:
    import torch

    from modevo.train.data import StepBatches, ViewDataModule
    from modevo.train.model import GPT
    from modevo.views.build import load_view

    device = f"cuda:{rank}" if torch.cuda.is_available() else "cpu"
    if world > 1:
        import torch.distributed as dist

        torch.cuda.set_device(rank)
        dist.init_process_group("nccl", init_method=init, rank=rank, world_size=world)
    scale = "smoke" if args.tiny or device == "cpu" else "paper"
    view = load_view(Path(view_root))
    vocab = max(len(view.vocab), PAPER_VOCAB) if scale == "paper" else len(view.vocab)
    cfg, recipe_batch, seq_len, compiled = recipe(scale, vocab)
    micro = args.batch if scale == "paper" else recipe_batch
    total = args.steps + 3
    dm = ViewDataModule(view, seq_len, micro * world, seed=0, total_steps=total, val_max_tokens=0)
    steps = StepBatches(dm.train_stream, seq_len, micro * world, seed=0, start=0, total=total, rank=rank, world=world)
    loader = iter(torch.utils.data.DataLoader(steps, batch_size=None, shuffle=False, num_workers=2,
                                              pin_memory=device != "cpu", persistent_workers=True))
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    n_params = model.param_counts()["total"]
    if compiled and device != "cpu":
        model.compile()
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[rank])
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=device != "cpu")
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    kind = "cuda" if device != "cpu" else "cpu"

    def step():
        batch = next(loader).to(device, non_blocking=True)  # (micro, seq_len + 1) int64 from the memmap
        with torch.autocast(kind, dtype=torch.bfloat16):
            _, loss = model(batch[:, :-1], targets=batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(3):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    sec = (time.perf_counter() - t) / args.steps
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    if rank != 0:
        return
    peak = matmul_peak(device, torch.bfloat16, n=8192 if device != "cpu" else 2048)
    tok_s = micro * seq_len / sec  # per device
    fpt = flops_per_token(cfg, seq_len)
    mfu = 100 * fpt * tok_s / peak
    mem = torch.cuda.max_memory_allocated() / 2**30 if device != "cpu" else float("nan")
    stream = dm.train_stream
    print(f"gpu_train: {scale} shape ({cfg.n_layer}L d{cfg.d_model}, {n_params / 1e6:,.1f}M parameters, vocab "
          f"{cfg.vocab_size:,}, micro-batch {micro}x{seq_len} per device) on {world} x {kind}; data: view "
          f"{view.spec.name} ({len(stream):,} train tokens, {stream.dtype}, memory-mapped) through "
          f"modevo.train.data.StepBatches, {'DDP over ' + str(world) + ' GPUs' if world > 1 else 'one process'}; "
          f"{machine()}")
    print(table(["device", "tokens/s per device", "model TFLOP/s", "peak bf16 TFLOP/s", "MFU", "max memory GiB",
                 "loss"],
                [[kind, f"{tok_s:,.0f}", f"{fpt * tok_s / 1e12:.2f}", f"{peak / 1e12:.2f}", f"{mfu:.1f}%",
                  f"{mem:.1f}", f"{float(loss.detach()):.3f}"]]))
    out.update(device=kind, scale=scale, world=world, tokens_per_s_per_device=tok_s, mfu_percent=mfu,
               peak_flops=peak, batch=micro, view=view.spec.name, train_tokens=len(stream))


def _spawned(rank, world, args, view_root, init, result_path):
    out: dict = {}
    run_rank(rank, world, args, view_root, init, out)
    if rank == 0:
        Path(result_path).write_text(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4, help="sequences per step per GPU (paper shape)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--tiny", action="store_true", help="the smoke shape, whatever the device (CI and tests)")
    ap.add_argument("--goal", type=float, default=40.0, help="percent MFU at the paper shape on a GPU")
    ap.add_argument("--view", default="text-bpe", help="the view whose tokens feed the model")
    ap.add_argument("--sentences", type=int, default=100, help="sentences per document of the smoke corpus")
    ap.add_argument("--workdir", default=None, help="where the view is built (default: a temporary folder)")
    ap.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all; DDP when more than one)")
    args = ap.parse_args()
    import torch

    tmp = None
    if args.workdir:
        workdir = Path(args.workdir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="modevo-gpu-train-")
        workdir = Path(tmp.name)
    view = build_view(workdir, args.view, args.sentences)
    world = torch.cuda.device_count() if torch.cuda.is_available() else 1
    world = min(world, args.gpus or world) if not args.tiny else 1
    record: dict = {}
    if world > 1:
        import socket

        import torch.multiprocessing as mp

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        result = workdir / "gpu_train_rank0.json"  # rank 0 prints its table and leaves its figures here
        mp.spawn(_spawned, args=(world, args, str(view.root), f"tcp://127.0.0.1:{port}", str(result)), nprocs=world)
        record = json.loads(result.read_text())
    else:
        run_rank(0, 1, args, str(view.root), None, record)
    mfu = record["mfu_percent"]
    save("gpu_train", {**record, "goal_percent": args.goal})
    if tmp is not None:
        tmp.cleanup()
    if record["scale"] == "paper":
        print(verdict("training MFU per GPU at the paper shape" + (f", DDP over {world} GPUs" if world > 1 else ""),
                      mfu, args.goal, unit="%"))
    else:
        print(f"RATIO training MFU, {record['scale']} shape on {record['device']}: {mfu:.1f}% (a functional check; "
              f"the {args.goal:g}% goal is for the paper shape on a GPU)")


if __name__ == "__main__":
    main()
