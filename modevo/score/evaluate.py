"""`modevo eval`: score a trained run's checkpoints on the tasks, every layer, beside the baselines.

For one run: the run's own resolved config rebuilds its view (cached), the task items are rendered into that
view (and, for speech views, each test rendering of the grid), the n-gram baseline is fitted on the view's
training tokens, then each checkpoint is scored. Results go to <run>/eval/<checkpoint>/ (summary.json,
items.parquet, one PNG per task) and to the run's MLflow entry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from modevo.cache import atomic_write_json, read_json, read_run_json, stable_hash
from modevo.config import load, to_dict
from modevo.errors import InputError
from modevo.score import stats
from modevo.score.config import RUNTIME_ONLY, EvalConfig, ScoringConfig
from modevo.score.logprob import LENS_ROWS, MIN_ROWS, PAD_MULTIPLE
from modevo.score.pairs import PairScores, merge_pair_scores, score_model, score_ngram, shorter_wins, word_overlap
from modevo.score.runs import milestones
from modevo.tasks.registry import load_tasks
from modevo.tasks.render import RELEASED, ItemRenderer, RenderedTask

log = logging.getLogger("modevo.score")

PROTOCOL_VERSION = "pairs-2"


def protocol(cfg: ScoringConfig) -> dict:
    """How every number was obtained; recorded beside it (and hashed into `protocol_hash`)."""
    p = {"version": PROTOCOL_VERSION, "headline": cfg.headline, "tie_tolerance_nats": cfg.tie_tolerance,
         "context": cfg.context, "score_end": cfg.score_end,
         "sequence": "[SEP] + context utterances each followed by SEP + continuation; first token unscored; "
                     "a context longer than the model's window loses its oldest tokens (same cut for both members)",
         "shared_context": ("a pair's context runs through the model once and both continuations attend to its "
                            "cached keys and values (equal to two full sequences up to fp32 rounding)"
                            if cfg.context == "continuation" else "none: the context is scored, each sequence whole"),
         "layers": "hidden state l (0 = embeddings) → final_norm → LM head (logit lens); last = model output",
         "precision": ("fp32 model" if cfg.precision == "fp32" else "bf16 blocks, fp32 lens and log-softmax")
                      + ", fp32 per-token log-probabilities, fp64 sums",
         "batching": f"by length, padded to a multiple of {PAD_MULTIPLE}, at least {MIN_ROWS} token rows per "
                     f"forward; lens rows padded to {LENS_ROWS}",
         "ci": f"bootstrap over the unit that carries the dependence (items, their cluster, or seeds × clusters), "
               f"{cfg.n_boot} resamples, level {cfg.level}, seed {cfg.seed}; the percentile interval expanded to "
               f"t(C-1 df) × the cluster-robust SE (Satterthwaite df across seeds); coverage: bench/RESULTS.md",
         "equivalence": f"TOST ±{cfg.tost_margin:g}", "ngram_order": cfg.ngram_order, "level": cfg.level}
    if cfg.device != "cpu" and _device(cfg.device) != "cpu":  # fp32 on a GPU rounds otherwise: not mixed with CPU
        p["device"] = "cuda (fp32 matmuls round differently from the CPU's)"
    p["hash"] = stable_hash({k: v for k, v in p.items()}, 12)
    return p


def metric_key(task: str, rendering: str | None, own: str | None) -> str:
    """eval/<task> for the view's own test condition; eval/<task>/test-<rendering> for the rest of the grid."""
    return f"eval/{task}" if rendering == own else f"eval/{task}/test-{rendering}"


def ci(values: np.ndarray, clusters, cfg: ScoringConfig) -> dict:
    """Mean and bootstrap interval of per-unit scores (clusters: None, or a label per value)."""
    if len(values) == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    e = stats.bootstrap_ci(values, clusters=clusters, n_boot=cfg.n_boot, level=cfg.level, seed=cfg.seed)
    return {"mean": e.mean, "lo": e.lo, "hi": e.hi, "n": e.n, "method": e.method}


