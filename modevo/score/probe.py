"""`modevo probe`: linear probes of every layer of a frozen model, with the controls that make them readable.

What each probe predicts from one layer's hidden state at one position (labels are what the corpus knows
exactly, read through the view family's `token_alignment`, never from a model):

    phone     the phone the token stands for (views/align.py: a frame's phone, a phone token's phone, the
              last phone a BPE piece completes); text views have none
    place, manner, voicing   that phone's articulatory class (modevo/resources/phone_features.csv)
    speaker   the voice the utterance was rendered with, at every token (views that read a rendering)
    pitch     the utterance's rendering pitch in equal-count buckets of the train split (same views)
    word      the word at its word-final token (the token where it is complete): the train split's most
              frequent words, the rest left out

Protocol: the model is frozen; the input is [SEP] + the utterance (as training packs it), cut to the
model's window. Positions are sampled (at most `max_positions` per probe and split, seeded). A probe is
multinomial logistic regression (torch nn.Linear, LBFGS with a fixed number of iterations, features
standardised on the train positions) fitted on the corpus's train split; its weight decay is chosen per
layer on a validation slice of train utterances, then it is refitted on all train positions and scored on
test-split utterances (never trained on). Every layer gets the same treatment: L+1 states, 0 = embeddings.

Controls beside every accuracy: the majority class of the train labels (its accuracy on the test
positions) and the same probe fitted on shuffled train labels (which must stay near the majority: a probe
that beats it there is memorising, not reading). Intervals: bootstrap over test utterances (positions of
one utterance are not independent), score/stats.py.

Written to <run>/probes/<checkpoint stem>/probes.json and the run's MLflow entry
(probe/<name>/layer_acc step = layer, beside eval/<task>/layer_acc).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from modevo.cache import atomic_write_json, read_run_json, stable_hash
from modevo.config import require
from modevo.errors import ConfigError, InputError
from modevo.views.registry import SEP_ID

log = logging.getLogger("modevo.score")

PROBE_VERSION = "probe-1"  # bump when labels, sampling or the fit change what a number means
PROBES = ("phone", "place", "manner", "voicing", "speaker", "pitch", "word")
PHONE_PROBES = ("phone", "place", "manner", "voicing")
UTTERANCE_PROBES = ("speaker", "pitch")
SPLITS = ("train", "test")


@dataclass
class ProbeConfig:
    probes: list[str] = field(default_factory=lambda: list(PROBES))
    max_positions: int = 10_000  # positions sampled per probe and split
    max_utterances: int = 2_000  # utterances read per split (corpus order)
    valid_fraction: float = 0.2  # of the train utterances: where the weight decay is chosen
    weight_decays: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1])
    steps: int = 100  # LBFGS iterations per fit
    pitch_buckets: int = 3
    max_word_classes: int = 100
    min_class_count: int = 2  # a label seen fewer times in the train positions is left out
    n_boot: int = 1_000
    level: float = 0.95
    seed: int = 0
    batch_size: int = 16  # utterances per forward: speed only
    device: str = "cpu"

    def __post_init__(self):
        try:
            unknown = [p for p in self.probes if p not in PROBES]
            require(not unknown, f"unknown probe '{unknown[0] if unknown else ''}' (known: {', '.join(PROBES)})")
            require(len(self.probes) > 0, "--probes names no probe")
            require(self.max_positions >= 10, f"--max-positions must be at least 10, got {self.max_positions}")
            require(self.max_utterances >= 2, f"--max-utterances must be at least 2, got {self.max_utterances}")
            require(0 < self.valid_fraction < 1, f"valid_fraction must lie in (0, 1), got {self.valid_fraction}")
            require(len(self.weight_decays) > 0 and min(self.weight_decays) >= 0, "weight_decays must be >= 0")
            require(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
            require(self.pitch_buckets >= 2, f"pitch_buckets must be at least 2, got {self.pitch_buckets}")
            require(self.max_word_classes >= 2, f"max_word_classes must be at least 2, got {self.max_word_classes}")
            require(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def recorded(self) -> dict:
        """What the numbers depend on (not where they were computed, nor the batch size)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "batch_size")}


