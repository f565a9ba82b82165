"""The built-in view families: the paper's six conditions (five families; phone-repeat covers @mean too).

Each family is one object (registered in views/registry.py) that knows its vocabulary and how it is trained,
how it encodes a corpus row or a task item, which renderings and units it reads (its cache inputs), which
test renderings its task items are heard in, how a report names it and the paper's numbers for it. To add a
condition, subclass ViewFamily (or one of these) and `registry.register()` an instance; docs/adding_a_condition.md
walks through it.
"""

from __future__ import annotations

from itertools import tee

import numpy as np

from modevo.errors import ConfigError
from modevo.frames import DEFAULT_RATE_HZ, rate_suffix
from modevo.views.registry import ViewFamily, ViewSpec

SPEECH_TEST_GRID = ("fixed", "varied", "heldout")  # the renderings a speech model is tested on, if built


def _tokens_per_word(enc, ctx) -> float:
    sample = ctx.sample_rows(2000)
    return sum(len(enc.encode(r)) for r in sample) / max(1, sum(len(r["words"]) for r in sample))


def _phone_vocab(views_cfg) -> tuple[int, str]:
    from modevo.views.encode import phone_tokens

    return 1 + len(phone_tokens(views_cfg)) + (1 if views_cfg.word_boundaries else 0), "the phone inventory + separator"


# -- generated continuations → a decodable alphabet (ViewFamily.to_symbols) ------------------------------------
def _tokens(encoder, token_ids) -> list[str]:
    """Token ids → the encoder's vocabulary entries; the separator or an id outside it is a clear error."""
    from modevo.errors import InputError

    out = []
    for i in token_ids:
        i = int(i)
        if not 0 < i < len(encoder.vocab):
            raise InputError(f"token id {i} is not a token of this view (1..{len(encoder.vocab) - 1}; 0, the "
                             "separator, ends a continuation and is never part of it)")
        out.append(encoder.vocab[i])
    return out


def _pieces_text(pieces: list[str], word_boundaries: bool) -> str:
    """sentencepiece pieces → their text: '▁' is a word break with boundaries on, else nothing (sentencepiece
    puts one before the first piece even where the text had no space); the unknown piece is dropped."""
    text = "".join(p for p in pieces if p != "<unk>").replace("\u2581", " ")
    return " ".join(text.split()) if word_boundaries else text.replace(" ", "")


def _plain_phone(token: str) -> str:
    """A phone token without its stress digit (AA1 → AA): the lexicon decoder's ARPAbet."""
    return token.rstrip("012")


def _phone_list(tokens: list[str]) -> list[str]:
    from modevo.views.encode import BOUNDARY

    return [ViewFamily.WORD_BREAK if t == BOUNDARY else _plain_phone(t) for t in tokens]


# -- text and phone views: read the corpus row alone --------------------------------------------------------
class TextBpe(ViewFamily):
    name, paper_name, granularity = "text-bpe", "Text-BPE", "subword"
    paper_scores = (85.1, 74.9, 73.6)
    colour, marker = "#1f5fa8", "o"
    spelled = True

    def bpe_text(self, row, views_cfg) -> str:
        from modevo.views.encode import word_text

        return word_text(row, views_cfg)

    def encoder(self, spec, views_cfg, bpe_folder=None, **_):
        from modevo.views.encode import BpeEncoder

        return BpeEncoder(spec, views_cfg, bpe_folder)

    def vocab_size(self, ctx) -> tuple[int, dict]:
        """The BPE vocabulary size, and what choosing it measured."""
        return ctx.stage.views.text_bpe_vocab, {}

    def prepare(self, spec, ctx):
        vocab, search = self.vocab_size(ctx)
        folder = ctx.bpe_folder(spec, vocab)
        enc = self.encoder(spec, ctx.stage.views, bpe_folder=folder)
        enc.item_inputs = {"name": spec.name, "bpe": folder.name}
        return enc, {"bpe": folder.name}, {"bpe_model": str(folder), **({"vocab_search": search} if search else {})}

    def expected_vocab(self, spec, views_cfg, units_cfg):
        return 1 + views_cfg.text_bpe_vocab, "views.text_bpe_vocab + separator"

    def token_alignment(self, spec, encoder, row, rendering=None, units=None):
        from modevo.views.align import text_bpe_alignment

        return text_bpe_alignment(encoder, row, self.bpe_text(row, encoder.cfg))

    def to_symbols(self, spec, encoder, token_ids):
        """Pieces decoded to the normalised text's characters."""
        return list(_pieces_text(_tokens(encoder, token_ids), encoder.cfg.word_boundaries)), "letters"