def _mde(values: np.ndarray, clusters) -> dict:
    """Minimum detectable differences at 80% power on n / deff effective units: a word's pseudowords or a
    document's passages carry less than independent pairs (deff measured on this run's scores)."""
    deff = stats.design_effect(values, clusters)
    n = len(values)
    return {"between_runs": stats.mde(n, deff=deff), "vs_chance": stats.mde_vs_chance(n, deff=deff),
            "design_effect": deff, "n_effective": n / deff}


# what a task's source lists of the items it left out or had to change (kept in summary.json beside the counts)
SOURCE_LISTS = ("skipped_identical", "identical", "repeated_rows", "dropped_ids", "missing_audio",
                "row_order_disagreements", "nonword_spellings_ignored", "unmappable", "shared_files", "window_words",
                "context_words")


def summarise(rt: RenderedTask, ps: PairScores, ngram_items: np.ndarray, cfg: ScoringConfig) -> dict:
    """Accuracies of one task in one test rendering: per layer, per breakdown, in-vocabulary subset,
    baselines, CIs, minimum detectable differences, and the counts behind each. A task with
    aggregate="group" (ZeroSpeech) is a mean over groups of each group's mean over its pairs, as its
    official scorer computes it; its intervals resample groups. A task with nothing rendered is not scored."""
    task = rt.task
    pairs = [task.pairs[i] for i in ps.index]
    out = {
        "task": task.name, "task_hash": task.content_hash, "view": rt.view, "test_rendering": rt.rendering,
        "audio": rt.audio, "items": len(task), "rendered": int(len(ps.index)), "skipped": rt.skip_counts(),
        "aggregate": task.aggregate, "render_key": rt.key,
        "source": {k: task.source[k] for k in SOURCE_LISTS if task.source.get(k)},
    }
    for k in ("split", "audio_dir"):
        if task.source.get(k):
            out["source"][k] = task.source[k]
    if rt.audio_notes:
        out["audio_notes"] = rt.audio_notes
    if rt.speakers:
        out["speakers"] = rt.speakers  # task speaker (gold voice) → the modevo voice that stood in
    if task.whole_sequence:  # every view scores the same quantity: the whole story, as released
        out["scored_unit"] = "whole sequence (a released story: context and ending in one file)"
    if not pairs:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(out["skipped"].items())) or "no items"
        out.update(not_scored=f"n=0: {reasons}", acc={"mean": None, "lo": None, "hi": None, "n": 0}, layers=[],
                   baselines={}, breakdowns={}, mde=None, in_vocab={"mean": None, "lo": None, "hi": None, "n": 0})
        return out
    by_group = task.aggregate == "group"
    groups = [p.group or p.id for p in pairs]
    clustered = not by_group and any(p.group for p in pairs)

    def unit(values, idx=None) -> tuple[np.ndarray, list | None]:
        """Per-pair values → what the accuracy is a mean of (pairs, or group means), and their clusters."""
        v = np.asarray(values, dtype=float)
        g = groups
        if idx is not None:
            v, g = v[idx], [groups[j] for j in idx]
        if not by_group:
            return v, (g if clustered else None)
        return stats.group_means(v, g)[0], None

    items = {m: ps.items(m, cfg.tie_tolerance) for m in ("sum", "mean")}  # (m, L+1) each
    head = items[cfg.headline]
    final = head[:, -1]
    shorter = shorter_wins(ps.n_correct, ps.n_incorrect)
    in_vocab = np.flatnonzero(rt.in_vocab[ps.index])
    n_units = len(unit(final)[0])
    out.update({
        "acc": ci(*unit(final), cfg),
        "acc_sum": float(unit(items["sum"][:, -1])[0].mean()),
        "acc_mean": float(unit(items["mean"][:, -1])[0].mean()),
        "ties": int((final == 0.5).sum()),
        "context_truncated": int((rt.context_dropped[ps.index] > 0).sum()) if rt.context_dropped is not None else 0,
        "layers": [{"layer": layer, **ci(*unit(head[:, layer]), cfg)} for layer in range(head.shape[1])],
        "in_vocab": ci(*unit(final, in_vocab), cfg) if len(in_vocab) else ci(np.zeros(0), None, cfg),
        "baselines": {"shorter_wins": ci(*unit(shorter), cfg), "ngram": ci(*unit(ngram_items), cfg)},
        "mde": _mde(*unit(final)),
    })
    if by_group:
        out["groups"] = n_units
    baselines = {"shorter_wins": shorter, "ngram": ngram_items}
    overlap = word_overlap(task)[ps.index]
    if not np.isnan(overlap).any():  # tasks with context
        baselines["word_overlap"] = overlap
        out["baselines"]["word_overlap"] = ci(*unit(overlap), cfg)
    model, clusters = unit(final)
    for base, b in baselines.items():
        d = stats.paired_bootstrap(unit(b)[0], model, clusters=clusters, n_boot=cfg.n_boot, level=cfg.level,
                                   seed=cfg.seed)
        out["baselines"][base]["model_minus_baseline"] = {"mean": d.mean, "lo": d.lo, "hi": d.hi,
                                                          "verdict": stats.verdict(d).replace("b ", "model ")}
    out["breakdowns"] = {}
    for key in task.breakdowns:
        by_label: dict[str, list[int]] = {}
        for j, p in enumerate(pairs):
            by_label.setdefault(p.label(key), []).append(j)
        out["breakdowns"][key] = {g: {"acc": float(unit(final, idx)[0].mean()), "n": len(idx),
                                      "shorter_wins": float(unit(shorter, idx)[0].mean()),
                                      "ngram": float(unit(ngram_items, idx)[0].mean())}
                                  for g, idx in sorted(by_label.items())}
    return out


