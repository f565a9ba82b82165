"""`modevo corpus stats`: what a built corpus holds, as a small table."""

from __future__ import annotations

from modevo.corpus.build import SPLITS


def format_stats(manifest: dict) -> str:
    st = manifest["stats"]
    lines = [f"corpus {manifest['name']}  key {manifest['key']}  content {manifest['content_hash'][:16]}",
             f"{'split':<7}{'documents':>10}{'chunks':>9}{'sentences':>11}{'words':>11}{'phones':>12}"]
    total = {k: 0 for k in ("documents", "chunks", "sentences", "words", "phones")}
    for s in SPLITS:
        row = st["splits"][s]
        lines.append(f"{s:<7}{row['documents']:>10}{row['chunks']:>9}{row['sentences']:>11}{row['words']:>11}"
                     f"{row['phones']:>12}")
        for k in total:
            total[k] += row[k]
    lines.append(f"{'all':<7}{st['documents_total']:>10}{total['chunks']:>9}{total['sentences']:>11}"
                 f"{total['words']:>11}{total['phones']:>12}")
    lines.append(f"phones from g2p-en (not in cmudict): {st['g2p_words']} words, {100 * st['g2p_share']:.2f}% of words")
    skips = st["skips"]
    if skips:
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in skips.items()))
    else:
        lines.append("skipped: none")
    return "\n".join(lines)
