"""Two scored runs on the same task: the paired difference on the items BOTH could render.

Runs of different views may fail to render different items (a long sentence fits a text model's context
but not a 50 Hz one); the difference is taken over the intersection, with its n printed. Runs scored on
different task sets (content hashes) or under different scoring protocols are refused in one line.
Several seeds per side are averaged per item; the CI then resamples seeds and items (hierarchical).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from modevo.errors import InputError
from modevo.score import stats
from modevo.score.runs import milestones


def latest_eval(run_dir: Path) -> Path:
    """The scores of the run's last checkpoint (<run>/eval/<last milestone>/). An earlier milestone never
    stands in for it: its tokens seen, and with score.milestone_tasks its tasks, are not the run's. A folder
    without checkpoints/ (scores copied elsewhere) gives its scored checkpoint with the most tokens."""
    run_dir = Path(run_dir)
    ckpts = milestones(run_dir)
    found = sorted(p for p in (run_dir / "eval").glob("tokens-*") if (p / "summary.json").is_file())
    if ckpts:
        last = run_dir / "eval" / ckpts[-1].stem
        if last in found:
            return last
        raise InputError(f"run {run_dir}: its last checkpoint {ckpts[-1].name} has not been scored"
                         + (" (only earlier milestones are)" if found else "") + f": run `modevo eval --run {run_dir}`")
    if not found:
        raise InputError(f"run {run_dir} has not been scored: run `modevo eval --run {run_dir}` first")
    return found[-1]


def load_items(eval_dir: Path, key: str, measure: str | None = None) -> tuple[dict, dict[str, tuple[float, str]]]:
    """(summary of `key`, {item id: (score, cluster)}) of one scored checkpoint, rendered items only. The score
    is the headline's, or the other measure's ('sum' or 'mean' log-probability) recomputed from the items'
    log-probabilities and token counts under the same tie tolerance."""
    import pyarrow.parquet as pq

    from modevo.score.pairs import item_scores

    summary = json.loads((eval_dir / "summary.json").read_text())["results"]
    if key not in summary:
        raise InputError(f"{eval_dir} has no result '{key}' (it has: {', '.join(sorted(summary))})")
    s = summary[key]
    cols = ["task", "test_rendering", "id", "group", "score", "rendered", "logp_correct", "logp_incorrect",
            "n_tokens_correct", "n_tokens_incorrect"]
    t = pq.read_table(eval_dir / "items.parquet", columns=cols).to_pydict()
    mine = [k for k, (task, r, ok) in enumerate(zip(t["task"], t["test_rendering"], t["rendered"]))
            if ok and task == s["task"] and r == s["test_rendering"]]
    score = [t["score"][k] for k in mine]
    if measure is not None and measure != s["protocol"]["headline"]:
        c, i = (np.asarray([t[col][k] for k in mine], dtype=np.float64) for col in ("logp_correct", "logp_incorrect"))
        if measure == "mean":
            c = c / np.asarray([t["n_tokens_correct"][k] for k in mine], dtype=np.float64)
            i = i / np.asarray([t["n_tokens_incorrect"][k] for k in mine], dtype=np.float64)
        score = item_scores(c, i, s["protocol"]["tie_tolerance_nats"]).tolist()
    return s, {t["id"][k]: (sc, t["group"][k]) for k, sc in zip(mine, score)}


def _side(run_dirs: list[Path], key: str, measure: str | None = None) -> tuple[list[dict], list[dict[str, tuple[float, str]]]]:
    summaries, scores = [], []
    for d in run_dirs:
        s, sc = load_items(latest_eval(d), key, measure)
        summaries.append(s)
        scores.append(sc)
    return summaries, scores


def run_seed(run_dir: Path) -> int | None:
    """The training seed of a run folder (train.seed of its config.yaml); None when it cannot be read."""
    import yaml

    try:
        cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
        return int(cfg["train"]["seed"])
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        return None


def pair_seeds(seeds_a: list, seeds_b: list) -> tuple[list[tuple[int, int]], str]:
    """Row pairs (i of a, j of b) for per-seed differences: the runs of each seed id both sides have, in seed
    order; when they share none (or a seed is unknown), the k-th smallest seed of each side, k = the fewer."""
    known = None not in seeds_a and None not in seeds_b
    common = sorted(set(seeds_a) & set(seeds_b)) if known else []
    if common:
        return [(seeds_a.index(s), seeds_b.index(s)) for s in common], "by seed id"
    def order(seeds):
        return sorted(range(len(seeds)), key=lambda i: (seeds[i] is None, seeds[i] if seeds[i] is not None else 0, i))
    return list(zip(order(seeds_a), order(seeds_b))), "by seed order (no seed id in common)"


def compare(runs_a: list[Path], runs_b: list[Path], key: str = "eval/sblimp", margin: float = 0.02,
            n_boot: int = 10_000, seed: int = 0, measure: str | None = None, seeds_a: list | None = None,
            seeds_b: list | None = None) -> dict:
    """b − a on the common rendered items; one run or several seeds per side. Items that share a group
    (tSC: a document; sWUGGY: a word) are resampled as clusters. measure: 'sum' or 'mean' log-probability
    (None: each run's headline). With several seeds, run b of seed s is paired with run a of the same seed s
    (seeds_a/seeds_b, else each run's train.seed), and the CI, the TOST and the verdict all come from one
    hierarchical interval over seeds × items of those per-seed differences."""
    sa, ia = _side(runs_a, key, measure)
    sb, ib = _side(runs_b, key, measure)
    seeds_a = list(seeds_a) if seeds_a is not None else [run_seed(d) for d in runs_a]
    seeds_b = list(seeds_b) if seeds_b is not None else [run_seed(d) for d in runs_b]
    if len(seeds_a) != len(runs_a) or len(seeds_b) != len(runs_b):
        raise InputError(f"compare: one seed id per run is needed ({len(seeds_a)} for {len(runs_a)} runs, "
                         f"{len(seeds_b)} for {len(runs_b)})")
    hashes = {s["task_hash"] for s in sa + sb}
    if len(hashes) > 1:
        raise InputError(f"cannot compare runs scored on different task sets ({', '.join(sorted(hashes))}): "
                         "rescore them with the same tasks config")
    protocols = {s["protocol"]["hash"] for s in sa + sb}
    if len(protocols) > 1:
        raise InputError(f"cannot compare runs scored under different protocols ({', '.join(sorted(protocols))})")
    common = sorted(set.intersection(*(set(d) for d in ia + ib)))
    if not common:
        raise InputError(f"the runs share no rendered item of {key}")
    a = np.asarray([[d[i][0] for i in common] for d in ia])  # (seeds_a, n)
    b = np.asarray([[d[i][0] for i in common] for d in ib])  # (seeds_b, n)
    groups = [ia[0][i][1] for i in common]
    clusters = groups if len(set(groups)) < len(groups) else None
    if len(a) == 1 and len(b) == 1:
        pairs, pairing = [(0, 0)], "one run each"
        diff = stats.paired_bootstrap(a[0], b[0], clusters=clusters, n_boot=n_boot, seed=seed)
        eq = stats.tost(a[0], b[0], margin=margin, clusters=clusters, n_boot=n_boot, seed=seed)
    else:  # several seeds: per-seed differences b_s - a_s, resampled over seeds then items
        pairs, pairing = pair_seeds(seeds_a, seeds_b)
        pa, pb = a[[i for i, _ in pairs]], b[[j for _, j in pairs]]
        diff = stats.hierarchical_ci(pb - pa, clusters=clusters, n_boot=n_boot, seed=seed)
        eq = stats.tost(pa, pb, margin=margin, clusters=clusters, n_boot=n_boot, seed=seed)  # that interval at 90%
    # the MDE on n / deff effective items, deff of the per-item difference (the clusters both runs share)
    deff = stats.design_effect(b[[j for _, j in pairs]] - a[[i for i, _ in pairs]], clusters)
    return {"key": key, "task_hash": hashes.pop(), "n_common": len(common),
            "n_a": [len(d) for d in ia], "n_b": [len(d) for d in ib],
            "seed_pairs": [[seeds_a[i], seeds_b[j]] for i, j in pairs], "seed_pairing": pairing,
            "acc_a": float(a.mean()), "acc_b": float(b.mean()), "diff": diff.as_dict(), "tost": eq,
            "verdict": stats.verdict(diff, eq), "mde": stats.mde(len(common), deff=deff), "design_effect": deff,
            "views": [sa[0]["view"], sb[0]["view"]]}


def format_comparison(c: dict) -> str:
    d = c["diff"]
    return (f"{c['views'][0]} → {c['views'][1]} on {c['key']} (task {c['task_hash']}, n={c['n_common']} items both "
            f"rendered): {100 * c['acc_a']:.1f} → {100 * c['acc_b']:.1f}, difference {100 * d['mean']:+.1f} "
            f"[{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] points: {c['verdict']} "
            f"(MDE {100 * c['mde']:.1f} points at 80% power)")
