"""`modevo judge`: a run's sampled continuations → words → the judge's perplexity, with what it cost to get words.

For <run>/samples/<checkpoint>/samples.jsonl (`modevo sample`), every continuation is read back as words:
  1. the view's family says what its tokens are in a decodable alphabet (ViewFamily.to_symbols): letters,
     phones or raw speech units;
  2. units go through a unit recogniser trained for the view's rendering, tokenizer and rate (units → phones);
  3. letters go through a lexicon decoder over the train split's spellings, phones through one over its
     pronunciations (LexiconDecoder.from_spellings / from_rows): both segment a string without word breaks
     into lexicon words with the train split's word n-gram. Word breaks in the output (views with word
     boundaries on) are dropped: the decoder segments every view alike.
Then `summarise_continuations` scores the words with the judge (word KN n-gram of the train split), context =
the prompt's words, end of sentence scored only where the model ended at the separator.

The words are only as good as the way back to them, so the transcription error is reported beside every
perplexity: the same path (the view's encoder → to_symbols → recogniser → decoder) run on held-out test
utterances whose words are known ("round-trip WER"), plus the decoder's WER on clean symbols and, for unit
views, the recogniser's PER. Decoder, recogniser, judge and those errors are cached beside the corpus, keyed
by what they are built from; <run>/samples/<checkpoint>/judged.json records every number and its provenance.

Note what the decoder does to the comparison: every view's output is mapped onto lexicon words, so a view
that invents non-words is judged on the nearest lexicon words (paying edit costs inside the decoder, not in
the perplexity); the OOV rate is then near zero for every view, and the transcription errors are the measure
of how much the way back distorts.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from modevo.cache import atomic_write_json, file_digest, stable_hash
from modevo.errors import InputError

log = logging.getLogger("modevo.generate")

JUDGED_VERSION = "judged-2"  # bump when what judged.json's numbers mean changes (2: the reference perplexity)
TRANSCRIPTION_VERSION = "judged-1"  # the cached transcription errors: unchanged by judged-2
RECOGNISER_EDIT_COST = 6.0  # lexicon_decoder.py's doc: noisy recogniser phones want a lower edit cost


@dataclass
class JudgeConfig:
    order: int = 3  # the judge's and the decoders' word n-gram order
    eval_rows: int = 200  # held-out test utterances the transcription errors are measured on
    n_boot: int = 10_000
    seed: int = 0  # the bootstrap's

    def __post_init__(self):
        if self.order < 1 or self.eval_rows < 1 or self.n_boot < 1:
            from modevo.errors import ConfigError

            raise ConfigError(f"judge settings need order ≥ 1, eval_rows ≥ 1, n_boot ≥ 1 (got {asdict(self)})")


def _samples_folder(run_dir: Path, checkpoint: str | None) -> Path:
    from modevo.score.evaluate import checkpoints_of

    stem = Path(checkpoint).stem if checkpoint else checkpoints_of(run_dir, "final")[0].stem
    folder = run_dir / "samples" / stem
    if not (folder / "settings.json").is_file():
        raise InputError(f"{run_dir}: no finished samples of checkpoint {stem} ({folder}/settings.json is missing): "
                         f"run `modevo sample --run {run_dir}` first")
    return folder


def _read_samples(folder: Path) -> tuple[list[dict], dict]:
    settings = json.loads((folder / "settings.json").read_text())
    path = folder / "samples.jsonl"
    if not path.is_file() or file_digest(path) != settings.get("samples_sha256"):
        raise InputError(f"{path} is missing or changed since it was sampled: run `modevo sample --force` again")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()], settings


# -- cached resources ------------------------------------------------------------------------------------------
class Resources:
    """The judge, decoders and recognisers of one corpus, cached under <corpus>/generate/<kind>/<inputs key>/."""

    def __init__(self, ctx, order: int):
        self.ctx, self.order = ctx, order
        self.corpus_hash = ctx.manifest["content_hash"]
        self.root = Path(ctx.corpus.root) / "generate"

    def _cached(self, kind: str, inputs: dict, build, load):
        folder = self.root / kind / stable_hash({"corpus": self.corpus_hash, **inputs}, 16)
        found = sorted(folder.glob("*/manifest.json"))
        if found:
            return load(found[0].parent), found[0].parent
        t0 = time.time()
        obj = build()
        saved = obj.save(folder)
        log.info("%s built in %.0f s: %s", kind, time.time() - t0, saved)
        return obj, saved

    def judge(self):
        from modevo.generate.judge import WordJudge

        return self._cached("judge", {"order": self.order, "version": "word-judge"},
                            lambda: WordJudge.from_rows(self.ctx.iter_rows("train"), order=self.order), WordJudge.load)

    def decoder(self, kind: str, **overrides):
        """letters: over spellings; phones: over pronunciations (both from the train split)."""
        from modevo.generate.lexicon_decoder import LexiconDecoder

        if kind == "letters":
            build = lambda: LexiconDecoder.from_spellings(self.ctx.iter_rows("train"), order=self.order)
        else:
            build = lambda: LexiconDecoder.from_rows(self.ctx.iter_rows("train"), order=self.order)
        dec, folder = self._cached(f"decoder-{kind}", {"order": self.order}, build, LexiconDecoder.load)
        return (LexiconDecoder.load(folder, **overrides), folder) if overrides else (dec, folder)

    def recogniser(self, spec):
        from modevo.generate.recogniser import UnitRecogniser, train_recogniser

        _, um = self.ctx.units(spec.rendering, spec.tokenizer, spec.rate_hz)
        inputs = {"rendering": spec.rendering, "tokenizer": spec.tokenizer, "rate_hz": spec.rate_hz,
                  "units": um["content_hash"]}
        return self._cached("recogniser", inputs,
                            lambda: train_recogniser(self.ctx, spec.rendering, spec.tokenizer, spec.rate_hz),
                            UnitRecogniser.load)


class WordReader:
    """A view's tokens → words: to_symbols, then (units) the recogniser, then the kind's lexicon decoder."""

    def __init__(self, spec, encoder, resources: Resources):
        from modevo.views.registry import ViewFamily

        self.spec, self.encoder, self.family = spec, encoder, spec.view_family
        self.kind = self.family.to_symbols(spec, encoder, [])[1]
        if self.kind not in ViewFamily.SYMBOL_KINDS:
            raise InputError(f"family {self.family.name}: to_symbols gave kind {self.kind!r}, not one of "
                             f"{ViewFamily.SYMBOL_KINDS}")
        self.recogniser = self.recogniser_folder = None
        if self.kind == "units":
            self.recogniser, self.recogniser_folder = resources.recogniser(spec)
            self.decoder, self.decoder_folder = resources.decoder("phones", edit_cost=RECOGNISER_EDIT_COST)
        else:
            self.decoder, self.decoder_folder = resources.decoder(self.kind)

    def symbols(self, token_ids) -> list:
        return self.family.to_symbols(self.spec, self.encoder, token_ids)[0]

    def decodable(self, token_ids) -> list[str]:
        """The letters or phones the decoder reads (word breaks dropped; units recognised as phones)."""
        from modevo.views.registry import ViewFamily

        syms = self.symbols(token_ids)
        if self.recogniser is not None:
            return self.recogniser.phones(np.asarray(syms, np.int64)) if syms else []
        return [s for s in syms if s != ViewFamily.WORD_BREAK]

    def words(self, token_ids) -> list[str]:
        return self.decoder.decode(self.decodable(token_ids))

    @property
    def identity(self) -> dict:
        out = {"symbols": self.kind, "decoder": {
            "kind": self.decoder.symbols, "content_hash": self.decoder.content_hash, "settings": self.decoder.settings,
            "folder": str(self.decoder_folder)}, "recogniser": None}
        if self.recogniser is not None:
            out["recogniser"] = {"content_hash": self.recogniser.content_hash, "settings": self.recogniser.settings,
                                 "trained_on": self.recogniser.trained_on, "stats": self.recogniser.stats,
                                 "folder": str(self.recogniser_folder)}
        return out


def _test_utterances(ctx, spec, encoder, n: int):
    """(corpus row, token ids) of the first n test-split utterances, encoded as the view encodes them."""
    fam = spec.view_family
    if fam.item_speech(spec):
        tokenizer = spec.tokenizer if fam.reads_units else None
        rendered = ctx.rendered_rows(fam.row_rendering(spec), "test", tokenizer, spec.rate_hz)
        for row, rendering, units in islice(rendered, n):
            yield row, encoder.encode_item(row, rendering=rendering, units=units), (rendering, units)
    else:
        for row in islice(ctx.iter_rows("test"), n):
            yield row, encoder.encode_item(row), None


def transcription_error(reader: WordReader, ctx, n: int, cache_root: Path) -> dict:
    """How well the way back to words works on held-out utterances whose words are known (cached)."""
    from modevo.generate.lexicon_decoder import error_rate, evaluate_decoder
    from modevo.generate.recogniser import evaluate_recogniser

    key = stable_hash({"version": TRANSCRIPTION_VERSION, "corpus": ctx.manifest["content_hash"], "view": reader.spec.name,
                       "item_inputs": reader.encoder.item_inputs, "decoder": reader.decoder.content_hash,
                       "recogniser": reader.recogniser.content_hash if reader.recogniser else None, "n": n}, 16)
    path = cache_root / "transcription" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    t0 = time.time()
    utts = list(_test_utterances(ctx, reader.spec, reader.encoder, n))
    if not utts:
        raise InputError("the corpus's test split is empty: no held-out utterance to measure the transcription on")
    rt = error_rate((list(row["words"]), reader.words(ids)) for row, ids, _ in utts)
    out = {"round_trip_wer": rt["rate"], "round_trip_exact_sentences": rt["exact"] / rt["n"], "utterances": rt["n"],
           "n_words": rt["n_ref"],
           "round_trip": f"{reader.spec.name}'s encoder on the first {rt['n']} test-split utterances → to_symbols → "
                         + ("recogniser → " if reader.recogniser else "") + "lexicon decoder, WER against their words"}
    rows = [row for row, _, _ in utts]
    if reader.kind == "letters":
        rows = [{"id": r["id"], "words": r["words"], "phones": [list(w) for w in r["words"]]} for r in rows]
    if reader.recogniser is None:
        clean = evaluate_decoder(reader.decoder, rows)
        out["decoder_wer"] = clean["wer"]
        out["decoder_oov_words"] = clean["oov_words"]
        out["decoder"] = f"clean {reader.kind} of the same utterances → the decoder, WER"
    else:
        rec = evaluate_recogniser(reader.recogniser, None, ((row, extra[0], extra[1]) for row, _, extra in utts))
        out["recogniser_per"] = rec["per"]
        out["recogniser_frame_accuracy"] = rec["frame_accuracy"]
        out["recogniser"] = "the recogniser's phones of the same utterances' units, PER (whole span)"
    out["seconds"] = round(time.time() - t0, 1)
    atomic_write_json(path, out)
    return out


# -- a run -----------------------------------------------------------------------------------------------------
def reference_perplexity(judge, samples: list[dict], cfg: JudgeConfig) -> dict:
    """The judge on what the corpus itself says after each prompt (the rest of the held-out utterance, once per
    prompt, the prompt's words as history): the baseline a continuation perplexity is read against. It is the
    same number for every view continued from the same prompts."""
    from modevo.generate.summary import perplexity_over_prompts

    by_prompt = {}
    for s in samples:
        by_prompt.setdefault(s["prompt_id"], (s["reference_words"], s["prompt_words"]))
    ids = sorted(by_prompt)
    scored = judge.score_all([by_prompt[p][0] for p in ids], [by_prompt[p][1] for p in ids], True)
    out = perplexity_over_prompts(scored["log_prob"], scored["n_scored"], ids, n_boot=cfg.n_boot, seed=cfg.seed)
    return {k: out[k] for k in ("mean", "lo", "hi", "n_prompts")} | {
        "method": "the judge on each prompt's true continuation (the rest of its test-split utterance), "
                  "end of sentence scored; 95% interval over prompts"}


def judge_run(run_dir: str | Path, cfg: JudgeConfig, checkpoint: str | None = None, progress: bool = True,
              force: bool = False) -> dict:
    """Judge a run's samples; writes and returns <run>/samples/<checkpoint>/judged.json (reused when the samples
    and settings are unchanged, unless force)."""
    from modevo.config import load
    from modevo.generate.summary import summarise_continuations
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import code_version, quiet_libraries
    from modevo.views.build import ViewContext, encoder_and_inputs
    from modevo.views.registry import parse_view

    quiet_libraries()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir} is not a run folder (no config.yaml)")
    folder = _samples_folder(run_dir, checkpoint)
    samples, sample_settings = _read_samples(folder)
    if not samples:
        raise InputError(f"{folder / 'samples.jsonl'} holds no samples")
    key = {"version": JUDGED_VERSION, "samples_sha256": sample_settings["samples_sha256"], **asdict(cfg)}
    out_path = folder / "judged.json"
    if not force and out_path.is_file():
        saved = json.loads(out_path.read_text())
        if saved.get("key") == key:
            log.info("%s: reusing %s (same samples and settings)", run_dir, out_path)
            return saved
    stage = load(TrainStageConfig, run_dir / "config.yaml")
    spec = parse_view(stage.train.view, stage.views.tokenizer)
    if spec.name != sample_settings["view"]:
        raise InputError(f"{folder}: samples of view {sample_settings['view']}, but the run trains {spec.name}")
    ctx = ViewContext(stage, progress)
    encoder, _, _ = encoder_and_inputs(spec, ctx)
    resources = Resources(ctx, cfg.order)
    try:
        reader = WordReader(spec, encoder, resources)
    except NotImplementedError as e:
        raise InputError(f"{spec.name}: {e}: its continuations cannot be judged") from None
    judge, judge_folder = resources.judge()
    t0 = time.time()
    words = [reader.words(s["continuation_ids"]) for s in samples]
    decode_seconds = time.time() - t0
    prompt_ids = [s["prompt_id"] for s in samples]
    contexts = [s["prompt_words"] for s in samples]
    ends = [bool(s["stopped_at_separator"]) for s in samples]
    try:
        summary = summarise_continuations(judge, prompt_ids, words, contexts, ends, n_boot=cfg.n_boot, seed=cfg.seed)
    except InputError as e:
        raise InputError(f"{folder}: the continuations give nothing to judge ({e})") from None
    scored = judge.score_all(words, contexts, ends)
    reference = reference_perplexity(judge, samples, cfg)
    error = transcription_error(reader, ctx, cfg.eval_rows, resources.root)
    result = {
        "key": key, "view": spec.name, "checkpoint": sample_settings["checkpoint"], "run_dir": str(run_dir),
        "samples": len(samples), "prompts": len(set(prompt_ids)), "ended_at_separator": sum(ends),
        "empty_transcripts": sum(not w for w in words), "code_version": code_version(),
        "sample_settings": {k: v for k, v in sample_settings.items() if k not in ("run_dir",)},
        "judge": {**judge.identity, "folder": str(judge_folder)}, "reader": reader.identity,
        "transcription_error": error, "summary": summary,
        "perplexity": {k: summary["perplexity"][k] for k in ("mean", "lo", "hi", "n_prompts", "n_samples")},
        "reference_perplexity": reference,
        "decode_seconds": round(decode_seconds, 1),
        "method": ("continuation tokens → ViewFamily.to_symbols → " + ("unit recogniser → " if reader.recogniser else "")
                   + f"lexicon decoder over the train split's {reader.decoder.symbols} → words; judged by the word "
                   f"{judge.order}-gram (train split) with the prompt's words as context, end of sentence scored only "
                   "where the model ended at the separator; 95% intervals resample prompts"),
        # per sample: what the paired prompt bootstrap of Table 3 needs, and the words for reading
        "per_sample": [{"prompt_id": p, "seed": s["seed"], "words": w, "log_prob": float(lp), "n_scored": int(n)}
                       for p, s, w, lp, n in zip(prompt_ids, samples, words, scored["log_prob"], scored["n_scored"])],
    }
    atomic_write_json(out_path, result)
    return result


# -- comparisons -------------------------------------------------------------------------------------------------
def paired_ppl_delta(judged_a: dict, judged_b: dict, n_boot: int = 10_000, level: float = 0.95,
                     seed: int = 0) -> dict:
    """Perplexity of b minus a (and b / a − 1) on the prompts both were sampled from, with a paired prompt
    bootstrap: one resample draws prompts with replacement and recomputes both corpus perplexities on them."""
    def per_prompt(j):
        out: dict[str, list[float]] = {}
        for s in j["per_sample"]:
            acc = out.setdefault(s["prompt_id"], [0.0, 0.0])
            acc[0] += s["log_prob"]
            acc[1] += s["n_scored"]
        return out

    a, b = per_prompt(judged_a), per_prompt(judged_b)
    common = sorted(p for p in set(a) & set(b) if a[p][1] > 0 and b[p][1] > 0)
    if not common:
        raise InputError("no prompt both runs continued with something to score")
    na, da = np.array([a[p][0] for p in common]), np.array([a[p][1] for p in common])
    nb, db = np.array([b[p][0] for p in common]), np.array([b[p][1] for p in common])
    ppl = lambda n, d: np.exp(-n / d)
    pa, pb = float(ppl(na.sum(), da.sum())), float(ppl(nb.sum(), db.sum()))
    out = {"n_prompts": len(common), "from": pa, "to": pb, "delta": pb - pa, "relative": pb / pa - 1,
           "level": level, "n_boot": n_boot, "seed": seed}
    if len(common) < 2:
        return {**out, "delta_lo": math.nan, "delta_hi": math.nan, "relative_lo": math.nan, "relative_hi": math.nan,
                "method": "one common prompt: no interval"}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(common), size=(n_boot, len(common)))
    ba, bb = ppl(na[idx].sum(1), da[idx].sum(1)), ppl(nb[idx].sum(1), db[idx].sum(1))
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    d_lo, d_hi = np.quantile(bb - ba, q)
    r_lo, r_hi = np.quantile(bb / ba - 1, q)
    return {**out, "delta_lo": float(d_lo), "delta_hi": float(d_hi), "relative_lo": float(r_lo),
            "relative_hi": float(r_hi),
            "method": f"paired prompt bootstrap (percentile) on the {len(common)} common prompts"}


def judged_of(run_dir: Path, checkpoint: str | None) -> dict | None:
    """A run's judged.json of that checkpoint (its last milestone's stem), or None."""
    if checkpoint is None:
        return None
    path = Path(run_dir) / "samples" / checkpoint / "judged.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        log.warning("%s is not valid JSON: left out of the report", path)
        return None