def items_table(rt: RenderedTask, ps: PairScores, ngram_items: np.ndarray, cfg: ScoringConfig, checkpoint: str):
    """Per-item rows (rendered and skipped) as a pyarrow table: what every accuracy above is a mean of."""
    import pyarrow as pa

    task, task_hash = rt.task, rt.task.content_hash
    pos = {int(i): j for j, i in enumerate(ps.index)}
    head = ps.items(cfg.headline, cfg.tie_tolerance)
    shorter = shorter_wins(ps.n_correct, ps.n_incorrect)
    cols: dict[str, list] = {k: [] for k in (
        "task", "task_hash", "view", "test_rendering", "checkpoint", "id", "group", "rendered", "skip_reason",
        "in_vocab", "n_tokens_correct", "n_tokens_incorrect", "logp_correct", "logp_incorrect",
        "layer_logp_correct", "layer_logp_incorrect", "score", "layer_scores", "shorter_wins", "ngram")}
    for key in task.breakdowns:
        cols[f"label_{key}"] = []
    for i, p in enumerate(task.pairs):
        j = pos.get(i)
        ok = j is not None
        cols["task"].append(task.name)
        cols["task_hash"].append(task_hash)
        cols["view"].append(rt.view)
        cols["test_rendering"].append(rt.rendering)
        cols["checkpoint"].append(checkpoint)
        cols["id"].append(p.id)
        cols["group"].append(p.group or p.id)
        cols["rendered"].append(ok)
        cols["skip_reason"].append(rt.skipped[i])
        cols["in_vocab"].append(bool(rt.in_vocab[i]))
        cols["n_tokens_correct"].append(int(ps.n_correct[j]) if ok else None)
        cols["n_tokens_incorrect"].append(int(ps.n_incorrect[j]) if ok else None)
        cols["logp_correct"].append(float(ps.sum_correct[j, -1]) if ok else None)
        cols["logp_incorrect"].append(float(ps.sum_incorrect[j, -1]) if ok else None)
        cols["layer_logp_correct"].append(ps.sum_correct[j].tolist() if ok else None)
        cols["layer_logp_incorrect"].append(ps.sum_incorrect[j].tolist() if ok else None)
        cols["score"].append(float(head[j, -1]) if ok else None)
        cols["layer_scores"].append(head[j].tolist() if ok else None)
        cols["shorter_wins"].append(float(shorter[j]) if ok else None)
        cols["ngram"].append(float(ngram_items[j]) if ok else None)
        for key in task.breakdowns:
            cols[f"label_{key}"].append(p.label(key))
    return pa.table(cols)


