"""`modevo lens`: latent transcription — does a speech LM's residual stream hold the text of the word it hears?

Sternberg, Maimon and Adi (2026) read interleaved speech LMs through the logit lens restricted to the text
vocabulary and find the spoken word's text token among the top candidates in the middle layers. This is
that readout for any run whose vocabulary holds text tokens (an encoder with `text_ids`: interleaved@R/T,
warm-started or not); another view is refused in one line.

The readout, exactly:
  * utterances: the run's corpus's test split (never trained on), headings and one-word utterances left out,
    the first `n_utterances` in a seeded hash order of their ids (the same utterances for every run of one
    corpus); each is encoded speech only, as task items are (`encoder.encode_item`: the <speech> mark at
    position 0, then the units of the utterance's phone span, in the view's rendering, tokenizer and rate);
    a sequence longer than the model's window is cut to it (counted).
  * a word's positions: the tokens of its own frames, 1 + (word_frames[w] - the span's first frame), cut to
    the sequence (pauses between words belong to no word); positions="last" keeps only its last frame.
    A word with no position left (no frame at this rate, or cut off) is left out (counted).
  * targets: the first text-bpe piece of the word as a text span would begin with it
    (`encoder.text_pieces([word])`; a bare word-boundary piece "▁" is skipped for the next one) — "current";
    the same of the following word — "next" (none for an utterance's last word).
  * per layer l (0 = embedding output, L = last block; relative depth l / L): logits = model.lens(h_l) over
    the text ids only; the target's rank among them counts ties against it (rank = #{text ids whose logit
    ≥ the target's} - 1); hit@k = rank < k.
  * per word: recall@k = the mean over the word's positions of hit@k (the share of its frames at which the
    target is in the top k); recall_any@k = hit@k at any of its positions (the max) is kept beside it.
    A layer's recall@k is the mean over words; its interval a cluster bootstrap over utterances (a word's
    neighbours share its context), percentile interval expanded to t × the cluster-robust SE (stats.py).
  * baseline "shuffled": the same readout with each word's target replaced by the current target of another
    word drawn by a seeded permutation of all words read: the chance level of this readout given how often
    each piece is a first piece (a model that always ranks "▁the" first scores the frequency of "the").
    One permutation serves both targets (a random word's piece is the chance level of either); its "next"
    column averages over the words that have a next word.
  * the speech-only baseline is a run, not a number here: the same command on interleaved@R/T trained with
    views.interleave.speech_share=1.0 and no train.init_from (its text rows never trained) reads chance-like.

Writes <run>/lens/<checkpoint stem>/lens.json (settings, code version, per layer every recall with its
interval, n_words, n_positions); a rerun with the same settings reuses it (force: read again). Logs
lens/recall_at_<k>_<target> (and _lo, _hi; MLflow refuses '@' in a name) with step = layer to the run's
MLflow entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from modevo.cache import atomic_write_json, read_run_json
from modevo.errors import InputError

log = logging.getLogger("modevo.score")

LENS_VERSION = "lens-1"
TARGETS = ("current", "next", "shuffled_current", "shuffled_next")
WORD_BREAK = "\u2581"  # sentencepiece's word-boundary mark


@dataclass(frozen=True)
class LensConfig:
    n_utterances: int = 200
    ks: tuple[int, ...] = (1, 5, 10)
    positions: str = "all"  # "all" of a word's frames, or only its "last"
    n_boot: int = 2000
    level: float = 0.95
    seed: int = 0  # utterance order, the shuffled baseline's permutation, the bootstrap
    device: str = "cpu"

    def check(self) -> None:
        if self.positions not in ("all", "last"):
            raise InputError(f"positions must be 'all' or 'last', got '{self.positions}'")
        if self.n_utterances < 1:
            raise InputError(f"the lens needs at least one utterance, got {self.n_utterances}")
        if not self.ks or any(int(k) != k or k < 1 for k in self.ks):
            raise InputError(f"k must be positive integers, e.g. 1,5,10; got {list(self.ks)}")


@dataclass
class Word:
    utt: int  # index of its utterance among those read
    positions: np.ndarray  # token positions in the utterance's ids
    current: int  # target token ids (vocabulary ids); -1: none
    next: int


def first_piece(encoder, word: str) -> int:
    """The first text-bpe piece (vocabulary id) of a word beginning a text span; a bare '▁' is skipped."""
    ids = [int(i) for i in encoder.text_pieces([word])]
    real = [i for i in ids if encoder.vocab[i] != WORD_BREAK]
    return (real or ids or [-1])[0]


def word_positions(frames: np.ndarray, span_start: int, length: int, positions: str = "all") -> list[np.ndarray]:
    """Each word's token positions in a speech-only sequence of `length` tokens ([mark] + span units):
    1 + (its frames - the span's first frame), cut to the sequence; positions="last" keeps the last one."""
    out = []
    for a, b in np.asarray(frames, dtype=np.int64):
        lo, hi = max(1, 1 + a - span_start), min(length, 1 + b - span_start)
        pos = np.arange(lo, hi, dtype=np.int64) if hi > lo else np.zeros(0, dtype=np.int64)
        out.append(pos[-1:] if positions == "last" else pos)
    return out


def lens_ranks(model, ids: np.ndarray, positions: np.ndarray, targets: np.ndarray, text_ids: np.ndarray,
               device: str = "cpu") -> np.ndarray:
    """Ranks (L+1, P, M) of targets (P, M) vocabulary ids among text_ids under the logit lens of each layer
    at `positions` (P,) of one sequence `ids`; ties count against the target; -1 where a target is -1."""
    import torch

    text = torch.as_tensor(np.asarray(text_ids), dtype=torch.long, device=device)
    where = torch.full((int(text.max()) + 1 if len(text) else 1,), -1, dtype=torch.long, device=device)
    where[text] = torch.arange(len(text), device=device)
    tg = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=device)  # (P, M)
    valid = tg >= 0
    col = where[tg.clamp(min=0, max=len(where) - 1)]  # the target's column among the text ids
    if bool(((tg >= len(where)) | (col < 0))[valid].any()):
        raise InputError("a lens target is not a text token of the vocabulary")
    pos = torch.as_tensor(np.asarray(positions, dtype=np.int64), device=device)
    with torch.no_grad():
        hiddens, _ = model.hidden_states(torch.as_tensor(ids, dtype=torch.long, device=device)[None])
        out = []
        for h in hiddens:
            logits = model.lens(h[0, pos])[:, text]  # (P, Vt) fp32
            tl = logits.gather(1, col.clamp(min=0))  # (P, M)
            rank = (logits[:, None, :] >= tl[:, :, None]).sum(-1) - 1  # (P, M)
            out.append(torch.where(valid, rank, torch.full_like(rank, -1)))
    return torch.stack(out).cpu().numpy()


