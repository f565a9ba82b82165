"""A factor ablation (or the whole paper) as a list of steps: what is cached, what would run, how long.

`modevo plan` prints the steps; `modevo factor A|B|C|all` runs the missing ones in order (each as its own
`modevo` process, argument lists only) and then prints that factor's rows of Table 3. Every stage below
is idempotent, so "run what is missing" is also what a rerun after a crash does.

Estimates are rough: training from a micro-benchmark of the scale's model on this machine (a few steps,
cached per model shape), the other stages from rates measured here on 2 cores (2026-11-25, smoke scale:
text 180 sentences/s, speech rendering and unit encoding ~1,000× real time, item rendering ~160 pairs/s
per speech rendering, scoring at 3× the training throughput).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from modevo.cache import atomic_write_json, cache_root, read_json, stable_hash
from modevo.config import load, to_dict
from modevo.errors import InputError
from modevo.jobs import PARENT_ENV
from modevo.machine import describe as describe_machine
from modevo.frames import DEFAULT_RATE_HZ, rate_suffix
from modevo.views.registry import parse_view

log = logging.getLogger("modevo.pipeline")

TEXT_SENTENCES_PER_S = 180.0
AUDIO_REALTIME = 1000.0
ITEM_PAIRS_PER_S = 160.0
SECONDS_PER_SENTENCE = 3.2  # spoken at 160 wpm, ~8.5 words: used before a rendering exists
# Tokens one side of a pair feeds the model, per task: means of the cpu reproduction's scored items (frame
# views at 50 Hz; character/phone views, which BPE views undercut), capped at the model's window. Without a
# word window a story's context fills the window on frame views (inf).
ITEM_TOKENS = {"frame": {"swuggy": 23, "sblimp": 118, "word-order": 138, "tsc-topic": math.inf,
                         "tsc-in-document": math.inf},
               "text": {"swuggy": 6, "sblimp": 32, "word-order": 55, "tsc-topic": 280, "tsc-in-document": 280}}
TOKENS_PER_WORD = {"frame": 118 / 8.0, "text": 32 / 8.0}  # sBLIMP's means above over its ~8 words
# a tSC pair within a window of W words (the longer ending ~55% of it) reads its context once and both
# endings (the context is scored once per pair): ~0.77·W words per side
CLOZE_WORDS_PER_SIDE = 0.77
# `modevo generate` judging: the judge and decoder n-grams, the round-trip transcription, and for unit views
# a recogniser's training
JUDGE_S, RECOGNISER_S = 60.0, 180.0


@dataclass
class Step:
    stage: str  # corpus | rendering | units | train | eval | generate
    what: str
    done: bool
    estimate_s: float | None
    command: list[str]
    status: str | None = None  # shown instead of cached / to run: "no weights" for what an unpacked run cannot do

    @property
    def shown(self) -> str:
        return self.status or ("cached" if self.done else "to run")


def _stage(scale: str, view: str, seed: int, budget: str, tokenizer: str, configs: Path, overrides=()):
    from modevo.train.config import TrainStageConfig

    path = configs / "train" / f"{scale}.yaml"
    if not path.is_file():
        raise InputError(f"no training config for scale '{scale}' ({path})")
    return load(TrainStageConfig, path, [f"train.view={view}", f"train.seed={seed}", f"train.budget={budget}",
                                         f"views.tokenizer={tokenizer}", *overrides])


def _comparable(d: dict) -> dict:
    from modevo.train.run import key_config

    d = key_config(d)
    d.get("model", {}).pop("vocab_size", None)  # set from the view at train time
    d.get("model", {}).pop("max_seq_len", None)
    return d


def finished_run(stage, runs_dir: Path) -> Path | None:
    """A finished run of exactly this config (found by its MLflow tags, then its config compared)."""
    import yaml

    from modevo.score.runs import finished_runs

    if not (runs_dir / "mlflow.db").is_file():
        return None
    r = stage.train
    try:
        found = finished_runs(runs_dir, None, r.experiment, scale=r.scale, budget=r.budget, seed=str(r.seed),
                              view=parse_view(r.view, stage.views.tokenizer).name)
    except InputError:  # no experiment yet: nothing trained
        return None
    want = _comparable(to_dict(stage))
    return next((folder for _, folder in found
                 if _comparable(yaml.safe_load((folder / "config.yaml").read_text())) == want), None)


def _train_rate(stage) -> float:
    """Training tokens/s of this model shape here: a few steps of a random model, cached per shape."""
    import torch

    from modevo.train.model import GPT
    from modevo.train.run import bf16_supported

    r = stage.train
    cfg = dataclasses.replace(stage.model, vocab_size=1000, max_seq_len=max(stage.model.max_seq_len, r.seq_len))
    key = stable_hash({"model": to_dict(cfg), "batch": r.batch_size, "seq": r.seq_len, "torch": torch.__version__,
                       "threads": torch.get_num_threads()})
    path = cache_root(stage.corpus.cache_dir) / "plan" / f"train-rate-{key}.json"
    if path.is_file():
        try:
            return float(json.loads(path.read_text())["tokens_per_s"])
        except (ValueError, KeyError, TypeError):  # a torn cache entry: measured again
            log.warning("%s is corrupt: measuring the training rate again", path)
    torch.manual_seed(0)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 1000, (r.batch_size, r.seq_len + 1))
    dtype = torch.bfloat16 if bf16_supported() else torch.float32
    times = []
    for _ in range(3):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype == torch.bfloat16):
            _, loss = model(ids[:, :-1], targets=ids[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    rate = r.batch_size * r.seq_len / min(times[1:])  # the first step warms up
    atomic_write_json(path, {"tokens_per_s": rate})
    return rate


def plan(scale: str, views: list[str], seeds: list[int], budget: str = "tokens", tokenizer: str = "mel-kmeans",
         runs_dir: str | Path = "runs", configs: str | Path = "configs", eval_config: str | Path | None = None,
         overrides: list[str] = (), eval_overrides: list[str] = (), generate: bool = True) -> list[Step]:
    """The steps of these conditions × seeds in data-flow order, each marked cached or to run, with an
    estimate. `overrides` (key=value) apply to every run's config, as on the command line. With `generate`,
    each run is also sampled and judged (`modevo generate`: the continuation column of Tables 3-4)."""
    from modevo.corpus.build import plan as corpus_plan
    from modevo.corpus.render import rendering_paths
    from modevo.score.config import EvalConfig
    from modevo.generate.evaluate import judged_of
    from modevo.score.evaluate import scored
    from modevo.score.runs import milestones, recorded_milestones

    runs_dir, configs = Path(runs_dir), Path(configs)
    eval_path = Path(eval_config) if eval_config else configs / "eval" / f"{scale}.yaml"
    ecfg = load(EvalConfig, eval_path if eval_path.is_file() else None, eval_overrides)
    mx = [sys.executable, "-m", "modevo"]
    corpus_over = [o.removeprefix("corpus.") for o in overrides if o.startswith("corpus.")]  # the corpus command's keys
    views_over = [o for o in overrides if o.split(".")[0] in ("corpus", "units", "views")]
    steps: list[Step] = []
    base = _stage(scale, views[0], seeds[0], budget, tokenizer, configs, overrides)
    units_, _, corpus = corpus_plan(base.corpus)
    manifest_path = corpus.root / "manifest.json"
    corpus_done = manifest_path.is_file()
    manifest = read_json(manifest_path, "delete it and rerun `modevo corpus build` (finished shards are kept)") \
        if corpus_done else None
    sentences = sum(v["sentences"] for v in manifest["stats"]["splits"].values()) if corpus_done else None
    max_sent = base.corpus.source.max_sentences_per_document
    guess = sentences or (len(units_) * (max_sent or 3000))
    steps.append(Step("corpus", f"{scale} text and phones ({len(units_)} work units)", corpus_done,
                      None if corpus_done else guess / TEXT_SENTENCES_PER_S,
                      mx + ["corpus", "build", "--config", str(configs / "corpus" / f"{scale}.yaml"), "--text-only",
                            *corpus_over]))
    specs = [parse_view(v, tokenizer) for v in views]
    renderings = sorted({r for s in specs for r in s.view_family.cache_renderings(s, base.views)})
    audio_s = guess * SECONDS_PER_SENTENCE
    for name in renderings:
        done = False
        if corpus_done:
            paths, _ = rendering_paths(base.corpus, corpus, manifest, name)
            done = paths.manifest.is_file()
        steps.append(Step("rendering", f"speech rendering '{name}'", done, None if done else audio_s / AUDIO_REALTIME,
                          mx + ["corpus", "build", "--config", str(configs / "corpus" / f"{scale}.yaml"),
                                "--renderings", name, *corpus_over]))
    for rate in sorted({s.rate_hz for s in specs if s.view_family.reads_units}, reverse=True):
        at = rate_suffix(rate).replace(":", " at ")
        steps.append(Step("units", f"{tokenizer} units of {', '.join(renderings)}{at} (reused if cached)", False,
                          len(renderings) * audio_s / AUDIO_REALTIME,
                          mx + ["units", "build", "--config", str(configs / "views" / f"{scale}.yaml"),
                                "--tokenizer", tokenizer, *(["--rate", f"{rate:g}hz"] if rate != DEFAULT_RATE_HZ else []),
                                *views_over]))
    sw = ecfg.tasks.swuggy
    task_pairs = {"sblimp": 4020 * (ecfg.tasks.blimp_per_paradigm or 60) / 60,
                  "swuggy": (sw.n_words + sw.oov_words) * sw.per_word,
                  "tsc-topic": min(2100, guess / 10), "tsc-in-document": min(2100, guess / 10),
                  "word-order": min(ecfg.tasks.word_order.max_pairs or math.inf, guess * 0.06)}  # cpu: 1,526 of 24,608
    pairs = sum(task_pairs.get(t, 2000) for t in ecfg.tasks.names)
    sc = ecfg.score
    milestone_tasks = ecfg.tasks.names if sc.milestone_tasks is None else sc.milestone_tasks

    def tokens_read(tasks, spec, window: int) -> float:
        kind = "frame" if spec.frame_level else "text"
        per_frame = spec.rate_hz / DEFAULT_RATE_HZ if spec.frame_level else 1.0  # the means are at 50 Hz
        lengths = {t: n * per_frame for t, n in ITEM_TOKENS[kind].items()}
        if ecfg.tasks.cloze.window_words:
            per_side = CLOZE_WORDS_PER_SIDE * ecfg.tasks.cloze.window_words * TOKENS_PER_WORD[kind] * per_frame
            lengths.update({"tsc-topic": per_side, "tsc-in-document": per_side})
        return sum(task_pairs.get(t, 2000) * min(lengths.get(t, 100), window) for t in tasks)

    rendered_encodings: set = set()  # items are rendered once per encoding, for every seed and view sharing it

    for spec in specs:
        for seed in seeds:
            stage = _stage(scale, spec.name, seed, budget, tokenizer, configs, overrides)
            folder = finished_run(stage, runs_dir)
            rate = _train_rate(stage)
            tokens = stage.train.max_tokens if budget != "epochs" else None
            steps.append(Step("train", f"{spec.name} seed {seed} ({budget})", folder is not None,
                              None if folder is not None or tokens is None else tokens / rate,
                              mx + ["train", "--config", str(configs / "train" / f"{scale}.yaml"), "--view", spec.name,
                                    f"train.seed={seed}", f"train.budget={budget}", f"views.tokenizer={tokenizer}",
                                    *overrides, f"train.runs_dir={runs_dir}", "--no-progress"]))
            ckpts = recorded_milestones(folder) if folder is not None else []
            weightless = folder is not None and not milestones(folder)  # unpacked: scored elsewhere, not here
            ckpts = ckpts if sc.checkpoints == "all" else ckpts[-1:]
            scored_ok = bool(ckpts) and all(scored(folder, c, ecfg) is not None for c in ckpts)
            if weightless and not scored_ok:
                log.warning("%s has no weights here (unpacked) and is not scored under this eval config; it "
                            "cannot be scored again here, so the report may refuse its protocol", folder)
            n_ckpt = stage.train.milestones if sc.checkpoints == "all" else 1
            grid = len(spec.view_family.test_renderings(spec, list(base.corpus.speech.renderings)))
            encoding = spec.view_family.item_encoding(spec)
            render_s = 0.0 if encoding in rendered_encodings else \
                pairs * grid / ITEM_PAIRS_PER_S if spec.frame_level else pairs / 2000
            rendered_encodings.add(encoding)
            window = stage.model.max_seq_len
            # the last milestone: every task × the grid; the others: the grid too, or milestone_tasks on one rendering
            last = grid * tokens_read(ecfg.tasks.names, spec, window)
            earlier = (1 if sc.milestone_tasks is not None else grid) * tokens_read(milestone_tasks, spec, window)
            # two sides a pair, read at ~2x the training tokens/s (measured here: small padded batches and
            # per-layer read-outs keep scoring from the ~3x a forward's share of a training step would give)
            score_s = (last + (n_ckpt - 1) * earlier) / rate
            done = scored_ok or weightless  # nothing this machine could run for a weightless run
            steps.append(Step("eval", f"{spec.name} seed {seed}: {', '.join(ecfg.tasks.names)}", done,
                              None if done else render_s + score_s,
                              mx + ["eval", "--all", "--scale", scale, "--config", str(eval_path), "--runs-dir",
                                    str(runs_dir), *eval_overrides, "--no-progress"],
                              None if scored_ok or not weightless else "no weights"))
            if generate:
                last = recorded_milestones(folder)[-1:] if folder is not None else []
                sampled = bool(last) and judged_of(folder, last[0].stem) is not None
                # an unpacked run without judged continuations cannot be sampled here: say so, not "cached"
                steps.append(Step("generate", f"{spec.name} seed {seed}: continuations, judged", sampled or weightless,
                                  None if sampled or weightless else _generate_s(spec, rate),
                                  mx + ["generate", "--all", "--scale", scale, "--views", ",".join(s.name for s in specs),
                                        "--runs-dir", str(runs_dir), "--no-progress"],
                                  None if sampled or not weightless else "no weights"))
    return steps


def _generate_s(spec, train_rate: float) -> float:
    """`modevo generate` with its defaults: prompts × seeds continuations of max_seconds (one token per step with
    a KV cache, ~1/4 of the training throughput on this machine), then judging (decoder and judge, plus a unit
    recogniser for views that read units)."""
    from modevo.generate.sample import WORDS_PER_SECOND, SampleConfig

    cfg = SampleConfig()
    per_row = spec.rate_hz * cfg.max_seconds if spec.frame_level else \
        cfg.max_seconds * WORDS_PER_SECOND * TOKENS_PER_WORD["text"]
    return cfg.prompts * cfg.seeds * per_row / (train_rate / 4) + JUDGE_S + \
        (RECOGNISER_S if spec.view_family.reads_units else 0)


def format_plan(steps: list[Step]) -> str:
    lines = [f"{'stage':<10} {'status':<10} {'estimate':>10}  what"]
    todo = 0.0
    for s in steps:
        est = "—" if s.done else ("?" if s.estimate_s is None else _dur(s.estimate_s))
        todo += 0 if s.done or s.estimate_s is None else s.estimate_s
        lines.append(f"{s.stage:<10} {s.shown:<10} {est:>10}  {s.what}")
    n = sum(not s.done for s in steps)
    lines.append(f"{n} of {len(steps)} steps to run, about {_dur(todo)} on this machine (rough; see modevo/pipeline.py)")
    weightless = sum(s.status == "no weights" for s in steps)
    if weightless:
        lines.append(f"{weightless} step(s) of unpacked runs cannot run here (a bundle has no weights): train those "
                     "conditions in a runs folder without their bundles to score or sample them anew")
    return "\n".join(lines)


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h")


def run_steps(steps: list[Step], times_log: Path | None = None) -> None:
    """Run the missing steps: building and training first, then scoring, which is one `eval --all` for the
    scale (it scores every finished run and skips those already scored), then generation (one `generate
    --all` over the plan's conditions, likewise). Each step's wall time is appended to `times_log` (JSON
    lines; `modevo report` sums them per stage)."""
    seen: set[tuple] = set()
    later = ("eval", "generate")  # scoring and generation wait for every run of the plan to be trained
    todo = [s for s in steps if not s.done and s.stage not in later] + \
        [s for stage in later for s in steps if not s.done and s.stage == stage]
    for s in todo:
        if tuple(s.command) in seen:
            continue
        seen.add(tuple(s.command))
        print(f"modevo: {s.stage}: {s.what}", flush=True)
        started = time.time()
        code = subprocess.run(s.command, env={**os.environ, PARENT_ENV: str(os.getpid())}).returncode
        if times_log is not None:
            _log_time(times_log, s, started, code, _batched_what(todo, s.stage) if s.stage in later else s.what)
        if code != 0:
            raise InputError(f"step '{s.stage}: {s.what}' failed (exit {code}); its finished work is kept: rerun "
                             "the same command to go on")


def _batched_what(todo: list[Step], stage: str) -> str:
    """One `eval --all` (`generate --all`) serves every run missing it: name the runs this plan needed."""
    runs = [s.what.split(":")[0] for s in todo if s.stage == stage]
    if stage == "eval":
        return f"scoring {', '.join(runs)} (and any other unscored run of the scale)"
    return f"sampling and judging {', '.join(runs)}"


def _log_time(path: Path, step: Step, started: float, code: int, what: str) -> None:
    machine = describe_machine(with_torch=False)
    rec = {"stage": step.stage, "what": what, "seconds": round(time.time() - started, 1), "exit": code,
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "host": machine["host"],
           "cpus": machine["cpus"], "processor": machine["processor"], "command": step.command[2:]}
    if hasattr(os, "getloadavg"):  # was the machine busy? (15-min load at the end ≈ the load during a long step)
        rec["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