class PhoneBpe(TextBpe):
    name, paper_name = "phone-bpe", "Phone-BPE"
    paper_scores = (85.0, 75.0, 70.9)
    colour, marker = "#1a7f37", "^"
    spelled = False

    def bpe_text(self, row, views_cfg) -> str:
        from modevo.views.encode import phone_text

        return phone_text(row, views_cfg)

    def vocab_size(self, ctx) -> tuple[int, dict]:
        """The candidate whose tokens per word is closest to text-bpe's (factor A's pair matched in length)."""
        from modevo.views.registry import parse_view

        text = parse_view("text-bpe")
        text_enc = text.view_family.encoder(text, ctx.stage.views,
                                            bpe_folder=ctx.bpe_folder(text, ctx.stage.views.text_bpe_vocab))
        target = _tokens_per_word(text_enc, ctx)
        spec = parse_view(self.name)
        measured = {v: _tokens_per_word(self.encoder(spec, ctx.stage.views, bpe_folder=ctx.bpe_folder(spec, v)), ctx)
                    for v in ctx.stage.views.phone_bpe_candidates}
        best = min(measured, key=lambda v: (abs(measured[v] - target), v))
        return best, {"text_bpe_tokens_per_word": target, "phone_bpe_tokens_per_word": measured}

    def expected_vocab(self, spec, views_cfg, units_cfg):
        return 1 + max(views_cfg.phone_bpe_candidates), "largest of views.phone_bpe_candidates + separator (searched)"

    def token_alignment(self, spec, encoder, row, rendering=None, units=None):
        from modevo.views.align import phone_bpe_alignment

        return phone_bpe_alignment(encoder, row, self.bpe_text(row, encoder.cfg))

    def to_symbols(self, spec, encoder, token_ids):
        """Pieces → their phone symbols (one character per phone, views/bpe.py) → phones."""
        from modevo.views.bpe import phone_symbols
        from modevo.views.encode import phone_tokens

        back = {c: t for t, c in phone_symbols(phone_tokens(encoder.cfg)).items()}
        text = _pieces_text(_tokens(encoder, token_ids), encoder.cfg.word_boundaries)
        return [self.WORD_BREAK if c == " " else _plain_phone(back[c]) for c in text if c == " " or c in back], "phones"


class TextChar(ViewFamily):
    name, paper_name, granularity = "text-char", "Text-Raw", "character"
    paper_scores = (85.6, 73.3, 66.0)
    colour, marker = "#5ab4e5", "s"
    spelled = True

    def encoder(self, spec, views_cfg, **_):
        from modevo.views.encode import CharEncoder

        return CharEncoder(spec, views_cfg)

    def expected_vocab(self, spec, views_cfg, units_cfg):
        return 1 + 27 + (1 if views_cfg.word_boundaries else 0), "a-z and ' + separator"

    def token_alignment(self, spec, encoder, row, rendering=None, units=None):
        from modevo.views.align import char_alignment

        return char_alignment(encoder, row)

    def to_symbols(self, spec, encoder, token_ids):
        return _tokens(encoder, token_ids), "letters"


class Phone(ViewFamily):
    name, paper_name, granularity = "phone", "Phone-Raw", "phone"
    paper_scores = (85.8, 74.5, 66.6)
    colour, marker = "#7cc36a", "v"

    def encoder(self, spec, views_cfg, **_):
        from modevo.views.encode import PhoneEncoder

        return PhoneEncoder(spec, views_cfg)

    def expected_vocab(self, spec, views_cfg, units_cfg):
        return _phone_vocab(views_cfg)

    def token_alignment(self, spec, encoder, row, rendering=None, units=None):
        from modevo.views.align import phone_alignment

        return phone_alignment(row, encoder.cfg.word_boundaries)

    def to_symbols(self, spec, encoder, token_ids):
        return _phone_list(_tokens(encoder, token_ids)), "phones"