def word_recalls(ranks: np.ndarray, word_slices: list[slice], ks) -> tuple[np.ndarray, np.ndarray]:
    """Ranks (L+1, P, M) of one utterance's positions, grouped by word → (words, L+1, M, K) mean-over-positions
    and any-position hits; NaN where the target is -1."""
    L1, _, M = ranks.shape
    mean = np.full((len(word_slices), L1, M, len(ks)), np.nan)
    anyhit = np.full_like(mean, np.nan)
    for w, sl in enumerate(word_slices):
        r = ranks[:, sl, :]  # (L+1, p, M)
        if r.shape[1] == 0:
            continue
        hits = r[..., None] < np.asarray(ks)  # (L+1, p, M, K)
        ok = (r[:, :1, :] >= 0)[..., None]  # (L+1, 1, M, 1): the target exists
        mean[w] = np.where(ok[:, 0], hits.mean(axis=1), np.nan)
        anyhit[w] = np.where(ok[:, 0], hits.any(axis=1), np.nan)
    return mean, anyhit


def readout(model, seqs: list[np.ndarray], words: list[Word], text_ids, ks, seed: int = 0, device: str = "cpu",
            progress: bool = False, desc: str = "lens") -> tuple[np.ndarray, np.ndarray, int]:
    """Every word's recalls: (words, L+1, 4 targets (TARGETS), len(ks)) mean-over-positions and any-position
    arrays (NaN: no such target), and the number of positions read. Shuffled targets: word i gets the current
    target of word perm[i], perm a permutation of all words seeded by `seed`."""
    from tqdm.auto import tqdm

    perm = np.random.default_rng(seed).permutation(len(words))
    shuffled = np.asarray([words[j].current for j in perm], dtype=np.int64)
    by_utt: dict[int, list[int]] = {}
    for n, w in enumerate(words):
        by_utt.setdefault(w.utt, []).append(n)
    n_layers = model.config.n_layer
    mean = np.full((len(words), n_layers + 1, len(TARGETS), len(ks)), np.nan)
    anyhit = np.full_like(mean, np.nan)
    n_positions = 0
    for utt in tqdm(sorted(by_utt), desc=desc, unit="utt", disable=not progress, leave=False):
        members = by_utt[utt]
        pos = np.concatenate([words[n].positions for n in members])
        targets = np.concatenate([np.tile([[words[n].current, words[n].next, shuffled[n],
                                            shuffled[n] if words[n].next >= 0 else -1]], (len(words[n].positions), 1))
                                  for n in members])
        ranks = lens_ranks(model, seqs[utt], pos, targets, text_ids, device)
        edges = np.cumsum([0] + [len(words[n].positions) for n in members])
        m, a = word_recalls(ranks, [slice(edges[j], edges[j + 1]) for j in range(len(members))], ks)
        mean[members], anyhit[members] = m, a
        n_positions += len(pos)
    return mean, anyhit, n_positions


