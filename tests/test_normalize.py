"""Tests for modevo.corpus.normalize: written sentence → one spoken string, and sentence splitting."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modevo.corpus.normalize import SKIP_REASONS, normalize, split_sentences

SPOKEN = re.compile(r"^[a-z']+( [a-z']+)*$")


def spoken(text: str) -> str:
    out, reason = normalize(text)
    assert reason is None, f"{text!r} skipped as {reason}"
    return out


@pytest.mark.parametrize(
    "written, expected",
    [
        # cardinals, decimals, negatives, percent
        ("He had 3 dogs.", "he had three dogs"),
        ("There were 1,000 men.", "there were one thousand men"),
        ("About 120,000 souls.", "about one hundred and twenty thousand souls"),
        ("It is 3.5 miles.", "it is three point five miles"),
        ("It fell to -5 degrees.", "it fell to minus five degrees"),
        ("Fully 50% of them.", "fully fifty percent of them"),
        ("A 2.5% rise.", "a two point five percent rise"),
        ("Room 007 now.", "room zero zero seven now"),
        # ordinals, old ordinals, dates
        ("The 1st and 2nd and 3rd.", "the first and second and third"),
        ("On the 21st of May.", "on the twenty first of may"),
        ("The 103rd regiment.", "the one hundred and third regiment"),
        ("THE 29TH.", "the twenty ninth"),
        ("On the 2d of October.", "on the second of october"),
        ("Saturday, June 15, and so.", "saturday june fifteenth and so"),
        ("Firstly, 2ndly.", "firstly secondly"),
        # years
        ("In 1884 it began.", "in eighteen eighty four it began"),
        ("In 1905 it ended.", "in nineteen oh five it ended"),
        ("By 1900 it was over.", "by nineteen hundred it was over"),
        ("In 2005 and 2000.", "in two thousand five and two thousand"),
        ("In 2023 again.", "in twenty twenty three again"),
        ("In 1066 they came.", "in one thousand and sixty six they came"),
        ("The 1880s were dull.", "the eighteen eighties were dull"),
        # times
        ("At 10:30 sharp.", "at ten thirty sharp"),
        ("At 10:05 sharp.", "at ten oh five sharp"),
        ("At 10:00 sharp.", "at ten o'clock sharp"),
        ("The 4.30 train.", "the four thirty train"),
        # currency
        ("It cost $5.", "it cost five dollars"),
        ("It cost $5.50.", "it cost five dollars fifty cents"),
        ("It cost $1.", "it cost one dollar"),
        ("It cost £3.", "it cost three pounds"),
        ("It cost £1.", "it cost one pound"),
        ("It cost €20.", "it cost twenty euros"),
        ("A sum of £120,000.", "a sum of one hundred and twenty thousand pounds"),
        ("He left L15,000 a year.", "he left fifteen thousand pounds a year"),
        ("$5 million.", "five million dollars"),
        ("It cost 6s. 6d. in all.", "it cost six shillings six pence in all"),
        ("About 12,000 l. a year.", "about twelve thousand pounds a year"),
        # symbols and number words
        ("Smith & Sons.", "smith and sons"),
        ("Apples, pears, &c.", "apples pears et cetera"),
        ("Room No. 5 please.", "room number five please"),
        ("No, I will not.", "no i will not"),
        ("Ticket #12.", "ticket number twelve"),
        ("One and 1½ and ½.", "one and one and a half and a half"),
        # abbreviations
        ("Mr. Holmes and Mrs. Hudson.", "mister holmes and missus hudson"),
        ("Mr Racksole, New York.", "mister racksole new york"),
        ("Messrs. Smith and Dr. Watson.", "messieurs smith and doctor watson"),
        ("Capt. Hook, Col. Mustard, Gen. Lee.", "captain hook colonel mustard general lee"),
        ("Lieut. Brown and Lt. Green.", "lieutenant brown and lieutenant green"),
        ("Sgt. Cuff and the Rev. Mr. Day.", "sergeant cuff and the reverend mister day"),
        ("Prof. Moriarty, Hon. member.", "professor moriarty honourable member"),
        ("John Smith, Jr. and Sr.", "john smith junior and senior"),
        ("Mt. Sinai vs. Mt. Ararat.", "mount sinai versus mount ararat"),
        ("Cats, dogs, etc. and more.", "cats dogs et cetera and more"),
        ("This, i.e. that, e.g. those.", "this that is that for example those"),
        ("St. Paul's is here.", "saint paul's is here"),
        ("In Baker St., London.", "in baker street london"),
        ("John Smith, Esq.", "john smith esquire"),
        ("MR. JONES.", "mister jones"),
        ("the col was steep", "the col was steep"),
        # initials
        ("Dr. Mortimer, M.R.C.S., of Grimpen.", "doctor mortimer m r c s of grimpen"),
        ("J. R. Smith came.", "j r smith came"),
        ("At 11 p.m. she left.", "at eleven p m she left"),
        # apostrophes and quotes
        ("Don't do it, Holmes's friend.", "don't do it holmes's friend"),
        ("At five o'clock.", "at five o'clock"),
        ("'Tis the boys' turn.", "tis the boys turn"),
        ("'Tush, fool!' snarled she.", "tush fool snarled she"),
        ("\u201cHello,\u201d she said; \u2018it\u2019s late.\u2019", "hello she said it's late"),
        ("He said ''what''.", "he said what"),
        # accents and ligatures
        ("A caf\u00e9 for the na\u00efve.", "a cafe for the naive"),
        ("\u00c6sop and the c\u0153ur.", "aesop and the coeur"),
        ("Stra\u00dfe and \u00f8re.", "strasse and ore"),
        ("A \ufb01ne day.", "a fine day"),
        ("cafe\u0301 with a combining accent", "cafe with a combining accent"),
        ("\u0663 apples and \u00b2 pears", "apples and two pears"),  # foreign digits dropped; NFKC ²→2
        # dashes and hyphens
        ("Bright-eyed -- and\u2014dash \u2013 en.", "bright eyed and dash en"),
        ("The years 1812--15.", "the years eighteen twelve fifteen"),
        # Roman numerals
        ("Chapter IV", "chapter four"),
        ("CHAPTER XLII.", "chapter forty two"),
        ("chapter iv", "chapter four"),
        ("Book II, Part I.", "book two part one"),
        ("Act III, Scene 2.", "act three scene two"),
        ("Part I think so.", "part i think so"),
        ("For my part I.", "for my part i"),
        ("George III was king.", "george the third was king"),
        ("Henry VIII and Louis XIV.", "henry the eighth and louis the fourteenth"),
        ("Hubert Vaughan came.", "hubert vaughan came"),
        ("Charles I said.", "charles i said"),
        ("XLII.", "forty two"),
        ("II", "two"),
        ("I.", "i"),
        ("I am here.", "i am here"),
    ],
)
def test_normalize_cases(written, expected):
    assert spoken(written) == expected


@pytest.mark.parametrize(
    "written, reason",
    [
        ("12345", "no_letters"),
        ("1884.", "no_letters"),
        ("...", "no_letters"),
        ("*    *    *", "no_letters"),
        ("", "no_letters"),
        ("\u0395\u03bb\u03bb\u03ac\u03b4\u03b1", "non_latin"),
        ("He said \u03c4\u03b9 there.", "non_latin"),
        ("\u041f\u0440\u0438\u0432\u0435\u0442, John.", "non_latin"),
        ("\u4e2d\u6587 text", "non_latin"),
        ("\u0645\u0631\u062d\u0628\u0627", "non_latin"),
        ("a\x00b", "control_chars"),
        ("bell\x07 here", "control_chars"),
        ("lone \ud800 surrogate", "control_chars"),
    ],
)
def test_normalize_skips(written, reason):
    assert reason in SKIP_REASONS
    assert normalize(written) == (None, reason)


def test_whitespace_controls_are_not_skipped():
    assert spoken("one\ttwo\nthree\r\nfour") == "one two three four"


def test_deterministic_and_cached_numbers_stable():
    s = "On the 21st of May, 1884, he paid \u00a3120,000 at 4.30."
    assert normalize(s) == normalize(s) == normalize(s)


@pytest.mark.parametrize(
    "paragraph, expected",
    [
        ("Mr. Holmes said. Then he left.", ["Mr. Holmes said.", "Then he left."]),
        ("Mrs. Hudson and Dr. Watson met St. Paul. Messrs. Smith came.",
         ["Mrs. Hudson and Dr. Watson met St. Paul.", "Messrs. Smith came."]),
        ("Capt. Hook, Col. Mustard and Rev. Green ate.", ["Capt. Hook, Col. Mustard and Rev. Green ate."]),
        ("J. R. Smith, M.R.C.S. was there. He left.", ["J. R. Smith, M.R.C.S. was there.", "He left."]),
        ("He walked 3.5 miles. Then he rested.", ["He walked 3.5 miles.", "Then he rested."]),
        ("Why? Because! Yes.", ["Why?", "Because!", "Yes."]),
        ('"Oh! I saw a light." She ran.', ['"Oh!', 'I saw a light."', "She ran."]),
        ("'Who is it?' Jules asked.", ["'Who is it?'", "Jules asked."]),
        ('"What a noise! it went through me!" said Abbot.', ['"What a noise! it went through me!" said Abbot.']),
        ("He said (quietly.) Then left.", ["He said (quietly.)", "Then left."]),
        ("Well... Then she spoke.", ["Well... Then she spoke."]),
        ("She is ill! . . . Well, go.", ["She is ill! . . . Well, go."]),
        ("It was 1884. The end.", ["It was 1884.", "The end."]),
        ('"1. I write to Alicia."', ['"1. I write to Alicia."']),
        ("No. I will not.", ["No.", "I will not."]),
        ("See No. 5 there.", ["See No. 5 there."]),
        ("It was I. Then he came.", ["It was I.", "Then he came."]),
        ("  Spaces   around.   Here.  ", ["Spaces   around.", "Here."]),
        ("", []),
        ("   ", []),
        ("no terminator here", ["no terminator here"]),
    ],
)
def test_split_sentences(paragraph, expected):
    assert split_sentences(paragraph) == expected


def _squash(s: str) -> str:
    return "".join(s.split())


# Text that looks like the corpus: words, numbers, abbreviations, punctuation, plus arbitrary unicode.
_pieces = st.sampled_from(
    ["Mr.", "Dr.", "St.", "I", "IV", "Chapter", "George", "III", "1884", "3.5", "4.30", "10:30", "£5", "$5.50",
     "21st", "2d", "6s.", "-", "--", "'", '"', "...", ". . .", "!", "?", "&c.", "No.", "i.e.", "M.R.C.S.", "50%",
     "½", "é", "æ", "Ω", "\u0301", " ", "\n", "word", "Word", "'tis", "don't", "0", "99999999999999999999"]
)
_corpusish = st.lists(st.one_of(_pieces, st.text(max_size=5)), max_size=25).map(" ".join)
_anything = st.one_of(st.text(), _corpusish)


@settings(max_examples=600, deadline=None)
@given(_anything)
def test_normalize_never_raises_and_output_is_clean(text):
    out, reason = normalize(text)
    assert (out is None) != (reason is None)
    if reason is not None:
        assert reason in SKIP_REASONS
    else:
        assert SPOKEN.match(out), out
        assert all(word.strip("'") == word for word in out.split()), out


@settings(max_examples=600, deadline=None)
@given(_anything)
def test_split_sentences_keeps_every_non_space_char(text):
    sentences = split_sentences(text)
    assert _squash("".join(sentences)) == _squash(text)
    assert all(s and s == s.strip() for s in sentences)
