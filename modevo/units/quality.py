"""How phonetic are the units? Phone purity, cluster purity and PNMI (Hsu et al. 2021, HuBERT §IV-G).

From frames aligned as (phone label, unit) pairs, with P(p, u) their joint distribution:
    phone purity   = Σ_u max_p P(p, u)    accuracy of labelling each unit with its most frequent phone
    cluster purity = Σ_p max_u P(p, u)    accuracy of labelling each phone with its most frequent unit
    PNMI           = I(p; u) / H(p)       share of the phone's uncertainty the unit removes
A tokenizer that outputs the phone itself scores 1 on all three. A random one scores PNMI ≈ 0, phone
purity ≈ the majority phone's share and cluster purity ≈ 1/K-ish; those chance levels are reported beside
the scores. Counts are kept sparse ({phone: {unit: n}}) so shards can be summed and stored as JSON.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

Counts = dict[str, dict[int, int]]


def joint_counts(labels, units, ignore: tuple[str, ...] = ()) -> Counts:
    """{phone: {unit: frames}} from aligned (T,) labels and (T,) units; phones in `ignore` are dropped."""
    labels, units = np.asarray(labels), np.asarray(units)
    if labels.shape != units.shape:
        raise ValueError(f"labels {labels.shape} and units {units.shape} are not aligned")
    out: dict[str, Counter] = defaultdict(Counter)
    for (p, u), n in Counter(zip(labels.tolist(), units.tolist())).items():
        if p not in ignore:
            out[p][int(u)] += n
    return {p: dict(c) for p, c in out.items()}


def add_counts(total: Counts, more: Counts) -> Counts:
    """total += more (in place; returns total). Keys may be str after a JSON round trip: units are int."""
    for p, row in more.items():
        t = total.setdefault(p, {})
        for u, n in row.items():
            t[int(u)] = t.get(int(u), 0) + int(n)
    return total


def drop(counts: Counts, phones: tuple[str, ...]) -> Counts:
    return {p: row for p, row in counts.items() if p not in phones}


def _matrix(counts: Counts) -> np.ndarray:
    phones = sorted(counts)
    units = sorted({int(u) for row in counts.values() for u in row})
    col = {u: j for j, u in enumerate(units)}
    m = np.zeros((len(phones), len(units)), dtype=np.float64)  # (P, U)
    for i, p in enumerate(phones):
        for u, n in counts[p].items():
            m[i, col[int(u)]] += n
    return m


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def scores(counts: Counts) -> dict:
    """Purities, PNMI and their chance levels from joint counts (fp64 throughout)."""
    m = _matrix(counts)
    total = m.sum()
    if total == 0:
        return {"frames": 0}
    joint = m / total  # (P, U)
    p_phone, p_unit = joint.sum(1), joint.sum(0)
    h_phone, h_unit, h_joint = _entropy(p_phone), _entropy(p_unit), _entropy(joint.ravel())
    mi = h_phone + h_unit - h_joint
    return {
        "frames": int(total),
        "phones": int(m.shape[0]),
        "units_used": int(m.shape[1]),
        "phone_purity": float(joint.max(0).sum()),
        "cluster_purity": float(joint.max(1).sum()),
        "pnmi": float(mi / h_phone) if h_phone > 0 else 1.0,
        "mutual_information_bits": float(mi),
        "phone_entropy_bits": h_phone,
        "unit_entropy_bits": h_unit,
        # what a tokenizer that knows nothing would score: one unit for everything / unit drawn apart from phone
        "chance_phone_purity": float(p_phone.max()),
        "chance_cluster_purity": float(p_unit.max()),
    }


def quality(labels, units, ignore: tuple[str, ...] = ()) -> dict:
    """scores() of aligned (T,) phone labels and (T,) units."""
    return scores(joint_counts(labels, units, ignore))


QUALITY_HEADER = f"{'K':>6}{'phone purity':>14}{'cluster purity':>16}{'PNMI':>8}"


def quality_columns(vocab_size: int, q: dict) -> str:
    """The K / purity / PNMI columns of a unit-quality table row; a corpus with no held-out frames says so."""
    if not q.get("frames"):
        return f"{vocab_size:>6}{'no held-out frames to score (a larger corpus has them)':>38}"
    return f"{vocab_size:>6}{q['phone_purity']:>14.3f}{q['cluster_purity']:>16.3f}{q['pnmi']:>8.3f}"