def select_rows(rows, n: int, seed: int) -> list[dict]:
    """The n test rows read: two words or more, no heading, first in a seeded hash order of their ids."""
    eligible = [r for r in rows if r["split"] == "test" and not r.get("heading") and len(r["words"]) >= 2]
    if not eligible:
        raise InputError("the corpus's test split has no utterance of two words or more to read the lens on")
    key = lambda r: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest()  # noqa: E731
    return sorted(eligible, key=key)[:n]


def mixture(stage) -> dict:
    """The view family's mixture settings (interleaved views: speech share, span length), else {}."""
    from modevo.views.registry import parse_view

    family = parse_view(stage.train.view, stage.views.tokenizer).view_family
    return family.settings(stage.views) if hasattr(family, "settings") else {}


def run_label(stage) -> str:
    """What a run is, for a legend: its condition, speech share (interleaved views) and warm start."""
    from modevo.views.registry import parse_view

    spec = parse_view(stage.train.view, stage.views.tokenizer)
    label = spec.view_family.condition_name(spec)
    extra = []
    share = mixture(stage).get("speech_share")
    if share is not None:
        extra.append(f"speech share {share:g}")
    if getattr(stage.train, "init_from", None):
        extra.append("warm start")
    return f"{label} [{', '.join(extra)}]" if extra else label


def summarise_layers(mean: np.ndarray, anyhit: np.ndarray, clusters: np.ndarray, ks, cfg: LensConfig) -> list[dict]:
    """(words, L+1, 4, K) per-word recalls → per layer, per target, per k: mean and bootstrap interval."""
    from modevo.score import stats

    n_layers = mean.shape[1] - 1
    out = []
    for layer in range(mean.shape[1]):
        row = {"layer": layer, "depth": layer / max(1, n_layers), "recall": {}, "recall_any": {}}
        for name, arr in (("recall", mean), ("recall_any", anyhit)):
            for t, target in enumerate(TARGETS):
                cell = {}
                for j, k in enumerate(ks):
                    v = arr[:, layer, t, j]
                    keep = ~np.isnan(v)
                    if not keep.any():
                        cell[str(k)] = {"mean": None, "lo": None, "hi": None, "n": 0}
                        continue
                    e = stats.bootstrap_ci(v[keep], clusters=clusters[keep].tolist(), n_boot=cfg.n_boot,
                                           level=cfg.level, seed=cfg.seed)
                    cell[str(k)] = {"mean": e.mean, "lo": e.lo, "hi": e.hi, "n": e.n}
                row[name][target] = cell
        out.append(row)
    return out


