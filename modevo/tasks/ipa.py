"""IPA transcriptions → our 39 stressless ARPAbet phones (modevo.corpus.phones.PHONES).

Used for ZeroSpeech 2021 sWUGGY, whose gold.csv gives each word and pseudoword as IPA in a `phones` column.
We could not confirm the exact form of that column from the sources we could check (the official scorers
never read it; they drop it), so the mapper takes any of the common forms:

- space-separated symbols ("t ʃ eɪ n dʒ", the form phonemizer/espeak output takes in the group's later
  BabySLM gold files) or one unbroken string ("tʃeɪndʒ"). A space, a stress mark (ˈ ˌ ') and a syllable
  dot are boundaries: no multi-letter symbol is matched across them, so "t ʃ" and "t.ʃ" are T SH while
  "tʃ" is CH. Within a segment the longest symbol wins (tʃ before t, aɪ before a).
- stress marks are dropped (the renderer gives the first vowel primary stress, the same rule for both
  members of a pair); length marks (ː ˑ :), tie bars (t͡ʃ), aspiration (ʰ), no-audible-release (̚) and the
  voicing/dental diacritics (̥ ̬ ̪) are dropped. The non-syllabic mark makes i̯/u̯ the offglides ɪ/ʊ
  (so ai̯ is AY) and is dropped elsewhere.
- r-colouring: ɝ, ɚ, ɜ(ː) are ER; a ɹ/r right after them (or after a centring diphthong ɪə eə ɛə ʊə,
  mapped to IH R / EH R / EH R / UH R as cmudict spells NEAR, SQUARE, CURE) is absorbed: cmudict writes
  one ER for "bird" whether a transcription says bɝd, bɜːd or bɜːɹd. A schwa followed by ɹ/r that is not
  followed by a vowel (a coda r: "b æ t ə ɹ" batter) is ER too; before a vowel it stays AH R ("ə ɹ aʊ n d"
  around). This follows cmudict, which the training views use for real words.
- syllabic consonants n̩ m̩ l̩ ŋ̍ become AH N / AH M / AH L / AH NG (cmudict: button B AH T AH N, bottle
  B AA T AH L); ɹ̩ / r̩ become ER.
- approximate by design: ɾ (flap) → T (most American flaps are /t/), ɫ → L, ʍ → W, ɦ → HH, a → AE
  (the TRAP vowel of British-style transcriptions), o → OW, ɒ → AA, ɐ → AH, ɨ/ᵻ → IH, ʉ → UW.

Everything else (ʔ, x, ç, y, nasalised vowels, an unknown diacritic, ...) is returned as unmappable, as
the symbol written in the input (base letter with its marks), once per occurrence and never silently
dropped: the caller counts them and drops the item.
"""

from __future__ import annotations

import functools
import unicodedata

from modevo.corpus.phones import PHONES, VOWELS

# one IPA symbol (after normalisation) → ARPAbet phones
SYMBOLS: dict[str, tuple[str, ...]] = {
    # diphthongs
    "aɪ": ("AY",), "ɑɪ": ("AY",), "ʌɪ": ("AY",),
    "aʊ": ("AW",), "ɑʊ": ("AW",), "æʊ": ("AW",),
    "ɔɪ": ("OY",), "oɪ": ("OY",),
    "eɪ": ("EY",), "ɛɪ": ("EY",),
    "oʊ": ("OW",), "əʊ": ("OW",),
    # centring diphthongs of non-rhotic transcriptions (cmudict: NEAR IH R, SQUARE EH R, CURE UH R)
    "ɪə": ("IH", "R"), "eə": ("EH", "R"), "ɛə": ("EH", "R"), "ʊə": ("UH", "R"),
    # affricates
    "tʃ": ("CH",), "ʧ": ("CH",), "dʒ": ("JH",), "ʤ": ("JH",),
    # r-coloured vowels
    "ɝ": ("ER",), "ɚ": ("ER",), "ɜ": ("ER",),
    # monophthongs
    "i": ("IY",), "ɪ": ("IH",), "ɨ": ("IH",), "ᵻ": ("IH",),
    "e": ("EH",), "ɛ": ("EH",), "æ": ("AE",), "a": ("AE",),
    "ɑ": ("AA",), "ɒ": ("AA",), "ɔ": ("AO",), "o": ("OW",),
    "ʊ": ("UH",), "u": ("UW",), "ʉ": ("UW",),
    "ʌ": ("AH",), "ə": ("AH",), "ɐ": ("AH",),
    # consonants
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",), "ɡ": ("G",),
    "f": ("F",), "v": ("V",), "θ": ("TH",), "ð": ("DH",), "s": ("S",), "z": ("Z",),
    "ʃ": ("SH",), "ʒ": ("ZH",), "h": ("HH",), "ɦ": ("HH",),
    "m": ("M",), "n": ("N",), "ŋ": ("NG",), "l": ("L",), "ɫ": ("L",),
    "ɹ": ("R",), "r": ("R",), "ɻ": ("R",), "w": ("W",), "ʍ": ("W",), "j": ("Y",),
    "ɾ": ("T",),
}
# a consonant with the syllabic mark → phones (cmudict spells syllabic n/m/l as AH + consonant)
SYLLABIC: dict[str, tuple[str, ...]] = {
    "n": ("AH", "N"), "m": ("AH", "M"), "l": ("AH", "L"), "ɫ": ("AH", "L"), "ŋ": ("AH", "NG"),
    "ɹ": ("ER",), "r": ("ER",), "ɻ": ("ER",),
}
RHOTICS = frozenset({"ɹ", "r", "ɻ"})
# symbols after which one ɹ/r is part of the vowel already (bɜːɹd = B ER D, not B ER R D)
R_ABSORBING = frozenset({"ɝ", "ɚ", "ɜ", "ɪə", "eə", "ɛə", "ʊə", "ɹ̩", "r̩", "ɻ̩"})