def plot_layers(summary: dict, path: Path, title: str) -> None:
    """Accuracy per layer with its CI band, chance and the baselines as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = summary["layers"]
    x = [r["layer"] for r in layers]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.fill_between(x, [r["lo"] for r in layers], [r["hi"] for r in layers], alpha=0.25,
                    label=f"{100 * summary['protocol'].get('level', 0.95):.0f}% CI (bootstrap over items)")
    ax.plot(x, [r["mean"] for r in layers], marker="o", label="model (logit lens)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance")
    for name, style in (("shorter_wins", "--"), ("ngram", "-."), ("word_overlap", ":")):
        if name not in summary["baselines"]:
            continue
        b = summary["baselines"][name]["mean"]
        if b is not None:
            ax.axhline(b, color="black", lw=0.8, ls=style, label=name.replace("_", " "))
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("pair accuracy")
    ax.set_ylim(0, 1)
    ax.set_xticks(x)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def recorded_config(cfg: EvalConfig) -> dict:
    """The eval config as summary.json records it: without where-it-runs keys (device, world_size), so one
    process and several write the same file and reuse each other's results."""
    d = json.loads(json.dumps(to_dict(cfg)))
    for k in RUNTIME_ONLY:
        d["score"].pop(k, None)
    return d


def _device(name: str) -> str:
    from modevo.units.base import resolve_device

    return resolve_device(name)


class Ranks:
    """This process's place among the scoring processes. world == 1: one process, no collectives.

    Rank r scores pairs r, r + W, r + 2W, ... of each task's rendered pairs (strided: every rank gets long
    and short items alike); rank 0 gathers the shares, merges them into index order and alone renders the
    items first (the others then read the cache), fits the n-gram baseline, writes files and logs to MLflow.
    Decisions that read files (what is scored already) are taken by rank 0 and broadcast."""

    def __init__(self, rank: int = 0, world: int = 1, owns_group: bool = False, local_rank: int | None = None):
        self.rank, self.world, self.owns_group = rank, world, owns_group
        self.local_rank = rank if local_rank is None else local_rank  # which of this machine's GPUs to take

    def device(self, name: str) -> str:
        """score.device resolved for this rank: plain "cuda" under several ranks means one GPU each."""
        device = _device(name)
        if device == "cuda" and self.world > 1:
            import torch

            device = f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, rt: RenderedTask) -> np.ndarray | None:
        if self.world == 1:
            return None
        return np.flatnonzero(rt.rendered)[self.rank::self.world].astype(np.int64)

    def gather(self, obj):
        """[obj of rank 0, 1, ...] on rank 0; None elsewhere."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj):
        """Rank 0's obj, on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _join_group(rank: int, world: int, init_method: str, timeout_s: float = 6 * 3600.0,
                local_rank: int | None = None) -> Ranks:
    """Join (or create, rank 0) a gloo process group: it carries only the pickled per-item scores, so it
    serves CPU and CUDA scoring alike."""
    import datetime

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return Ranks(rank, world, owns_group=True, local_rank=local_rank)


def _ranks_from_env() -> Ranks | None:
    """The ranks torchrun gave (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Only under torchrun
    (TORCHELASTIC_RUN_ID set): a launcher that left WORLD_SIZE in this process's environment for other
    purposes (Lightning's DDP launcher does, in its main process) must not make eval wait for peers."""
    import os

    import torch.distributed as dist

    if not os.environ.get("TORCHELASTIC_RUN_ID"):
        return None
    local = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), local_rank=local)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    _share_threads(int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    return _join_group(int(os.environ["RANK"]), world, "env://", local_rank=local)


def _share_threads(local_world: int) -> None:
    """Processes on one machine split its cores instead of each taking them all."""
    import os

    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_world)))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, world: int, init_method: str, run_dir: str, cfg: EvalConfig,
                 checkpoint: str | None, force: bool) -> None:
    """A spawned scoring process (ranks 1 .. W-1 of score.world_size): scores its share, sends it to rank 0."""
    import os

    from modevo.jobs import PARENT_ENV

    os.environ[PARENT_ENV] = "1"
    _share_threads(world)
    ranks = _join_group(rank, world, init_method)
    try:
        _evaluate(Path(run_dir), cfg, False, False, checkpoint, force, ranks)
    finally:
        ranks.close()


def checkpoints_of(run_dir: Path, which: str) -> list[Path]:
    found = milestones(run_dir)
    if not found:
        raise InputError(f"run {run_dir} has no checkpoints (checkpoints/tokens-*.pt): train it first")
    return found if which == "all" else found[-1:]