def latent_transcription(run_dir: str | Path, n_utterances: int = 200, ks=(1, 5, 10), positions: str = "all",
                         n_boot: int = 2000, seed: int = 0, progress: bool = True, checkpoint: str | Path | None = None,
                         force: bool = False, log_mlflow: bool = False, device: str = "cpu", level: float = 0.95) -> dict:
    """The latent-transcription readout of one run's final checkpoint (or the one named): the lens.json dict
    (also written to <run>/lens/<checkpoint>/lens.json; reused when its settings match, unless force)."""
    from modevo.config import load
    from modevo.score.evaluate import checkpoints_of, load_checkpoint
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import code_version, quiet_libraries
    from modevo.units.base import resolve_device
    from modevo.views.build import ViewContext, encoder_and_inputs
    from modevo.frames import frame_index
    from modevo.views.registry import parse_view

    cfg = LensConfig(n_utterances=int(n_utterances), ks=tuple(int(k) for k in ks), positions=positions,
                     n_boot=int(n_boot), level=level, seed=int(seed), device=device)
    cfg.check()
    quiet_libraries()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir} is not a run folder (no config.yaml)")
    stage = load(TrainStageConfig, run_dir / "config.yaml")
    spec = parse_view(stage.train.view, stage.views.tokenizer)
    ctx = ViewContext(stage, progress)
    encoder, _, _ = encoder_and_inputs(spec, ctx)
    text_ids = getattr(encoder, "text_ids", None)
    if text_ids is None or not len(text_ids):
        raise InputError(f"view {spec.name} has no text tokens in its vocabulary: the lens readout needs an "
                         f"interleaved view (e.g. interleaved@varied/{stage.views.tokenizer})")
    ckpt = Path(checkpoint) if checkpoint is not None else checkpoints_of(run_dir, "final")[0]
    dev = resolve_device(cfg.device)
    settings = {"version": LENS_VERSION, "view": spec.name, "checkpoint": ckpt.name,
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items() if k != "device"},
                "device": "cpu" if dev == "cpu" else "cuda"}
    path = run_dir / "lens" / ckpt.stem / "lens.json"
    if not force and path.is_file():
        try:
            saved = json.loads(path.read_text())
        except ValueError:
            saved = {}
        if saved.get("settings") == settings:
            log.info("%s: reusing %s (same settings; --force reads again)", run_dir, path)
            return saved
    model, payload = load_checkpoint(ckpt, spec.name, encoder.vocab)
    model = model.float().to(dev).eval()
    window = model.config.max_seq_len

    # every utterance's ids and words first: the shuffled baseline permutes targets across all words
    chosen = select_rows(ctx.iter_rows("test"), cfg.n_utterances, cfg.seed)
    order = {r["id"]: i for i, r in enumerate(chosen)}
    family = spec.view_family
    found: dict[int, tuple] = {}
    for row, rendering, units in ctx.rendered_rows(family.row_rendering(spec), "test",
                                                   spec.tokenizer if family.reads_units else None, spec.rate_hz):
        if row["id"] in order:
            found[order[row["id"]]] = (row, rendering, units)
    seqs, words, counts = [], [], {"truncated_utterances": 0, "words_without_positions": 0, "words_in_utterances": 0}
    for i in sorted(found):
        row, rendering, units = found[i]
        ids = np.asarray(encoder.encode_item(row, rendering=rendering, units=units), dtype=np.int64)
        if len(ids) > window:
            ids = ids[:window]
            counts["truncated_utterances"] += 1
        start = int(frame_index(rendering["start_ms"][0], encoder.unit_ms))  # the span's first frame (span_units)
        pos = word_positions(encoder.word_frames(row, rendering), start, len(ids), cfg.positions)
        targets = [first_piece(encoder, w) for w in row["words"]]
        utt = len(seqs)
        for w, p in enumerate(pos):
            counts["words_in_utterances"] += 1
            if not len(p):
                counts["words_without_positions"] += 1
                continue
            words.append(Word(utt, p, targets[w], targets[w + 1] if w + 1 < len(targets) else -1))
        seqs.append((row["id"], ids))
    if not words:
        raise InputError(f"no word of the {len(seqs)} test utterance(s) read has a position in {spec.name}")
    mean, anyhit, n_positions = readout(model, [ids for _, ids in seqs], words, text_ids, cfg.ks, cfg.seed, dev,
                                        progress, f"lens {spec.name}")
    clusters = np.asarray([w.utt for w in words])
    n_layers = model.config.n_layer
    result = {
        "settings": settings, "code_version": code_version(), "run_dir": str(run_dir), "label": run_label(stage),
        "view": spec.name, "scale": stage.train.scale, "seed": stage.train.seed,
        "mixture": mixture(stage),
        "init_from": getattr(stage.train, "init_from", None) or None,
        "tokens_seen": int(payload.get("tokens", 0)), "n_layers": n_layers, "n_text_ids": int(len(text_ids)),
        "n_utterances": len(seqs), "n_words": len(words),
        "n_words_next": int(sum(w.next >= 0 for w in words)), "n_positions": int(n_positions), **counts,
        "utterances_hash": hashlib.sha256(json.dumps([u for u, _ in seqs]).encode()).hexdigest()[:16],
        "definition": {
            "positions": "1 + (word_frames - span start) in [<speech>] + span units; " + (
                "every frame of the word" if cfg.positions == "all" else "the word's last frame"),
            "targets": "first text-bpe piece of the word (current) / of the following word (next)",
            "rank": "among text ids, ties against the target", "recall": "per word: mean over its positions of "
            "[rank < k]; a layer: mean over words", "recall_any": "per word: [rank < k] at any of its positions",
            "shuffled": "target = the current target of the word a seeded permutation assigns",
            "ci": "cluster bootstrap over utterances, t-expanded (score/stats.py)", "depth": "layer / n_layers"},
        "layers": summarise_layers(mean, anyhit, clusters, cfg.ks, cfg),
    }
    atomic_write_json(path, result)
    if log_mlflow:
        log_lens(run_dir, result, path)
    return result


