"""The modality registry: the ONE place a condition of the experiment is defined.

A condition is a view: a family (an object registered here, see views/families.py) plus its arguments.
A view maps a corpus row (and, for frame-level views, its rendering or speech units) to token ids. A factor
is a pair of views that must differ in exactly one thing. View names:

    text-bpe            sentencepiece BPE over the normalised spoken text        (paper: Text-BPE)
    text-char           its characters                                          (Text-Raw)
    phone-bpe           sentencepiece BPE over phone strings                    (Phone-BPE)
    phone               one token per phone                                     (Phone-Raw)
    phone-repeat@R      each phone repeated for its frames in rendering R       (Phone-Repeat, R=varied);
                        R=mean: each phone type's mean frames (pure length, no duration variability)
    speech@R/T          units of rendering R from speech tokenizer T            (Speech; R=varied)
    R=real              a real speech corpus's own recordings and forced alignment (speech.recorded): the
                        paper's own Phone-Repeat and Speech conditions, with no view code of their own
    speech-fixed, speech-varied   aliases of speech@fixed/<default tokenizer> and speech@varied/<...>
    <frame view>:Nhz    the same at N Hz instead of 50 (50 Hz / a whole number: 25hz, 12.5hz): frames come
                        from the rendering's times by modevo.frames' rule, units pool 50 Hz features

Adding a condition: write a ViewFamily subclass (views/families.py shows every hook on the built-in ones),
`register()` it, and give it tests (tests/test_view_families.py adds a toy family this way). Nothing else
changes: building, task rendering, training, scoring, the plan and the report ask the family.
"""

from __future__ import annotations

import abc
import difflib
from dataclasses import dataclass

from modevo.errors import ConfigError
from modevo.frames import DEFAULT_RATE_HZ, parse_rate, rate_suffix

SEP = "<s>"  # id 0 in every view: the utterance boundary the trainer packs between utterances
SEP_ID = 0
DEFAULT_TOKENIZER = "mel-kmeans"


@dataclass(frozen=True)
class ViewSpec:
    name: str  # canonical name, e.g. "phone-repeat@varied", "speech@varied/mel-kmeans", "...:25hz"
    family: str  # the registered family's name, e.g. "phone-repeat"
    paper_name: str
    granularity: str  # subword | character | phone | frame
    rendering: str | None = None  # which rendering it reads (or "mean"), for families that take one
    tokenizer: str | None = None  # which speech tokenizer, for families that read units
    rate_hz: float = DEFAULT_RATE_HZ  # frames per second of a frame-level view

    @property
    def frame_level(self) -> bool:
        return self.granularity == "frame"

    @property
    def folder(self) -> str:
        """The name as a path part: 'speech@varied/mel-kmeans:25hz' → 'speech@varied_mel-kmeans_25hz'."""
        return self.name.replace("/", "_").replace(":", "_")

    @property
    def view_family(self) -> "ViewFamily":
        """The registered family object that knows how this view is built, rendered and reported."""
        return family(self.family)