def _ngram(renderer: ItemRenderer, cfg: ScoringConfig):
    """The n-gram baseline fitted on the view's training utterances; cached beside the corpus."""
    from modevo.cache import atomic_dir
    from modevo.score.ngram import NGramLM, stream_chunks
    from modevo.views.build import build_view, load_view

    view = load_view(build_view(renderer.spec, renderer.ctx))
    path = renderer.ctx.corpus.root / "baselines" / f"ngram-{view.manifest['content_hash'][:16]}-o{cfg.ngram_order}"
    if (path / "model.npz").exists():
        return NGramLM.load(path / "model.npz"), view
    # counted chunk by chunk from the memory-mapped train stream (memory: the n-gram table, not the corpus)
    lm = NGramLM.fit_chunks(stream_chunks(view.stream("train")), len(view.vocab), order=cfg.ngram_order)
    with atomic_dir(path) as tmp:
        lm.save(tmp / "model.npz")
    return lm, view


def scored(run_dir: Path, ckpt: Path, cfg: EvalConfig) -> dict | None:
    """The results of a checkpoint already scored under this eval config and protocol, else None. The
    config fixes the tasks (corpus-drawn ones are a function of the run's corpus), so equal config and
    protocol mean the same numbers: a rerun reuses them instead of scoring again."""
    path = run_dir / "eval" / ckpt.stem / "summary.json"
    if not path.is_file():
        return None
    try:
        done = read_json(path, "scoring it again")
    except InputError as e:  # a torn summary is a cache miss: the checkpoint is scored again
        log.warning("%s", e)
        return None
    if done.get("eval_config") != recorded_config(cfg) or done.get("protocol", {}).get("hash") != protocol(cfg.score)["hash"]:
        return None
    return done["results"]


def load_checkpoint(ckpt: str | Path, view: str, vocab: list[str]):
    """A milestone file → (model, payload), or one line saying why this view cannot score it: unreadable
    (not a torch file, or one that needs full unpickling), weights that do not fit their own model config,
    another view, or another vocabulary (the same view built with other settings or another tokenizer)."""
    from modevo.train.run import load_run_weights

    try:
        model, payload = load_run_weights(ckpt)
    except Exception as e:  # noqa: BLE001 (corrupt, truncated, unsafe or mis-shaped: one line for all)
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        glob = next((ln for ln in lines if "Unsupported global" in ln), None)
        if glob:  # torch's weights_only unpickler refused a class: nothing was constructed or run
            name = glob.split("GLOBAL", 1)[-1].split()[0] if "GLOBAL" in glob else "?"
            reason = f"it holds objects other than tensors and plain values ({name}; refused, never unpickled)"
        elif "state_dict" in lines[0]:  # load_state_dict: the first mismatch names the tensor and both shapes
            reason = "its weights do not fit its model config: " + next(
                (ln for ln in lines if "size mismatch" in ln or "key(s)" in ln), lines[0])[:200]
        elif isinstance(e, (KeyError, TypeError, ValueError)):
            reason = f"not a modevo milestone (state_dict + model_config): {lines[0][:200]}"
        elif lines[0].startswith("Weights only load failed"):  # torch's long advice is no use here
            reason = "not a readable torch file (not a torch.save archive)"
        else:
            reason = f"not a readable torch file: {lines[0][:200]}"
        raise InputError(f"checkpoint {ckpt} cannot be loaded as modevo weights; {reason}") from None
    if payload.get("view") not in (None, view):
        raise InputError(f"checkpoint {ckpt} is of view {payload.get('view')}, not {view}")
    saved = payload.get("vocab")
    if model.config.vocab_size != len(vocab) or (saved is not None and list(saved) != list(vocab)):
        raise InputError(f"checkpoint {ckpt} was trained on a vocabulary of {model.config.vocab_size} tokens that "
                         f"is not view {view}'s here ({len(vocab)} tokens): views built with other settings?")
    return model, payload


