"""The modality registry: the ONE place a condition of the experiment is defined.

A view maps a corpus row (and, for frame-level views, its rendering or speech units) to token ids. A factor
is a pair of views that must differ in exactly one thing. View names:

    text-bpe            sentencepiece BPE over the normalised spoken text        (paper: Text-BPE)
    text-char           its characters                                          (Text-Raw)
    phone-bpe           sentencepiece BPE over phone strings                    (Phone-BPE)
    phone               one token per phone                                     (Phone-Raw)
    phone-repeat@R      each phone repeated for its 50 Hz frames in rendering R (Phone-Repeat, R=varied);
                        R=mean: each phone type's mean frames (pure length, no duration variability)
    speech@R/T          units of rendering R from speech tokenizer T            (Speech; R=varied)
    R=real              a real speech corpus's own recordings and forced alignment (speech.recorded): the
                        paper's own Phone-Repeat and Speech conditions, with no view code of their own
    speech-fixed, speech-varied   aliases of speech@fixed/<default tokenizer> and speech@varied/<...>
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from modevo.errors import ConfigError

SEP = "<s>"  # id 0 in every view: the utterance boundary the trainer packs between utterances
SEP_ID = 0


@dataclass(frozen=True)
class ViewSpec:
    name: str  # canonical name, e.g. "phone-repeat@varied", "speech@varied/mel-kmeans"
    family: str  # text-bpe | text-char | phone-bpe | phone | phone-repeat | speech
    paper_name: str
    granularity: str  # subword | character | phone | frame
    rendering: str | None = None  # phone-repeat and speech: which rendering (or "mean")
    tokenizer: str | None = None  # speech: which speech tokenizer

    @property
    def frame_level(self) -> bool:
        return self.granularity == "frame"


FAMILIES = {
    "text-bpe": ("Text-BPE", "subword"),
    "text-char": ("Text-Raw", "character"),
    "phone-bpe": ("Phone-BPE", "subword"),
    "phone": ("Phone-Raw", "phone"),
    "phone-repeat": ("Phone-Repeat", "frame"),
    "speech": ("Speech", "frame"),
}
DEFAULT_TOKENIZER = "mel-kmeans"

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


def _suggest(name: str) -> str:
    known = list(FAMILIES) + ["phone-repeat@fixed", "phone-repeat@varied", "phone-repeat@mean", "speech-fixed",
                              "speech-varied", "speech@varied/mel-kmeans", "phone-repeat@real", "speech@real/mel-kmeans"]
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f" (known: {', '.join(FAMILIES)}, speech-fixed, speech-varied)"


def parse_view(name: str, default_tokenizer: str = DEFAULT_TOKENIZER) -> ViewSpec:
    """'phone-repeat@varied' → ViewSpec; an unknown name is one error naming the closest valid one."""
    raw = name.strip()
    if raw in ("speech-fixed", "speech-varied"):
        raw = f"speech@{raw.split('-', 1)[1]}/{default_tokenizer}"
    family, _, arg = raw.partition("@")
    if family not in FAMILIES:
        raise ConfigError(f"unknown view '{name}'{_suggest(name)}")
    paper, granularity = FAMILIES[family]
    if family == "phone-repeat":
        if not arg:
            raise ConfigError(f"view '{name}' needs a rendering: phone-repeat@varied, @fixed or @mean")
        return ViewSpec(f"phone-repeat@{arg}", family, paper, granularity, rendering=arg)
    if family == "speech":
        rendering, _, tokenizer = arg.partition("/")
        if not rendering:
            raise ConfigError(f"view '{name}' needs a rendering: speech@varied/{default_tokenizer}")
        tokenizer = tokenizer or default_tokenizer
        return ViewSpec(f"speech@{rendering}/{tokenizer}", family, paper, granularity, rendering=rendering,
                        tokenizer=tokenizer)
    if arg:
        raise ConfigError(f"view '{family}' takes no '@{arg}'")
    return ViewSpec(family, family, paper, granularity)


def factor_pairs(factor: str, default_tokenizer: str = DEFAULT_TOKENIZER) -> list[tuple[ViewSpec, ViewSpec]]:
    if factor not in FACTORS:
        raise ConfigError(f"unknown factor '{factor}' (factors: {', '.join(FACTORS)}, or all)")
    return [(parse_view(a, default_tokenizer), parse_view(b, default_tokenizer)) for a, b in FACTORS[factor]]


def factor_views(factor: str, default_tokenizer: str = DEFAULT_TOKENIZER) -> list[str]:
    """Canonical names of the views a factor ('A', 'b', ... or 'all') compares, in pair order."""
    factors = list(FACTORS) if factor.upper() == "ALL" else [factor.upper()]
    return list(dict.fromkeys(s.name for f in factors for pair in factor_pairs(f, default_tokenizer) for s in pair))


def factors_of(view: ViewSpec) -> list[str]:
    """The factors a view takes part in (MLflow tags use this)."""
    return sorted({f for f in FACTORS for a, b in factor_pairs(f, view.tokenizer or DEFAULT_TOKENIZER)
                   if view.name in (a.name, b.name)})


def all_views(default_tokenizer: str = DEFAULT_TOKENIZER) -> list[ViewSpec]:
    names = ["text-bpe", "text-char", "phone-bpe", "phone", "phone-repeat@mean", "phone-repeat@fixed",
             "phone-repeat@varied", "speech-fixed", "speech-varied"]
    return [parse_view(n, default_tokenizer) for n in names]