# -- frame views: read a rendering (and its units) ---------------------------------------------------------
class FrameFamily(ViewFamily):
    """A view that takes a rendering and a frame rate: `<name>@<rendering>[:<N>hz]`."""

    granularity = "frame"
    takes_rate = True
    needs = "a rendering"

    def parse(self, given, arg, rate_hz, default_tokenizer):
        self.check_rate(given, rate_hz)
        if not arg.split("/")[0]:
            raise ConfigError(f"view '{given}' needs {self.needs}: {self.example(default_tokenizer)}")
        return self.spec(arg, rate_hz, default_tokenizer)

    def example(self, default_tokenizer: str) -> str:
        return f"{self.name}@varied, @fixed or @mean"

    def spec(self, arg: str, rate_hz: float, default_tokenizer: str) -> ViewSpec:
        return ViewSpec(f"{self.name}@{arg}{rate_suffix(rate_hz)}", self.name, self.paper_name, self.granularity,
                        rendering=arg, rate_hz=rate_hz)

    def cache_renderings(self, spec, views_cfg):
        return [spec.rendering]

    def row_rendering(self, spec):
        return spec.rendering

    def item_speech(self, spec) -> bool:
        return True

    def rate_inputs(self, spec) -> dict:
        """What a non-default rate adds to an item's inputs (nothing at 50 Hz: keys stay as they were)."""
        return {} if spec.rate_hz == DEFAULT_RATE_HZ else {"rate_hz": spec.rate_hz}


class PhoneRepeat(FrameFamily):
    """Each phone repeated for its frames: the rendering's own durations, or (@mean) each phone type's mean
    over views.mean_from's train split, which keeps the length and removes duration variability."""

    name, paper_name = "phone-repeat", "Phone-Repeat"
    paper_scores = (85.5, 66.2, 58.3)
    colour, marker = "#e08a00", "D"
    MEAN = "mean"

    def condition_name(self, spec, released=()):
        kind = " (mean durations)" if spec.rendering == self.MEAN else \
            " (recorded durations)" if spec.rendering == "real" else " (synthetic durations)"
        return spec.name + kind

    def cache_renderings(self, spec, views_cfg):
        return [views_cfg.mean_from] if spec.rendering == self.MEAN else [spec.rendering]

    def row_rendering(self, spec):
        return None if spec.rendering == self.MEAN else spec.rendering

    def item_speech(self, spec) -> bool:
        return spec.rendering != self.MEAN

    def encoder(self, spec, views_cfg, mean_frames=None, **_):
        from modevo.views.encode import RepeatEncoder

        return RepeatEncoder(spec, views_cfg, mean_frames=mean_frames if spec.rendering == self.MEAN else None)

    def prepare(self, spec, ctx):
        cfg = ctx.stage.views
        if spec.rendering == self.MEAN:
            from modevo.views.encode import mean_frames

            _, key = ctx.rendering(cfg.mean_from)
            crows, rrows = tee(ctx.rendered_rows(cfg.mean_from, "train"))  # consumed in step: one pair buffered
            means = mean_frames((rr for _, rr, _ in rrows), (cr for cr, _, _ in crows), spec.rate_hz)
            enc = self.encoder(spec, cfg, mean_frames=means)
            enc.item_inputs = {"name": spec.name, "mean_from": key}
            return enc, {"mean_from": key}, {"mean_frames": means}
        _, key = ctx.rendering(spec.rendering)
        enc = self.encoder(spec, cfg)
        enc.item_inputs = {"name": self.name, **self.rate_inputs(spec)}  # frames come from the item's rendering
        return enc, {"rendering": key}, {}

    def test_renderings(self, spec, available):
        return [None] if spec.rendering == self.MEAN else [spec.rendering]

    def expected_vocab(self, spec, views_cfg, units_cfg):
        return _phone_vocab(views_cfg)

    def token_alignment(self, spec, encoder, row, rendering=None, units=None):
        from modevo.views.align import repeat_alignment

        return repeat_alignment(encoder, row, rendering)

    def to_symbols(self, spec, encoder, token_ids):
        """One phone per frame → runs collapsed → phones (a phone doubled across two words becomes one)."""
        from modevo.views.encode import dedup

        return _phone_list(_tokens(encoder, dedup(np.asarray(token_ids, dtype=np.int64)).tolist())), "phones"