def evaluate_run(run_dir: str | Path, cfg: EvalConfig, progress: bool = True, log_mlflow: bool = True,
                 checkpoint: str | Path | None = None, force: bool = False) -> dict:
    """Score one run's checkpoints (cfg.score.checkpoints, or the one `checkpoint` named) on cfg's tasks;
    returns {checkpoint name: {metric key: summary}}. Checkpoints already scored under the same config are
    reused (force=True scores them again).

    Several processes (score.world_size > 1, spawned here; or a torchrun launch, ranks from the
    environment) split each task's items; rank 0 returns and writes exactly what one process would, the
    other ranks return {}."""
    ranks = _ranks_from_env()
    if ranks is not None:
        try:
            return _evaluate(Path(run_dir), cfg, progress and ranks.main, log_mlflow, checkpoint, force, ranks)
        finally:
            ranks.close()
    world = cfg.score.world_size
    if world == 1:
        return _evaluate(Path(run_dir), cfg, progress, log_mlflow, checkpoint, force, Ranks())
    import multiprocessing as mp

    import torch

    init = f"tcp://127.0.0.1:{_free_port()}"
    ctx = mp.get_context("spawn")  # fresh interpreters: torch's thread pools are not fork-safe once used
    children = [ctx.Process(target=_rank_worker, args=(r, world, init, str(run_dir), cfg,
                                                       None if checkpoint is None else str(checkpoint), force),
                            daemon=True) for r in range(1, world)]
    for c in children:
        c.start()
    threads = torch.get_num_threads()
    _share_threads(world)
    ok = False
    try:
        ranks = _join_group(0, world, init)
        try:
            result = _evaluate(Path(run_dir), cfg, progress, log_mlflow, checkpoint, force, ranks)
            ok = True
        finally:
            ranks.close()
    finally:
        torch.set_num_threads(threads)
        for c in children:
            c.join(timeout=60 if ok else 0)
            if c.is_alive():  # rank 0 failed: the others wait on a collective that will never come
                c.terminate()
                c.join()
    failed = [c.exitcode for c in children if c.exitcode != 0]
    if failed:
        raise RuntimeError(f"a scoring process exited with code {failed[0]}")
    return result