# -- the phone-feature table ---------------------------------------------------------------------------------
def phone_features() -> dict[str, dict[str, str]]:
    """ARPAbet phone → {"place", "manner", "voicing"} from modevo/resources/phone_features.csv."""
    text = resources.files("modevo").joinpath("resources/phone_features.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    return {r["phone"]: {k: r[k] for k in ("place", "manner", "voicing")} for r in rows}


# -- the fit ---------------------------------------------------------------------------------------------------
def fit_linear(X, y, n_classes: int, weight_decay: float, steps: int):
    """Multinomial logistic regression on standardised X (n, C) → a function X → predicted classes.
    nn.Linear from zeros, full-batch LBFGS (strong Wolfe line search) for `steps` iterations on mean
    cross-entropy + weight_decay · ||W||² (the bias not penalised): deterministic for given data."""
    import torch
    import torch.nn.functional as F

    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    mu, sd = X.mean(0), X.std(0, unbiased=False).clamp_min(1e-6)
    Z = (X - mu) / sd
    lin = torch.nn.Linear(X.shape[1], n_classes).to(X.device)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(Z), y) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    lin.requires_grad_(False)

    def predict(Xn):
        Xn = torch.as_tensor(Xn, dtype=torch.float32, device=X.device)
        return lin((Xn - mu) / sd).argmax(-1).cpu().numpy()

    return predict