def log_lens(run_dir: Path, result: dict, path: Path) -> None:
    """lens/recall_at_<k>_<target> (and _lo, _hi) with step = layer, and lens.json as an artifact, to the run's
    MLflow entry (a run without one is left alone)."""
    info = read_run_json(run_dir)
    if not info.get("mlflow_run_id") or not info.get("tracking_uri"):
        log.info("%s has no MLflow run: the lens results stay in %s", run_dir, path)
        return
    import time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from modevo.score.tracking import metric_name

    client = MlflowClient(tracking_uri=info["tracking_uri"])
    run_id = info["mlflow_run_id"]
    try:
        client.get_run(run_id)
    except Exception as e:  # an unreachable store or a deleted run: the file stays
        raise InputError(f"cannot log to MLflow run {run_id} at {info['tracking_uri']}: {str(e).splitlines()[0]} "
                         f"(results are kept in {path})") from None
    now = int(time.time() * 1000)
    metrics = []
    for row in result["layers"]:
        for target, cell in row["recall"].items():
            for k, e in cell.items():
                if e["mean"] is None:
                    continue
                for suffix, key in (("", "mean"), ("_lo", "lo"), ("_hi", "hi")):
                    metrics.append(Metric(metric_name("lens", f"recall_at_{k}_{target}{suffix}"), float(e[key]), now,
                                          row["layer"]))
    for i in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[i:i + 900])
    client.set_tag(run_id, "lens_checkpoint", result["settings"]["checkpoint"])
    client.log_artifact(run_id, str(path), artifact_path=f"lens/{path.parent.name}")