class ViewFamily(abc.ABC):
    """What one kind of view is. Subclasses set the attributes and override the hooks they need; the
    defaults describe a view read from the corpus row alone (text and phone views).

    Attributes
        name          the part of a view name before '@'
        paper_name    the paper's row it stands for (Table 3)
        granularity   subword | character | phone | frame
        paper_scores  (sWUGGY, sBLIMP, tSC) of the paper's converged model, or None
        spelled       task items need written words (a phones-only item cannot be rendered)
        reads_units   tokens come from audio through a speech tokenizer (released benchmark audio too)
        takes_rate    its name may carry a frame rate (':25hz')
        text_tokens   its vocabulary holds text pieces beside units (the logit lens over text can read it)
        colour        its hue in figures ('#rrggbb'), set on the family's own class (view_style)
        marker        its matplotlib marker in figures, likewise
    """

    name: str = ""
    paper_name: str = ""
    granularity: str = "phone"
    paper_scores: tuple[float, float, float] | None = None
    spelled: bool = False
    reads_units: bool = False
    takes_rate: bool = False
    text_tokens: bool = False
    colour: str | None = None
    marker: str | None = None

    # -- names ---------------------------------------------------------------------------------------------
    def parse(self, given: str, arg: str, rate_hz: float, default_tokenizer: str) -> ViewSpec:
        """The spec of `<name>@<arg>:<rate>` (arg and rate already split off); refuse what it cannot take."""
        if arg:
            raise ConfigError(f"view '{self.name}' takes no '@{arg}'")
        self.check_rate(given, rate_hz)
        return ViewSpec(self.name, self.name, self.paper_name, self.granularity)

    def check_rate(self, given: str, rate_hz: float) -> None:
        if rate_hz != DEFAULT_RATE_HZ and not self.takes_rate:
            raise ConfigError(f"view '{given}': a frame rate applies to views with frames only "
                              f"({', '.join(n for n, f in _registry().items() if f.takes_rate)})")

    def condition_name(self, spec: ViewSpec, released: list[str] | tuple = ()) -> str:
        """How a report row names the condition."""
        return spec.name

    def variant(self, views_cfg) -> str:
        """Views settings of this family at non-default values, as a run's variant label ("" at defaults)."""
        return ""

    # -- what it reads -------------------------------------------------------------------------------------
    def cache_renderings(self, spec: ViewSpec, views_cfg) -> list[str]:
        """Renderings that must exist before the view is built (its cache inputs)."""
        return []

    def row_rendering(self, spec: ViewSpec) -> str | None:
        """The rendering whose per-utterance rows encode() reads, or None."""
        return None

    # -- building ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def encoder(self, spec: ViewSpec, views_cfg, **resources):
        """The view's Encoder given what it reads (resources as prepare() gathers them)."""

    def prepare(self, spec: ViewSpec, ctx) -> tuple:
        """(encoder, cache inputs, manifest info) for `views build` and task rendering; ctx is the build's
        ViewContext (bpe_folder, rendering, units, rows). The encoder's item_inputs say what a task item's
        ids depend on besides the item and its test rendering (views with equal item_inputs share them)."""
        enc = self.encoder(spec, ctx.stage.views)
        return enc, {}, {}

    def bpe_text(self, row: dict, views_cfg) -> str:
        raise NotImplementedError(f"family {self.name} is not a BPE view")

    def bpe_sentences(self, spec: ViewSpec, ctx):
        """What a BPE family's sentencepiece model learns from: bpe_text of every train-split row."""
        return (self.bpe_text(r, ctx.stage.views) for r in ctx.iter_rows("train"))

    @abc.abstractmethod
    def expected_vocab(self, spec: ViewSpec, views_cfg, units_cfg) -> tuple[int, str]:
        """Vocabulary size from the config alone (the plan and `train --dry-run`), and how it was found."""

    # -- task items ----------------------------------------------------------------------------------------
    def test_renderings(self, spec: ViewSpec, available: list[str]) -> list[str | None]:
        """The renderings task items are heard in, the headline first; [None]: items need no speech."""
        return [None]

    def item_speech(self, spec: ViewSpec) -> bool:
        """Whether a task item must be synthesised (for its durations or its audio) to be encoded."""
        return False

    def item_encoding(self, spec: ViewSpec) -> str:
        """The plan's name for what an item's ids depend on: views sharing it render task items once."""
        return spec.name

    # -- generated continuations ---------------------------------------------------------------------------
    SYMBOL_KINDS = ("letters", "phones", "units")
    WORD_BREAK = " "  # a word break among letters or phones (views with word boundaries on)

    def to_symbols(self, spec: ViewSpec, encoder, token_ids) -> tuple[list, str]:
        """What a continuation's token ids (no separator) are in an alphabet that can be turned back into words:
        (symbols, kind) with kind one of
            letters  the spelling's characters (a-z, '), WORD_BREAK between words where the view has them
            phones   ARPAbet phones without stress digits, WORD_BREAK between words where the view has them
            units    raw speech unit ids (token id - 1), for a unit recogniser
        (modevo.generate.evaluate turns letters and phones into words with a lexicon decoder, units through a
        recogniser first). A family that cannot say raises NotImplementedError: its continuations are not judged."""
        raise NotImplementedError(f"family {self.name} does not say how its tokens read back as words")

    # -- probes (score/probe.py) ---------------------------------------------------------------------------
    def token_alignment(self, spec: ViewSpec, encoder, row: dict, rendering: dict | None = None, units=None):
        """Which phone and which word each token of encoder.encode(row, rendering, units) stands for: a
        views/align.py TokenAlignment (-1 = none), or None for an utterance that cannot be aligned. A family
        that cannot say raises NotImplementedError: the probes that need token labels skip its runs."""
        raise NotImplementedError(f"family {self.name} does not say which phone or word its tokens stand for")


