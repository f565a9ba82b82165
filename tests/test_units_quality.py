"""Phone purity, cluster purity and PNMI: 1 for a tokenizer that outputs the phone, chance for a random one."""

import json

import numpy as np
import pytest

from modevo.units import quality

PHONES = np.array(["AA", "IY", "S", "T", "M", "SIL"])


def labels(n=60000, seed=0):
    rng = np.random.RandomState(seed)
    return PHONES[rng.choice(len(PHONES), n, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1])]


def test_identity_tokenizer_scores_one():
    lab = labels()
    units = np.searchsorted(np.sort(PHONES), lab)  # one unit per phone
    q = quality.quality(lab, units)
    assert q["phone_purity"] == pytest.approx(1.0)
    assert q["cluster_purity"] == pytest.approx(1.0)
    assert q["pnmi"] == pytest.approx(1.0)
    # splitting each phone into several units keeps phone purity and PNMI at 1, lowers cluster purity
    split = units * 4 + np.random.RandomState(1).randint(4, size=len(units))
    q = quality.quality(lab, split)
    assert q["phone_purity"] == pytest.approx(1.0) and q["pnmi"] == pytest.approx(1.0)
    assert q["cluster_purity"] < 0.5


def test_random_tokenizer_scores_chance():
    lab = labels()
    q = quality.quality(lab, np.random.RandomState(2).randint(50, size=len(lab)))
    assert q["pnmi"] < 0.01
    assert q["phone_purity"] == pytest.approx(q["chance_phone_purity"], abs=0.03)
    assert q["chance_phone_purity"] == pytest.approx(0.3, abs=0.01)
    assert q["cluster_purity"] == pytest.approx(q["chance_cluster_purity"], abs=0.01)


def test_counts_add_up_across_shards_and_json():
    lab = labels(3000)
    units = np.random.RandomState(3).randint(7, size=len(lab))
    whole = quality.joint_counts(lab, units)
    a = json.loads(json.dumps(quality.joint_counts(lab[:1000], units[:1000])))  # unit keys become strings
    b = quality.joint_counts(lab[1000:], units[1000:])
    total = quality.add_counts(quality.add_counts({}, a), b)
    assert total == whole
    assert quality.scores(total) == quality.quality(lab, units)
    no_sil = quality.quality(lab, units, ignore=("SIL",))
    assert no_sil["frames"] == (lab != "SIL").sum() and no_sil["phones"] == 5
    assert quality.scores(quality.drop(whole, ("SIL",))) == no_sil