def _valid_split(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the train positions whose utterance is in the validation slice (utterance-grouped)."""
    utts = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_valid = max(1, int(round(fraction * len(utts)))) if len(utts) > 1 else 0
    chosen = rng.choice(utts, size=n_valid, replace=False) if n_valid else np.zeros(0, dtype=utts.dtype)
    return np.isin(groups, chosen)


def probe_layer(Xtr, ytr, gtr, Xte, yte, n_classes: int, cfg: ProbeConfig, seed: int) -> dict:
    """One layer: weight decay chosen on the validation utterances, refit on all train positions, test
    accuracy per position; the same fit on shuffled train labels. Returns per-position correctness too."""
    valid = _valid_split(gtr, cfg.valid_fraction, seed)
    best_wd, best_acc, valid_accs = cfg.weight_decays[0], -1.0, {}
    if valid.any() and (~valid).any() and len(np.unique(ytr[~valid])) > 1:
        for wd in sorted(cfg.weight_decays, reverse=True):  # ties go to the stronger decay
            pred = fit_linear(Xtr[~valid], ytr[~valid], n_classes, wd, cfg.steps)
            acc = float((pred(Xtr[valid]) == ytr[valid]).mean())
            valid_accs[f"{wd:g}"] = acc
            if acc > best_acc:
                best_wd, best_acc = wd, acc
    else:
        best_wd = max(cfg.weight_decays)
    correct = fit_linear(Xtr, ytr, n_classes, best_wd, cfg.steps)(Xte) == yte
    shuffled = np.random.default_rng(seed + 1).permutation(ytr)
    shuffled_correct = fit_linear(Xtr, shuffled, n_classes, best_wd, cfg.steps)(Xte) == yte
    return {"correct": correct, "shuffled_correct": shuffled_correct, "weight_decay": best_wd,
            "valid_acc": best_acc if best_acc >= 0 else None, "valid_by_weight_decay": valid_accs}


# -- labels -----------------------------------------------------------------------------------------------------
@dataclass
class Utterance:
    id: str
    ids: np.ndarray  # the view's token ids (no separator), cut to the window
    labels: dict  # probe → (positions (k,) int64 into ids, labels (k,) str)


def _plain(phone: str) -> str:
    return phone.rstrip("012")


def utterance_labels(fam, spec, encoder, row: dict, rendering, units, voice_pitch: dict | None,
                     features: dict, wanted: list[str], counts: dict) -> Utterance | None:
    """An utterance's ids and, per wanted probe, its labelled token positions (those it can label)."""
    # as the view's task items are heard (an interleaved view: speech only, after its speech mark)
    ids = np.asarray(encoder.encode_item(row, rendering=rendering, units=units), dtype=np.int64)
    labels: dict = {}
    needs_tokens = [p for p in wanted if p in PHONE_PROBES or p == "word"]
    al = None
    if needs_tokens:
        try:
            al = fam.token_alignment(spec, encoder, row, rendering, units)
        except NotImplementedError:
            al = None
        if al is not None and len(al) != len(ids):
            counts["misaligned_utterances"] = counts.get("misaligned_utterances", 0) + 1
            al = None
        elif al is None:
            counts["unaligned_utterances"] = counts.get("unaligned_utterances", 0) + 1
    if al is not None:
        flat = [_plain(p) for ws in row["phones"] for p in ws]
        at = np.flatnonzero(al.phone >= 0)
        phones = [flat[j] for j in al.phone[at]]
        if "phone" in wanted and len(at):
            labels["phone"] = (at, np.asarray(phones, dtype=object))
        for key in ("place", "manner", "voicing"):
            if key in wanted and len(at):
                keep = np.asarray([p in features for p in phones], dtype=bool)
                labels[key] = (at[keep], np.asarray([features[p][key] for p in phones if p in features], dtype=object))
        if "word" in wanted:
            ends = al.word_final()
            if len(ends):
                labels["word"] = (ends, np.asarray([row["words"][w] for w in al.word[ends]], dtype=object))
    if voice_pitch is not None and len(ids):
        everywhere = np.arange(len(ids), dtype=np.int64)
        if "speaker" in wanted:
            labels["speaker"] = (everywhere, np.full(len(ids), voice_pitch["voice"], dtype=object))
        if "pitch" in wanted:
            labels["pitch"] = (everywhere, np.full(len(ids), voice_pitch["pitch"], dtype=object))
    return Utterance(row["id"], ids, labels)


def _voices_and_pitches(ctx, rendering: str, split: str) -> dict[str, dict]:
    """Utterance id → {"voice", "pitch"} of one rendering's rows of a split (the rendering's own columns)."""
    from modevo.views.build import _shard_table

    paths, _ = ctx.rendering(rendering)
    out = {}
    for shard, rows in ctx.iter_shards():
        wanted = {r["id"] for r in rows if r["split"] == split}
        if not wanted:
            continue
        for r in _shard_table(paths.shards / f"{shard:05d}" / "data", ["id", "voice", "pitch"]):
            if r["id"] in wanted:
                out[r["id"]] = {"voice": str(r["voice"]), "pitch": float(r["pitch"])}
    return out


def read_split(ctx, spec, encoder, split: str, cfg: ProbeConfig, wanted: list[str], features: dict,
               counts: dict) -> list[Utterance]:
    """The first max_utterances utterances of a split, encoded and labelled through the view family."""
    from itertools import islice

    fam = spec.view_family
    rendering = fam.row_rendering(spec)
    speaker_info = None
    if rendering is not None and any(p in UTTERANCE_PROBES for p in wanted):
        speaker_info = _voices_and_pitches(ctx, rendering, split)
    if fam.item_speech(spec) and rendering is not None:
        tokenizer = spec.tokenizer if fam.reads_units else None
        source = ctx.rendered_rows(rendering, split, tokenizer, spec.rate_hz)
    else:
        source = ((r, None, None) for r in ctx.iter_rows(split))
    out = []
    for row, rend, units in islice(source, cfg.max_utterances):
        vp = speaker_info.get(row["id"]) if speaker_info is not None else None
        u = utterance_labels(fam, spec, encoder, row, rend, units, vp, features, wanted, counts)
        if u is not None and len(u.ids):
            out.append(u)
    return out


def _pitch_buckets(train: list[Utterance], n: int) -> np.ndarray | None:
    """Equal-count bucket edges of the train utterances' pitches; None where the pitch never varies."""
    values = np.asarray([float(u.labels["pitch"][1][0]) for u in train if "pitch" in u.labels])
    if len(values) == 0 or len(np.unique(values)) < 2:
        return None
    return np.unique(np.quantile(values, np.linspace(0, 1, n + 1)[1:-1]))


def _bucket(pitch: float, edges: np.ndarray) -> str:
    k = int(np.searchsorted(edges, pitch, side="right"))
    return f"q{k + 1}"


# -- hidden states -----------------------------------------------------------------------------------------------
def gather_states(model, utts: list[Utterance], wanted: dict[int, np.ndarray], batch_size: int, device: str,
                  progress: bool, desc: str) -> tuple[np.ndarray, dict]:
    """Hidden states (L+1, n, C) fp32 at the wanted token positions (utterance index → sorted positions into
    its ids), and (utterance index, position) → row. Token t of an utterance sits at sequence position t+1,
    after the separator, so its state has read the token."""
    import torch
    from tqdm.auto import tqdm

    order = sorted(wanted, key=lambda i: -len(utts[i].ids))
    rows: dict = {}
    n = sum(len(v) for v in wanted.values())
    L1, C = model.config.n_layer + 1, model.config.d_model
    out = np.zeros((L1, n, C), dtype=np.float32)
    k = 0
    bar = tqdm(total=len(order), desc=desc, unit="utt", disable=not progress, leave=False)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            T = 1 + max(len(utts[i].ids) for i in batch)
            ids = torch.full((len(batch), T), SEP_ID, dtype=torch.long)  # right-padded: causal, never read
            for b, i in enumerate(batch):
                ids[b, 1:1 + len(utts[i].ids)] = torch.as_tensor(utts[i].ids)
            hiddens, _ = model.hidden_states(ids.to(device))
            for b, i in enumerate(batch):
                pos = torch.as_tensor(wanted[i] + 1, device=device)
                for layer, h in enumerate(hiddens):
                    out[layer, k:k + len(pos)] = h[b, pos].float().cpu().numpy()
                for j, p in enumerate(wanted[i].tolist()):
                    rows[(i, p)] = k + j
                k += len(pos)
            bar.update(len(batch))
    bar.close()
    return out, rows


# -- a run -------------------------------------------------------------------------------------------------------
def probes_path(run_dir: Path, ckpt: Path) -> Path:
    return run_dir / "probes" / ckpt.stem / "probes.json"


def probe_run(run_dir: str | Path, cfg: ProbeConfig, milestone: str = "final", progress: bool = True,
              log_mlflow: bool = True, force: bool = False) -> dict:
    """Probe every layer of a run's milestone; writes and returns <run>/probes/<ckpt>/probes.json (reused
    when the checkpoint and settings are unchanged, unless force)."""
    from modevo.config import load
    from modevo.score.evaluate import load_checkpoint
    from modevo.score.stats import bootstrap_ci
    from modevo.train.config import TrainStageConfig
    from modevo.train.export import find_milestone
    from modevo.train.run import code_version, quiet_libraries
    from modevo.units.base import resolve_device
    from modevo.views.build import ViewContext, encoder_and_inputs
    from modevo.views.registry import parse_view

    quiet_libraries()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir} is not a run folder (no config.yaml)")
    ckpt = find_milestone(run_dir, milestone)
    stage = load(TrainStageConfig, run_dir / "config.yaml")
    spec = parse_view(stage.train.view, stage.views.tokenizer)
    key = {"version": PROBE_VERSION, "checkpoint": ckpt.name, "checkpoint_bytes": ckpt.stat().st_size,
           "view": spec.name, "config": cfg.recorded()}
    out_path = probes_path(run_dir, ckpt)
    if not force and out_path.is_file():
        saved = json.loads(out_path.read_text())
        if saved.get("key") == key:
            log.info("%s: reusing %s (same checkpoint and settings; --force probes again)", run_dir, out_path)
            return saved
    t0 = time.time()
    device = resolve_device(cfg.device)
    ctx = ViewContext(stage, progress)
    encoder, _, _ = encoder_and_inputs(spec, ctx)
    model, payload = load_checkpoint(ckpt, spec.name, encoder.vocab)
    model = model.float().to(device).eval()
    window = model.config.max_seq_len - 1  # the separator takes one position
    features = phone_features()
    fam = spec.view_family
    wanted = list(dict.fromkeys(cfg.probes))
    skipped: dict[str, str] = {}
    if fam.row_rendering(spec) is None:
        for p in [p for p in wanted if p in UTTERANCE_PROBES]:
            skipped[p] = f"view {spec.name} reads no rendering: its tokens carry no speaker or pitch"
    wanted = [p for p in wanted if p not in skipped]
    counts: dict = {}
    utts = {split: read_split(ctx, spec, encoder, split, cfg, wanted, features, counts) for split in SPLITS}
    truncated = 0
    for split in SPLITS:  # cut to the window: a position past it has no state
        for u in utts[split]:
            if len(u.ids) > window:
                truncated += 1
                u.ids = u.ids[:window]
                u.labels = {p: (pos[pos < window], lab[pos < window]) for p, (pos, lab) in u.labels.items()}
    counts["truncated_utterances"] = truncated
    if not utts["train"] or not utts["test"]:
        raise InputError(f"{spec.name}: the corpus has no {'train' if not utts['train'] else 'test'}-split utterance "
                         "to probe with")
    if "pitch" in wanted:
        edges = _pitch_buckets(utts["train"], cfg.pitch_buckets)
        if edges is None:
            skipped["pitch"] = "one pitch in the rendering's train split: nothing to predict"
        else:
            counts["pitch_bucket_edges"] = edges.tolist()
            for u in utts["train"] + utts["test"]:
                if "pitch" in u.labels:
                    pos, lab = u.labels["pitch"]
                    u.labels["pitch"] = (pos, np.full(len(pos), _bucket(float(lab[0]), edges), dtype=object))
    for p in wanted:
        if p not in skipped and not any(p in u.labels for u in utts["train"]):
            skipped[p] = (f"view {spec.name} has no {p} labels: its family does not align tokens to phones"
                          if p in PHONE_PROBES else f"view {spec.name} has no {p} labels")
    wanted = [p for p in wanted if p not in skipped]

    # labels and sampled positions per probe; the classes are the train split's (word: its most frequent)
    plan = {}
    for p in wanted:
        freq: dict[str, int] = {}
        for u in utts["train"]:
            for lab in u.labels.get(p, ((), ()))[1]:
                freq[lab] = freq.get(lab, 0) + 1
        classes = sorted((c for c, n in freq.items() if n >= cfg.min_class_count), key=lambda c: (-freq[c], c))
        if p == "word":
            classes = classes[:cfg.max_word_classes]
        if len(classes) < 2:
            skipped[p] = f"fewer than 2 classes seen {cfg.min_class_count}+ times in the train positions"
            continue
        index = {c: k for k, c in enumerate(classes)}
        sets = {}
        for split in SPLITS:
            found = [(i, pos, lab) for i, u in enumerate(utts[split]) if p in u.labels
                     for pos, lab in zip(u.labels[p][0].tolist(), u.labels[p][1]) if lab in index]
            sets[split] = _sample_list(found, cfg.max_positions, p, split, cfg.seed)
        if not sets["test"] or len({lab for _, _, lab in sets["train"]}) < 2:
            skipped[p] = "no test positions with a train class" if not sets["test"] else "one class in the train sample"
            continue
        plan[p] = (classes, index, sets)
    for p, why in skipped.items():
        log.info("probe %s skipped for %s: %s", p, spec.name, why)

    states, rows = {}, {}
    for split in SPLITS:
        need: dict[int, set] = {}
        for _, _, sets in plan.values():
            for i, pos, _ in sets[split]:
                need.setdefault(i, set()).add(pos)
        states[split], rows[split] = gather_states(
            model, utts[split], {i: np.asarray(sorted(v), dtype=np.int64) for i, v in need.items()},
            cfg.batch_size, device, progress, f"probe {spec.name} {split}")

    from tqdm.auto import tqdm

    L1 = model.config.n_layer + 1
    results = {}
    bar = tqdm(total=len(plan) * L1, desc=f"probe fits {spec.name}", unit="layer", disable=not progress, leave=False)
    for p, (classes, index, sets) in plan.items():
        r_tr = np.asarray([rows["train"][(i, pos)] for i, pos, _ in sets["train"]])
        r_te = np.asarray([rows["test"][(i, pos)] for i, pos, _ in sets["test"]])
        ytr = np.asarray([index[lab] for _, _, lab in sets["train"]])
        yte = np.asarray([index[lab] for _, _, lab in sets["test"]])
        gtr = np.asarray([i for i, _, _ in sets["train"]])
        gte = [utts["test"][i].id for i, _, _ in sets["test"]]
        majority = int(np.bincount(ytr, minlength=len(classes)).argmax())
        maj_correct = (yte == majority).astype(float)
        maj = bootstrap_ci(maj_correct, clusters=gte, n_boot=cfg.n_boot, level=cfg.level, seed=cfg.seed)
        layers = []
        for layer in range(L1):
            fit = probe_layer(states["train"][layer, r_tr], ytr, gtr, states["test"][layer, r_te], yte, len(classes),
                              cfg, cfg.seed + layer)
            e = bootstrap_ci(fit["correct"].astype(float), clusters=gte, n_boot=cfg.n_boot, level=cfg.level,
                             seed=cfg.seed)
            layers.append({"layer": layer, "relative_depth": layer / (L1 - 1), "acc": e.mean, "lo": e.lo, "hi": e.hi,
                           "shuffled_acc": float(fit["shuffled_correct"].mean()),
                           "weight_decay": fit["weight_decay"], "valid_acc": fit["valid_acc"],
                           "valid_by_weight_decay": fit["valid_by_weight_decay"]})
            bar.update(1)
        freq = np.bincount(ytr, minlength=len(classes))
        results[p] = {
            "probe": p, "classes": len(classes), "n_train": int(len(ytr)), "n_test": int(len(yte)),
            "train_utterances": int(len(set(gtr.tolist()))), "test_utterances": int(len(set(gte))),
            "majority": {"label": classes[majority], "acc": maj.mean, "lo": maj.lo, "hi": maj.hi},
            "class_counts_train": {classes[k]: int(freq[k]) for k in np.argsort(-freq)[:20]},
            "layers": layers, "best_layer": int(max(layers, key=lambda r: r["acc"])["layer"])}
    bar.close()
    info = read_run_json(run_dir)
    result = {
        "key": key, "view": spec.name, "condition": fam.condition_name(spec), "checkpoint": ckpt.name,
        "tokens_seen": int(payload.get("tokens", 0) or 0), "n_layer": model.config.n_layer, "run_dir": str(run_dir),
        "mlflow_run_id": info.get("mlflow_run_id"), "seed": stage.train.seed, "code_version": code_version(),
        "config": cfg.recorded(), "utterances": {s: len(utts[s]) for s in SPLITS}, "counts": counts,
        "skipped": skipped, "probes": results, "seconds": round(time.time() - t0, 1),
        "method": ("frozen model; [SEP] + utterance, cut to the window; logistic regression (nn.Linear, LBFGS, "
                   f"{cfg.steps} iterations, standardised features) per layer, weight decay chosen on "
                   f"{cfg.valid_fraction:g} of the train utterances from {cfg.weight_decays}, refit on train, scored "
                   "on test-split utterances; controls: majority class of the train labels, the same probe on "
                   f"shuffled train labels; {100 * cfg.level:g}% bootstrap intervals over test utterances")}
    atomic_write_json(out_path, result)
    if log_mlflow and info.get("mlflow_run_id") and info.get("tracking_uri"):
        log_probes(info, result, out_path)
    return result