class Speech(FrameFamily):
    """Units of a rendering from a speech tokenizer: `speech@<rendering>/<tokenizer>[:<N>hz]`."""

    name, paper_name = "speech", "Speech"
    paper_scores = (50.8, 57.3, 52.9)
    colour, marker = "#c8281e", "p"
    reads_units = True
    needs = "a rendering"

    def example(self, default_tokenizer):
        return f"{self.name}@varied/{default_tokenizer}"

    def spec(self, arg, rate_hz, default_tokenizer):
        rendering, _, tokenizer = arg.partition("/")
        tokenizer = tokenizer or default_tokenizer
        return ViewSpec(f"{self.name}@{rendering}/{tokenizer}{rate_suffix(rate_hz)}", self.name, self.paper_name,
                        self.granularity, rendering=rendering, tokenizer=tokenizer, rate_hz=rate_hz)

    def condition_name(self, spec, released=()):
        audio = f"; released audio: {', '.join(released)}" if released else ""
        source = "recorded" if spec.rendering == "real" else "synthetic"
        return f"speech-{spec.rendering}{rate_suffix(spec.rate_hz)} ({spec.tokenizer}, {source}{audio})"

    def encoder(self, spec, views_cfg, n_units=None, unit_rate_hz=DEFAULT_RATE_HZ, **_):
        from modevo.views.encode import UnitEncoder

        return UnitEncoder(spec, views_cfg, n_units=n_units, unit_rate_hz=unit_rate_hz)

    def prepare(self, spec, ctx):
        _, key = ctx.rendering(spec.rendering)
        _, um = ctx.units(spec.rendering, spec.tokenizer, spec.rate_hz)
        if abs(um["frame_rate_hz"] - spec.rate_hz) > 1e-9:  # a tokenizer with its own rate (encodec: 75 Hz)
            raise ConfigError(f"view {spec.name}: tokenizer {spec.tokenizer} emits {um['frame_rate_hz']:g} Hz units, "
                              f"not {spec.rate_hz:g} Hz")
        enc = self.encoder(spec, ctx.stage.views, n_units=um["vocab_size"], unit_rate_hz=um["frame_rate_hz"])
        enc.item_inputs = {"name": f"speech_{spec.tokenizer}", "tokenizer": um["tokenizer_hash"],
                           "frame_rate_hz": um["frame_rate_hz"]}
        return enc, {"rendering": key, "units": um["content_hash"]}, {"units": {
            k: um[k] for k in ("tokenizer", "tokenizer_hash", "vocab_size", "frame_rate_hz", "quality")}}

    def test_renderings(self, spec, available):
        return [spec.rendering] + [r for r in SPEECH_TEST_GRID if r != spec.rendering and r in available]

    def item_encoding(self, spec) -> str:
        return f"speech/{spec.tokenizer}{rate_suffix(spec.rate_hz)}"  # @fixed and @varied share the test grid

    def expected_vocab(self, spec, views_cfg, units_cfg):
        if spec.tokenizer == "encodec":
            return 1 + 1024, "EnCodec's 1024-entry codebook + separator"
        return 1 + units_cfg.k, "units.k + separator"

    def token_alignment(self, spec, encoder, row, rendering=None, units=None):
        from modevo.views.align import unit_alignment

        return unit_alignment(encoder, row, rendering, units)

    def to_symbols(self, spec, encoder, token_ids):
        """Raw unit ids (token id - 1), for a recogniser of this rendering, tokenizer and rate."""
        _tokens(encoder, token_ids)  # checks the ids
        return [int(i) - 1 for i in token_ids], "units"


# -- the paper's proposed remedies (issue 23): shorter, less redundant unit sequences --------------------------
class SpeechDedup(Speech):
    """speech@R/T with every run of one unit collapsed to one token (the paper's "deduplicated units"): its
    length twin among the phone views is `phone` (phone-repeat collapsed), not phone-repeat."""

    name, paper_name, paper_scores = "speech-dedup", "Speech (dedup)", None
    colour, marker = "#8e3b8e", "h"

    def encoder(self, spec, views_cfg, n_units=None, unit_rate_hz=DEFAULT_RATE_HZ, **_):
        from modevo.views.encode import UnitEncoder

        return UnitEncoder(spec, views_cfg, n_units=n_units, unit_rate_hz=unit_rate_hz, collapse=True)

    def prepare(self, spec, ctx):
        enc, inputs, info = super().prepare(spec, ctx)
        enc.item_inputs = {**enc.item_inputs, "name": f"{self.name}_{spec.tokenizer}"}
        return enc, inputs, info

    def condition_name(self, spec, released=()):
        return f"{self.name}-" + super().condition_name(spec, released).removeprefix("speech-")

    def item_encoding(self, spec) -> str:
        return f"{self.name}/{spec.tokenizer}{rate_suffix(spec.rate_hz)}"