def _evaluate(run_dir: Path, cfg: EvalConfig, progress: bool, log_mlflow: bool, checkpoint, force: bool,
              ranks: Ranks) -> dict:
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import quiet_libraries

    quiet_libraries()
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir} is not a run folder (no config.yaml)")
    stage = load(TrainStageConfig, run_dir / "config.yaml")
    info = read_run_json(run_dir)
    sc = cfg.score
    device = ranks.device(sc.device)
    ckpts = [Path(checkpoint)] if checkpoint is not None else checkpoints_of(run_dir, sc.checkpoints)
    done = {} if force or not ranks.main else {c.name: r for c in ckpts if (r := scored(run_dir, c, cfg)) is not None}
    done_names = ranks.broadcast(sorted(done))
    if len(done_names) == len(ckpts):
        if ranks.main:
            log.info("%s: %d checkpoint(s) already scored under this config (--force scores again)", run_dir, len(done))
            for name, summaries in done.items():
                _print(summaries, name, info.get("view", stage.train.view))
        return done
    if not ranks.main:
        ranks.barrier()  # rank 0 renders (and caches) the items first; the others then read them
    renderer = ItemRenderer(stage, stage.train.view, max_len=stage.model.max_seq_len, progress=progress)
    if sc.test_renderings is not None:
        unknown = [r for r in sc.test_renderings if r not in stage.corpus.speech.renderings]
        if unknown:
            raise InputError(f"unknown test rendering(s) {', '.join(unknown)} (configured: "
                             f"{', '.join(stage.corpus.speech.renderings)})")
    own = renderer.test_renderings()[0]
    renderings = renderer.test_renderings() if sc.test_renderings is None or own is None else \
        [own] + [r for r in sc.test_renderings if r != own]
    tasks = load_tasks(cfg.tasks, renderer.ctx.rows, renderer.ctx.corpus.root / "tasks", progress=progress)
    rendered = []
    for t in tasks:  # a released benchmark is tested on its own audio only (speech views)
        heads = renderer.test_renderings(t)
        for r in (heads if heads == [RELEASED] else renderings):
            rendered.append((renderer.render(t, r), metric_key(t.name, r, heads[0])))
    ngram_items = {}
    if ranks.main:
        ranks.barrier()  # items rendered and cached: the other ranks may read them now
        lm, _ = _ngram(renderer, sc)
        ngram_items = {key: score_ngram(lm, rt, sc) for rt, key in rendered}
    prot = protocol(sc)
    results = dict(done)
    last = checkpoints_of(run_dir, "final")[0]
    for ckpt in [c for c in ckpts if c.name not in done_names]:
        model, payload = load_checkpoint(ckpt, renderer.spec.name, renderer.encoder.vocab)
        model = model.float().to(device)
        out_dir = run_dir / "eval" / ckpt.stem
        before, todo = {}, []
        if ranks.main:
            out_dir.mkdir(parents=True, exist_ok=True)
            before = _previous(out_dir, prot)
            todo = [key for rt, key in _for_checkpoint(rendered, ckpt, last, sc)
                    if force or (old := before.get(key)) is None or old.get("render_key") != rt.key
                    or old["task_hash"] != rt.task.content_hash]
        todo = ranks.broadcast(todo)
        summaries, tables, reused = {}, [], set()
        for rt, key in _for_checkpoint(rendered, ckpt, last, sc):
            if key not in todo:
                summaries[key] = before[key]  # the same items under the same protocol: scored before, kept as it was
                reused.add(key)
                continue
            parts = ranks.gather(score_model(model, rt, sc, progress=progress, items=ranks.share(rt)))
            if not ranks.main:
                continue
            ps = merge_pair_scores(parts)
            s = summarise(rt, ps, ngram_items[key], sc)
            s.update(checkpoint=ckpt.name, tokens_seen=int(payload.get("tokens", 0)), protocol=prot,
                     run_dir=str(run_dir), mlflow_run_id=info.get("mlflow_run_id"), seed=stage.train.seed)
            summaries[key] = s
            tables.append(items_table(rt, ps, ngram_items[key], sc, ckpt.name))
            if rt.task.name in ZEROSPEECH_TASKS and "/test-" not in key:
                s["zerospeech_submission"] = _zerospeech_file(rt, ps, sc, out_dir)
            if s["layers"]:
                plot_layers(s, out_dir / f"{key.replace('/', '_')}.png",
                            f"{rt.view} · {key}\n{ckpt.stem} · n={s['rendered']} · task set {rt.task.content_hash}")
        if not ranks.main:
            continue
        # tasks scored before and not now are kept: a later `--tasks` call adds to a checkpoint's results
        kept = {k: v for k, v in before.items() if k not in summaries}
        merged = {**kept, **summaries}
        _write_items(out_dir / "items.parquet", tables, keep={(v["task"], v["test_rendering"])
                                                                for k, v in merged.items() if k not in summaries or k in reused})
        atomic_write_json(out_dir / "summary.json", {"protocol": prot, "eval_config": recorded_config(cfg), "results": merged})
        if kept:
            log.info("%s: kept %d result(s) scored before (%s)", out_dir, len(kept), ", ".join(sorted(kept)))
        results[ckpt.name] = merged
        _print(summaries, ckpt.name, renderer.spec.name)
    if not ranks.main:
        return {}
    if log_mlflow and info.get("mlflow_run_id"):
        from modevo.score.tracking import log_results

        log_results(info, run_dir, results, prot, ckpts[-1].name)
    return results


def _for_checkpoint(rendered: list, ckpt: Path, last: Path, sc: ScoringConfig) -> list:
    """What one checkpoint is scored on: everything for the last milestone (and for every milestone unless
    score.milestone_tasks is set); else only those tasks on the view's own test rendering."""
    if sc.milestone_tasks is None or ckpt.resolve() == last.resolve():
        return rendered
    return [(rt, key) for rt, key in rendered if rt.task.name in sc.milestone_tasks and "/test-" not in key]


def _previous(out_dir: Path, prot: dict) -> dict:
    """A checkpoint's earlier results that a new call keeps: those scored under this protocol. Results of
    another protocol are replaced (the report refuses to mix protocols), and that is said."""
    path = out_dir / "summary.json"
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())["results"]
    except (ValueError, KeyError, TypeError):
        log.warning("%s cannot be read: its results are scored again", path)
        return {}
    same = {k: v for k, v in old.items() if v.get("protocol", {}).get("hash") == prot["hash"]}
    if len(same) < len(old):
        log.warning("%s: %d result(s) of another scoring protocol are dropped (%s)", path, len(old) - len(same),
                    ", ".join(sorted(set(old) - set(same))))
    return same