def _sample_list(found: list, limit: int, probe: str, split: str, seed: int) -> list:
    if len(found) <= limit:
        return found
    rng = np.random.default_rng(int(stable_hash({"probe": probe, "split": split, "seed": seed}, 8), 16))
    return [found[j] for j in np.sort(rng.choice(len(found), size=limit, replace=False))]


def log_probes(info: dict, result: dict, path: Path) -> None:
    """probe/<name>/layer_acc (and layer_shuffled) with step = layer; majority, best and n at tokens seen."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from modevo.score.tracking import metric_name

    client = MlflowClient(tracking_uri=info["tracking_uri"])
    run_id = info["mlflow_run_id"]
    try:
        client.get_run(run_id)
    except Exception as e:  # noqa: BLE001 (an unreachable store or a deleted run: probes.json stays)
        raise InputError(f"cannot log to MLflow run {run_id} at {info['tracking_uri']}: {str(e).splitlines()[0]} "
                         f"(results are kept in {path})") from None
    now, step = int(time.time() * 1000), result["tokens_seen"]
    metrics = []
    for name, r in result["probes"].items():
        metrics += [Metric(metric_name("probe", name, "layer_acc"), float(x["acc"]), now, x["layer"]) for x in r["layers"]]
        metrics += [Metric(metric_name("probe", name, "layer_shuffled"), float(x["shuffled_acc"]), now, x["layer"])
                    for x in r["layers"]]
        best = max(x["acc"] for x in r["layers"])
        metrics += [Metric(metric_name("probe", name, k), float(v), now, step) for k, v in
                    (("majority", r["majority"]["acc"]), ("best_acc", best), ("best_layer", r["best_layer"]),
                     ("n_test", r["n_test"]), ("classes", r["classes"]))]
    for i in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[i:i + 900])
    client.set_tag(run_id, "probe_checkpoint", result["checkpoint"])
    client.log_artifact(run_id, str(path), artifact_path=f"probes/{path.parent.name}")


def log_figures(run_dir: Path, result: dict, figures: list[Path]) -> None:
    """The probe figures (report/probes.py draws them) as artifacts of the run's MLflow entry, if it has one."""
    info = read_run_json(run_dir)
    if not (info.get("mlflow_run_id") and info.get("tracking_uri")) or not figures:
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=info["tracking_uri"])
    for f in figures:
        client.log_artifact(info["mlflow_run_id"], str(f), artifact_path=f"probes/{Path(result['checkpoint']).stem}")


def format_probes(result: dict) -> str:
    """One line per probe: accuracy by layer, the best layer, the controls."""
    lines = [f"{result['view']} {result['checkpoint']}: probes of {result['n_layer'] + 1} layers "
             f"({result['utterances']['train']} train / {result['utterances']['test']} test utterances)"]
    for name, r in result["probes"].items():
        layers = " ".join(f"{100 * x['acc']:.0f}" for x in r["layers"])
        best = r["layers"][r["best_layer"]]
        shuffled = max(x["shuffled_acc"] for x in r["layers"])
        lines.append(f"  {name:<8} {r['classes']:>4} classes | layers {layers} | best layer {r['best_layer']} "
                     f"{100 * best['acc']:.1f} [{100 * best['lo']:.1f}, {100 * best['hi']:.1f}] | majority "
                     f"{100 * r['majority']['acc']:.1f} | shuffled labels ≤ {100 * shuffled:.1f} | n={r['n_test']}")
    for name, why in result["skipped"].items():
        lines.append(f"  {name:<8} skipped: {why}")
    return "\n".join(lines)