class SpeechBpe(Speech):
    """sentencepiece BPE over a rendering's unit strings (its train split), the vocabulary chosen from
    views.phone_bpe_candidates by phone-bpe's rule: tokens per word closest to text-bpe's."""

    name, paper_name, paper_scores = "speech-bpe", "Speech (unit BPE)", None
    colour, marker = "#e2619f", "<"
    granularity = "subword"

    def bpe_sentences(self, spec, ctx):
        from modevo.views.encode import span_units, unit_text

        unit_ms = 1000.0 / spec.rate_hz
        return (unit_text(span_units(u, rr, unit_ms))
                for _, rr, u in ctx.rendered_rows(spec.rendering, "train", spec.tokenizer, spec.rate_hz))

    def encoder(self, spec, views_cfg, bpe_folder=None, unit_rate_hz=DEFAULT_RATE_HZ, **_):
        from modevo.views.encode import UnitBpeEncoder

        return UnitBpeEncoder(spec, views_cfg, bpe_folder, unit_rate_hz=unit_rate_hz)

    def vocab_size(self, spec, ctx) -> tuple[int, dict]:
        from modevo.views.registry import parse_view

        text = parse_view("text-bpe")
        target = _tokens_per_word(text.view_family.encoder(
            text, ctx.stage.views, bpe_folder=ctx.bpe_folder(text, ctx.stage.views.text_bpe_vocab)), ctx)
        sample = []  # the first 2,000 valid utterances with their units
        for row, rr, u in ctx.rendered_rows(spec.rendering, "valid", spec.tokenizer, spec.rate_hz):
            sample.append((row, rr, u))
            if len(sample) == 2000:
                break
        words = max(1, sum(len(r["words"]) for r, _, _ in sample))
        measured = {}
        for v in ctx.stage.views.phone_bpe_candidates:
            enc = self.encoder(spec, ctx.stage.views, bpe_folder=ctx.bpe_folder(spec, v), unit_rate_hz=spec.rate_hz)
            measured[v] = sum(len(enc.encode(r, rendering=rr, units=u)) for r, rr, u in sample) / words
        best = min(measured, key=lambda v: (abs(measured[v] - target), v))
        return best, {"text_bpe_tokens_per_word": target, "unit_bpe_tokens_per_word": measured}

    def prepare(self, spec, ctx):
        _, key = ctx.rendering(spec.rendering)
        _, um = ctx.units(spec.rendering, spec.tokenizer, spec.rate_hz)
        vocab, search = self.vocab_size(spec, ctx)
        folder = ctx.bpe_folder(spec, vocab)
        enc = self.encoder(spec, ctx.stage.views, bpe_folder=folder, unit_rate_hz=um["frame_rate_hz"])
        # items: the unit tokenizer's units, then this rendering's merges (fixed and varied learn their own)
        enc.item_inputs = {"name": f"{self.name}_{spec.tokenizer}", "tokenizer": um["tokenizer_hash"],
                           "frame_rate_hz": um["frame_rate_hz"], "bpe": folder.name}
        return enc, {"rendering": key, "units": um["content_hash"], "bpe": folder.name}, {
            "bpe_model": str(folder), "vocab_search": search,
            "units": {k: um[k] for k in ("tokenizer", "tokenizer_hash", "vocab_size", "frame_rate_hz", "quality")}}

    def condition_name(self, spec, released=()):
        return f"{self.name}-" + super().condition_name(spec, released).removeprefix("speech-")

    def item_encoding(self, spec) -> str:
        return f"{self.name}@{spec.rendering}/{spec.tokenizer}{rate_suffix(spec.rate_hz)}"

    def expected_vocab(self, spec, views_cfg, units_cfg):
        return 1 + max(views_cfg.phone_bpe_candidates), "largest of views.phone_bpe_candidates + separator (searched)"

    def token_alignment(self, spec, encoder, row, rendering=None, units=None):
        from modevo.views.align import unit_bpe_alignment

        return unit_bpe_alignment(encoder, row, rendering, units)

    def to_symbols(self, spec, encoder, token_ids):
        """Pieces → their unit characters (views/encode.py unit_text) → raw unit ids."""
        from modevo.views.encode import _UNIT_CHAR_BASE

        text = _pieces_text(_tokens(encoder, token_ids), False)
        return [ord(c) - _UNIT_CHAR_BASE for c in text], "units"