ZEROSPEECH_TASKS = {"swuggy-zr21": "lexical", "sblimp-zr21": "syntactic"}


def _zerospeech_file(rt: RenderedTask, ps: PairScores, sc: ScoringConfig, out_dir: Path) -> dict:
    """Our scores in ZeroSpeech 2021's submission format (<filename> <score>), so the official scorer can
    check them: <run>/eval/<ckpt>/zerospeech/<lexical|syntactic>/<dev|test>.txt, named after the split the
    gold file is from (its folder, or tasks.zr_split; "dev" when neither says, and the summary says it was
    guessed). Pairs this view cannot render get the same score for both members (a tie, 0.5 in the official
    scorer) and are counted. Nothing rendered: no file (an all-tie file would read as a 50% result)."""
    from modevo.tasks.zerospeech import submission_scores, write_submission

    if len(ps.index) == 0:
        return {"path": None, "reason": "not scored (n=0): no submission file written"}
    kind = ZEROSPEECH_TASKS[rt.task.name]
    split = rt.task.source.get("split")
    note = {}
    if split is None:
        split = "dev"
        note = {"split_guessed": "the gold file's folder is neither dev nor test and tasks.zr_split is unset"}
        log.warning("%s: split guessed as 'dev' (%s); set tasks.zr_split=test for a test set", rt.task.name,
                    note["split_guessed"])
    c, i = ps.values(sc.headline)
    per_item = {rt.task.pairs[k].id: (float(c[j, -1]), float(i[j, -1])) for j, k in enumerate(ps.index)}
    conflicts: list[str] = []
    scores = submission_scores(rt.task, per_item, fill=0.0, conflicts=conflicts)
    if conflicts:
        log.warning("%s: %d shared file(s) scored differently in different pairs (e.g. %s): the official scorer "
                    "will not reproduce modevo's number exactly", rt.task.name, len(set(conflicts)), conflicts[0])
    path = write_submission(out_dir / "zerospeech" / kind / f"{split}.txt", scores)
    return {"path": str(path), "split": split, "files": len(scores), "tie_filled_pairs": len(rt.task) - len(per_item),
            "conflicting_files": len(set(conflicts)), **note}


def _write_items(path: Path, tables, keep: set = frozenset()) -> None:
    """The checkpoint's items: the new tables, plus the earlier rows of the (task, test rendering)s in
    `keep` (results kept from an earlier call)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = list(tables)
    if keep and path.is_file():
        old = pq.read_table(path)
        mask = np.asarray([(t, r) in keep for t, r in zip(old.column("task").to_pylist(),
                                                          old.column("test_rendering").to_pylist())], dtype=bool)
        if mask.any():
            tables.insert(0, old.filter(pa.array(mask)))
    if not tables:
        return
    from modevo.cache import atomic_file

    with atomic_file(path) as tmp:  # a failed write (a full disk) leaves the previous table and no temporary
        pq.write_table(pa.concat_tables(tables, promote_options="default"), tmp)


def _fmt(e: dict) -> str:
    if e.get("mean") is None:
        return "n/a"
    return f"{100 * e['mean']:.1f} [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]"


def _print(summaries: dict, ckpt: str, view: str) -> None:
    for key, s in summaries.items():
        if s.get("not_scored"):
            print(f"{view} {ckpt} {key}: not scored ({s['not_scored']}) | task {s['task_hash']}")
            continue
        b = s["baselines"]
        layers = " ".join(f"{100 * r['mean']:.0f}" for r in s["layers"])
        print(f"{view} {ckpt} {key}: acc {_fmt(s['acc'])} (n={s['rendered']}/{s['items']}; in-vocab "
              f"{_fmt(s['in_vocab'])} n={s['in_vocab']['n']}) | shorter-wins {_fmt(b['shorter_wins'])} | "
              f"{s['protocol']['ngram_order']}-gram {_fmt(b['ngram'])} | "
              + (f"word overlap {_fmt(b['word_overlap'])} | " if "word_overlap" in b else "") + f"layers {layers} | "
              f"MDE {100 * s['mde']['between_runs']:.1f} pts | task {s['task_hash']}"
              + (f" | audio {s['audio']}" if s.get("audio") == "released" else ""))


