"""Paired check of bf16 scoring against fp32 on a trained run: may score.precision=bf16 be used?

The same rendered items of each task (the view's own test rendering) are scored twice with the run's final
checkpoint: fp32 (the reference) and bf16 blocks with the lens and log-softmax in fp32. Reported per task:
pairs, the largest |difference| of a summed log-probability, the decisions that flip, how many of those
flips are beyond the stated near-tie tolerance (|fp32 margin| > --tolerance nats), the accuracy change, and
the time of each. bf16 passes only if no decision flips beyond the tolerance.

    python bench/precision_check.py --run runs/cpu/speech@varied_mel-kmeans-s0-... [--config configs/eval/cpu.yaml]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common  # noqa: F401
from common import machine, save, table, verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a trained run's folder")
    ap.add_argument("--config", default=str(common.ROOT / "configs" / "eval" / "cpu.yaml"), help="eval config")
    ap.add_argument("--tolerance", type=float, default=0.1, help="near-tie tolerance, nats of the fp32 margin")
    ap.add_argument("--max-pairs", type=int, default=0, help="score at most this many pairs per task (0: all)")
    ap.add_argument("overrides", nargs="*", help="eval config key=value overrides")
    args = ap.parse_args()
    import dataclasses

    import numpy as np

    from modevo.config import load
    from modevo.errors import ModevoError
    from modevo.score.config import EvalConfig
    from modevo.score.evaluate import checkpoints_of, load_checkpoint
    from modevo.score.pairs import score_model
    from modevo.tasks.registry import load_tasks
    from modevo.tasks.render import ItemRenderer
    from modevo.train.config import TrainStageConfig

    try:
        run = Path(args.run)
        cfg = load(EvalConfig, args.config, args.overrides)
        stage = load(TrainStageConfig, run / "config.yaml")
        renderer = ItemRenderer(stage, stage.train.view, max_len=stage.model.max_seq_len, progress=False)
        ckpt = checkpoints_of(run, "final")[0]
        model, _ = load_checkpoint(ckpt, renderer.spec.name, renderer.encoder.vocab)
    except (ModevoError, OSError) as e:
        raise SystemExit(f"precision_check: {e}") from None
    model = model.float().eval()
    tasks = load_tasks(cfg.tasks, renderer.ctx.rows, renderer.ctx.corpus.root / "tasks")
    rows, record, worst = [], {}, 0
    fp32_total = bf16_total = 0.0
    for task in tasks:
        rt = renderer.render(task, renderer.test_renderings(task)[0])
        if args.max_pairs:
            capped = set(np.flatnonzero(rt.rendered)[args.max_pairs:].tolist())
            rt.skipped = [("capped" if i in capped else s) for i, s in enumerate(rt.skipped)]
        scores, secs = {}, {}
        for precision in ("fp32", "bf16"):
            sc = dataclasses.replace(cfg.score, precision=precision)
            t = time.perf_counter()
            scores[precision] = score_model(model, rt, sc)
            secs[precision] = time.perf_counter() - t
        ref, low = scores["fp32"], scores["bf16"]
        if len(ref.index) == 0:
            continue
        tol = cfg.score.tie_tolerance
        a, b = ref.items(cfg.score.headline, tol)[:, -1], low.items(cfg.score.headline, tol)[:, -1]
        c, i = ref.values(cfg.score.headline)
        margin = np.abs(c[:, -1] - i[:, -1])
        diff = max(np.abs(low.sum_correct - ref.sum_correct).max(), np.abs(low.sum_incorrect - ref.sum_incorrect).max())
        flips = a != b
        beyond = int((flips & (margin > args.tolerance)).sum())
        worst += beyond
        fp32_total, bf16_total = fp32_total + secs["fp32"], bf16_total + secs["bf16"]
        record[task.name] = {"pairs": int(len(a)), "max_abs_diff_nats": float(diff), "flips": int(flips.sum()),
                             "flips_beyond_tolerance": beyond, "acc_fp32": float(a.mean()), "acc_bf16": float(b.mean()),
                             "seconds": secs, "largest_flipped_margin": float(margin[flips].max()) if flips.any() else 0.0}
        rows.append([task.name, str(len(a)), f"{diff:.3f}", str(int(flips.sum())), str(beyond),
                     f"{100 * a.mean():.1f}", f"{100 * b.mean():.1f}", f"{secs['fp32']:.1f}", f"{secs['bf16']:.1f}"])
    print(f"precision_check: {run.name} ({renderer.spec.name}, {ckpt.name}), near-tie tolerance {args.tolerance:g} "
          f"nats; {machine()}")
    print(table(["task", "pairs", "max |Δ| nats", "flips", f"flips > {args.tolerance:g}", "acc fp32", "acc bf16",
                 "fp32 s", "bf16 s"], rows))
    save("precision_check", {"run": str(run), "view": renderer.spec.name, "tolerance": args.tolerance,
                             "tasks": record, "flips_beyond_tolerance": worst})
    print(("bf16 scoring: no decision flips beyond the tolerance" if worst == 0 else
           f"bf16 scoring: {worst} decision(s) flip beyond the tolerance: keep score.precision=fp32"))
    print(verdict("bf16 scoring speed-up (fp32 s / bf16 s)", fp32_total / max(bf16_total, 1e-9), 1.3))


if __name__ == "__main__":
    main()