_FAMILIES: dict[str, ViewFamily] = {}
_BUILTIN_LOADED = False


def _registry() -> dict[str, ViewFamily]:
    """The registered families, the built-in ones (views/families.py builds on the classes here) first."""
    global _BUILTIN_LOADED
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED = True
        from modevo.views.families import builtin

        for fam in builtin():
            _FAMILIES.setdefault(fam.name, fam)
        _load_plugins()
    return _FAMILIES


PLUGINS_ENV = "MODEVO_VIEW_FAMILIES"


def _load_plugins() -> None:
    """Modules named in MODEVO_VIEW_FAMILIES (comma-separated) are imported; each registers its families,
    so a condition of your own works from the command line without editing modevo."""
    import importlib
    import os

    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"{PLUGINS_ENV}: cannot import '{module}' ({e})") from None
ALIASES = {"speech-fixed": "speech@fixed/{tokenizer}", "speech-varied": "speech@varied/{tokenizer}"}


def register(fam: ViewFamily) -> ViewFamily:
    """Add a family to the registry (a name registered twice is a programming error)."""
    if not fam.name or "@" in fam.name or ":" in fam.name:
        raise ValueError(f"family name {fam.name!r} must be non-empty without '@' or ':'")
    registry = _registry()
    if fam.name in registry and type(registry[fam.name]) is not type(fam):
        raise ValueError(f"view family {fam.name!r} is already registered")
    registry[fam.name] = fam
    return fam


def unregister(name: str) -> None:
    _registry().pop(name, None)


def families() -> dict[str, ViewFamily]:
    return dict(_registry())


def family(name: str) -> ViewFamily:
    try:
        return _registry()[name]
    except KeyError:
        raise ConfigError(f"unknown view family '{name}'{_suggest(name)}") from None


def _suggest(name: str) -> str:
    known = list(_registry()) + list(ALIASES) + ["phone-repeat@fixed", "phone-repeat@varied", "phone-repeat@mean",
                                               "speech@varied/mel-kmeans", "phone-repeat@real", "speech@real/mel-kmeans"]
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f" (known: {', '.join(_registry())}, {', '.join(ALIASES)})"


def parse_view(name: str, default_tokenizer: str = DEFAULT_TOKENIZER) -> ViewSpec:
    """'phone-repeat@varied:25hz' → ViewSpec; an unknown name is one error naming the closest valid one."""
    raw = name.strip()
    base, colon, rate_text = raw.partition(":")
    rate_hz = parse_rate(rate_text) if colon else DEFAULT_RATE_HZ
    if base in ALIASES:
        base = ALIASES[base].format(tokenizer=default_tokenizer)
    fam_name, _, arg = base.partition("@")
    if fam_name not in _registry():
        raise ConfigError(f"unknown view '{name}'{_suggest(name)}")
    spec = _registry()[fam_name].parse(name, arg, rate_hz, default_tokenizer)
    if spec.rate_hz != rate_hz or not spec.name.endswith(rate_suffix(rate_hz)):
        raise ValueError(f"family {fam_name} parsed '{name}' without its rate")  # a family bug, not user input
    return spec