# -- text supervision of speech (issue 25): SpiritLM / SIMS-style word-level interleaving ---------------------
class Interleaved(Speech):
    """interleaved@R/T: training utterances alternate, at word boundaries, between text-bpe pieces and the
    units of rendering R by tokenizer T, in one vocabulary (text-bpe ∪ units ∪ two modality marks); the share
    of spoken words is views.interleave.speech_share (recorded in the view's manifest). Task items, prompts
    and released audio are heard as speech only, exactly as speech@R/T hears them (after a speech mark), so
    its rows sit beside speech-varied and phone-repeat@varied in Table 3."""

    name, paper_name, paper_scores = "interleaved", "Interleaved (text + speech)", None
    text_tokens = True
    colour, marker = "#5b4a9b", ">"

    def encoder(self, spec, views_cfg, bpe_folder=None, n_units=None, unit_rate_hz=DEFAULT_RATE_HZ, **_):
        from modevo.views.encode import InterleavedEncoder

        return InterleavedEncoder(spec, views_cfg, bpe_folder, n_units=n_units, unit_rate_hz=unit_rate_hz)

    def settings(self, views_cfg) -> dict:
        """What the mixture depends on (the view's cache key and manifest)."""
        from dataclasses import asdict

        return asdict(views_cfg.interleave)

    def prepare(self, spec, ctx):
        from modevo.views.registry import parse_view

        _, key = ctx.rendering(spec.rendering)
        _, um = ctx.units(spec.rendering, spec.tokenizer, spec.rate_hz)
        text = parse_view("text-bpe")
        folder = ctx.bpe_folder(text, ctx.stage.views.text_bpe_vocab)  # text-bpe's own pieces: one text vocabulary
        enc = self.encoder(spec, ctx.stage.views, bpe_folder=folder, n_units=um["vocab_size"],
                           unit_rate_hz=um["frame_rate_hz"])
        # items are speech only: their ids depend on the units and the joint vocabulary's layout
        enc.item_inputs = {"name": f"{self.name}_{spec.tokenizer}", "tokenizer": um["tokenizer_hash"],
                           "frame_rate_hz": um["frame_rate_hz"], "bpe": folder.name}
        mix = self.settings(ctx.stage.views)
        return enc, {"rendering": key, "units": um["content_hash"], "bpe": folder.name, "interleave": mix}, {
            "bpe_model": str(folder), "interleave": mix, "unit_offset": enc.unit_offset,
            "units": {k: um[k] for k in ("tokenizer", "tokenizer_hash", "vocab_size", "frame_rate_hz", "quality")}}

    def token_alignment(self, spec, encoder, row, rendering=None, units=None):
        """Of an item's ids (encode_item: the speech mark, then speech@R/T's units)."""
        from modevo.views.align import after_mark, unit_alignment

        return after_mark(unit_alignment(encoder, row, rendering, units))

    def variant(self, views_cfg) -> str:
        from modevo.views.config import InterleaveConfig

        mine, default = views_cfg.interleave, InterleaveConfig()
        parts = [f"speech share {mine.speech_share:g}" if mine.speech_share != default.speech_share else "",
                 f"spans of {mine.mean_span_words:g} words" if mine.mean_span_words != default.mean_span_words else "",
                 f"span seed {mine.seed}" if mine.seed != default.seed else ""]
        return ", ".join(p for p in parts if p)

    def condition_name(self, spec, released=()):
        return f"{self.name}-" + super().condition_name(spec, released).removeprefix("speech-")

    def item_encoding(self, spec) -> str:
        return f"{self.name}/{spec.tokenizer}{rate_suffix(spec.rate_hz)}"

    def expected_vocab(self, spec, views_cfg, units_cfg):
        k = 1024 if spec.tokenizer == "encodec" else units_cfg.k
        return 1 + views_cfg.text_bpe_vocab + k + 2, "views.text_bpe_vocab + units + 2 modality marks + separator"

    def to_symbols(self, spec, encoder, token_ids):
        raise NotImplementedError("an interleaved continuation may switch to text mid-way; judging mixed "
                                  "continuations is not built")


def builtin() -> list[ViewFamily]:
    """The families every modevo has, in the paper's order, then the remedies and text supervision
    (registry.py registers them)."""
    return [TextBpe(), TextChar(), PhoneBpe(), Phone(), PhoneRepeat(), Speech(), SpeechDedup(), SpeechBpe(),
            Interleaved()]