BOUNDARIES = frozenset(" \t\u02c8\u02cc'.")  # whitespace, ˈ ˌ ' and the syllable dot
DROPPED = frozenset(
    "\u02d0\u02d1:"  # ː ˑ and ASCII colon: length
    "\u0361\u035c"  # tie bars
    "\u02b0\u031a"  # ʰ aspiration, ̚ no audible release
    "\u0325\u032c\u032a"  # ̥ voiceless, ̬ voiced, ̪ dental
)
SYLLABIC_MARKS = frozenset("\u0329\u030d")  # ̩ below, ̍ above
NON_SYLLABIC = "\u032f"  # ̯

_MAX_KEY = max(len(k) for k in SYMBOLS)
assert all(p in PHONES for ps in (*SYMBOLS.values(), *SYLLABIC.values()) for p in ps)


def _segments(ipa: str) -> list[str]:
    text = unicodedata.normalize("NFD", ipa)
    text = "".join(c for c in text if c not in DROPPED)
    text = text.replace("i" + NON_SYLLABIC, "ɪ").replace("u" + NON_SYLLABIC, "ʊ").replace(NON_SYLLABIC, "")
    segs, cur = [], []
    for c in text:
        if c in BOUNDARIES or c.isspace():
            if cur:
                segs.append("".join(cur))
                cur = []
        else:
            cur.append(c)
    if cur:
        segs.append("".join(cur))
    return segs


def _tokens(seg: str) -> list[tuple[str, tuple[str, ...] | None]]:
    """One segment → (symbol as written, phones or None when unmappable), longest match first."""
    out: list[tuple[str, tuple[str, ...] | None]] = []
    i = 0
    while i < len(seg):
        n = next((n for n in range(min(_MAX_KEY, len(seg) - i), 0, -1) if seg[i:i + n] in SYMBOLS), 0)
        j = i + max(n, 1)
        while j < len(seg) and unicodedata.combining(seg[j]):  # marks that stay on this symbol
            j += 1
        base, marks = seg[i:i + max(n, 1)], seg[i + max(n, 1):j]
        written = unicodedata.normalize("NFC", seg[i:j])
        if n and not marks:
            out.append((base, SYMBOLS[base]))
        elif n and len(marks) == 1 and marks in SYLLABIC_MARKS and base in SYLLABIC:
            out.append((base + "\u0329", SYLLABIC[base]))
        else:
            out.append((written, None))
        i = j
    return out


@functools.lru_cache(maxsize=100_000)
def _convert(ipa: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tokens = [t for seg in _segments(ipa) for t in _tokens(seg)]
    phones: list[str] = []
    bad: list[str] = []
    k = 0
    while k < len(tokens):
        sym, ph = tokens[k]
        if ph is None:
            bad.append(sym)
            k += 1
            continue
        nxt = tokens[k + 1][0] if k + 1 < len(tokens) else None
        if nxt in RHOTICS and sym in R_ABSORBING:
            phones.extend(ph)
            k += 2
            continue
        if sym == "ə" and nxt in RHOTICS:
            after = tokens[k + 2][1] if k + 2 < len(tokens) else None
            if not (after and after[0] in VOWELS):  # a coda r: one ER, as cmudict spells it
                phones.append("ER")
                k += 2
                continue
        phones.extend(ph)
        k += 1
    return tuple(phones), tuple(bad)


def ipa_to_arpabet(ipa: str) -> tuple[list[str], list[str]]:
    """An IPA transcription → (ARPAbet phones without stress, unmappable symbols in order of occurrence).

    'kæt' → (['K', 'AE', 'T'], []); 'tʃeɪndʒ' → (['CH', 'EY', 'N', 'JH'], []); 'xɑt' → (['AA', 'T'], ['x']).
    The phones of unmappable symbols are simply absent, so a non-empty second list means the first is
    incomplete: the caller must count and drop the item, not use it.
    """
    phones, bad = _convert(ipa)
    return list(phones), list(bad)