# -- how a condition looks in a figure ----------------------------------------------------------------------
# The family gives the hue and marker; the rendering shades the hue (>0: towards white, <0: towards black), a
# tokenizer other than the default swaps the marker, and a frame rate other than 50 Hz greys the hue and
# dashes the line (its points must differ too: a figure may draw markers alone). Fixed tables, so a
# condition looks the same in every figure and run whatever is drawn beside it; a name outside them is placed
# by crc32 (stable across processes, unlike hash()). Plain strings: the registry does not import matplotlib.
RENDERING_SHADE = {None: 0.0, "varied": 0.0, "fixed": 0.5, "mean": -0.45, "real": -0.65,
                   "speaker": 0.3, "rate": -0.25, "pitch": 0.65, "range": -0.6}
TOKENIZER_MARKER = {"phonetic-kmeans": "X", "hubert-kmeans": "P", "encodec": "*"}  # none is a family's marker
RATE_LOOK = {DEFAULT_RATE_HZ: (1.0, "-"), 25.0: (0.5, "--"), 12.5: (0.25, ":")}  # Hz → (saturation ×, line)
_SPARE_COLOURS = ("#999933", "#44aa99", "#661100", "#6699cc", "#aa4499", "#888888", "#ddcc77", "#117777")
_SPARE_MARKERS = ("d", "8", "H", "1", "x", "+")
_SPARE_SHADES = (0.2, -0.15, 0.4, -0.35, 0.55, -0.5)
_SPARE_RATES = ((0.7, "-."), (0.4, (0, (1, 3))), (0.15, (0, (5, 1))))


def _pick(options: tuple, name: str):
    import zlib

    return options[zlib.crc32(name.encode()) % len(options)]


def _recolour(colour: str, shade: float, saturation: float) -> str:
    import colorsys

    rgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    if shade:
        rgb = [c + ((1.0 if shade > 0 else 0.0) - c) * abs(shade) for c in rgb]
    if saturation != 1.0:
        h, l, s = colorsys.rgb_to_hls(*rgb)
        rgb = colorsys.hls_to_rgb(h, l, s * saturation)
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


def view_style(spec: ViewSpec) -> tuple[str, str, str | tuple]:
    """(colour '#rrggbb', marker, line style) of a condition in every figure."""
    fam = spec.view_family
    own = vars(type(fam))  # a subclass is another condition: it must not inherit its parent's look
    colour = own.get("colour") or _pick(_SPARE_COLOURS, fam.name)
    marker = own.get("marker") or _pick(_SPARE_MARKERS, fam.name)
    shade = RENDERING_SHADE[spec.rendering] if spec.rendering in RENDERING_SHADE else \
        _pick(_SPARE_SHADES, spec.rendering)
    if spec.tokenizer and spec.tokenizer != DEFAULT_TOKENIZER:
        marker = TOKENIZER_MARKER.get(spec.tokenizer) or _pick(_SPARE_MARKERS, spec.tokenizer)
    saturation, line = RATE_LOOK.get(spec.rate_hz) or _pick(_SPARE_RATES, str(spec.rate_hz))
    return _recolour(colour, shade, saturation), marker, line


# Factor pairs (from → to). Each pair differs in one property; `between` views sit on the path.
FACTORS = {
    "A": [("text-bpe", "phone-bpe"), ("text-char", "phone")],
    "B": [("phone", "phone-repeat@varied"), ("phone", "phone-repeat@mean"), ("phone-repeat@mean", "phone-repeat@varied")],
    "C": [("phone-repeat@varied", "speech-varied"), ("phone-repeat@fixed", "speech-fixed")],
}
FACTOR_QUESTION = {
    "A": "phonetic instead of semantic tokens",
    "B": "sequence length (phone-repeat@mean isolates pure length from duration variability)",
    "C": "paralinguistic variability (the @fixed pair isolates 'units instead of phones' from variability)",
}


# The paper's proposed remedies (`make remedies`): views of the same varied speech made shorter or less
# redundant, each with its twin on the phone side (what the remedy's sequence is, in phones). A remedy is
# scored by the share of the speech-varied → phone gap it closes on each task.
REMEDY_GAP = ("speech@varied/{tokenizer}", "phone")
REMEDIES = {  # label → (remedy view, its phone-side twin)
    "unit dedup": ("speech-dedup@varied/{tokenizer}", "phone"),
    "unit BPE": ("speech-bpe@varied/{tokenizer}", "phone-bpe"),
    "25 Hz": ("speech@varied/{tokenizer}:25hz", "phone-repeat@varied:25hz"),
    "12.5 Hz": ("speech@varied/{tokenizer}:12.5hz", "phone-repeat@varied:12.5hz"),
}
# Factor C knob by knob (`make factor-c-sweep`): renderings with one knob as in varied, the rest as in fixed.
# Only `rate` changes durations, so only it has a phone-repeat twin (its duration part).
KNOBS = ("speaker", "rate", "pitch", "range")
DURATION_KNOBS = ("rate",)


def remedy_views(tokenizer: str = DEFAULT_TOKENIZER) -> list[str]:
    """Every view `make remedies` trains for one unit tokenizer: the gap's two ends, each remedy and its twin."""
    names = [*REMEDY_GAP] + [n for pair in REMEDIES.values() for n in pair]
    return list(dict.fromkeys(parse_view(n.format(tokenizer=tokenizer), tokenizer).name for n in names))


def sweep_views(tokenizer: str = DEFAULT_TOKENIZER) -> list[str]:
    """Every view `make factor-c-sweep` trains for one unit tokenizer: speech on fixed, varied and each
    knob-alone rendering; phone-repeat on fixed and on each duration knob."""
    names = [f"speech@{r}/{tokenizer}" for r in ("fixed", "varied", *KNOBS)] + \
        [f"phone-repeat@{r}" for r in ("fixed", *DURATION_KNOBS)]
    return [parse_view(n, tokenizer).name for n in names]


def at_rate(name: str, rate_hz: float, default_tokenizer: str = DEFAULT_TOKENIZER) -> ViewSpec:
    """The view at another frame rate (a view without frames is itself at every rate)."""
    spec = parse_view(name, default_tokenizer)
    if not spec.view_family.takes_rate:
        return spec
    return parse_view(spec.name.partition(":")[0] + rate_suffix(rate_hz), default_tokenizer)


def factor_pairs(factor: str, default_tokenizer: str = DEFAULT_TOKENIZER,
                 rate_hz: float = DEFAULT_RATE_HZ) -> list[tuple[ViewSpec, ViewSpec]]:
    """The factor's pairs; at another rate every frame view of them is taken at that rate, so a pair stays
    matched (speech at R Hz beside phone-repeat at R Hz)."""
    if factor not in FACTORS:
        raise ConfigError(f"unknown factor '{factor}' (factors: {', '.join(FACTORS)}, or all)")
    return [(at_rate(a, rate_hz, default_tokenizer), at_rate(b, rate_hz, default_tokenizer)) for a, b in FACTORS[factor]]


def factor_views(factor: str, default_tokenizer: str = DEFAULT_TOKENIZER, rate_hz: float = DEFAULT_RATE_HZ) -> list[str]:
    """Canonical names of the views a factor ('A', 'b', ... or 'all') compares, in pair order."""
    factors = list(FACTORS) if factor.upper() == "ALL" else [factor.upper()]
    return list(dict.fromkeys(s.name for f in factors for pair in factor_pairs(f, default_tokenizer, rate_hz)
                              for s in pair))


def factors_of(view: ViewSpec) -> list[str]:
    """The factors a view takes part in (MLflow tags use this)."""
    return sorted({f for f in FACTORS for a, b in factor_pairs(f, view.tokenizer or DEFAULT_TOKENIZER, view.rate_hz)
                   if view.name in (a.name, b.name)})


def all_views(default_tokenizer: str = DEFAULT_TOKENIZER) -> list[ViewSpec]:
    names = ["text-bpe", "text-char", "phone-bpe", "phone", "phone-repeat@mean", "phone-repeat@fixed",
             "phone-repeat@varied", "speech-fixed", "speech-varied"]
    return [parse_view(n, default_tokenizer) for n in names]

