"""`modevo corpus stats`: what a built corpus holds (text and phones, then each built rendering)."""

from __future__ import annotations

import json

from modevo.corpus.build import SPLITS, load_manifest
from modevo.corpus.config import CorpusConfig


def rendering_dirs(cfg: CorpusConfig):
    """Every finished rendering of this config's corpus, whatever its knobs were."""
    from modevo.corpus.render import RenderingPaths

    _, corpus = load_manifest(cfg)
    root = corpus.root / "renderings"
    if not root.is_dir():
        return []
    return [RenderingPaths(d.name.rsplit("-", 1)[0], d) for d in sorted(root.iterdir())
            if (d / "manifest.json").exists()]


def collect(cfg: CorpusConfig) -> dict:
    manifest, _ = load_manifest(cfg)
    renderings = {}
    for paths in rendering_dirs(cfg):
        m = json.loads(paths.manifest.read_text())
        renderings[paths.root.name] = {k: m[k] for k in ("name", "voices", "fallback", "backend", "stats")}
    return {"corpus": manifest, "renderings": renderings}


def format_stats(info: dict) -> str:
    manifest = info["corpus"]
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
    lines.append("skipped: " + (", ".join(f"{k} {v}" for k, v in skips.items()) if skips else "none"))
    if info.get("renderings"):
        lines.append("")
        lines.append(f"{'rendering':<24}{'backend':>9}{'hours':>8}{'words/s':>9}{'phones/s':>10}{'mismatch':>10}"
                     f"{'MB/hour':>9}  voices")
        for key, r in info["renderings"].items():
            s = r["stats"]
            voices = " ".join(f"{v} {100 * share:.0f}%" for v, share in s["voices"].items())
            backend = r["backend"] + ("*" if r["fallback"] else "")
            lines.append(f"{key:<24}{backend:>9}{s['hours']:>8.2f}{s['words_per_s']:>9.2f}{s['phones_per_s']:>10.2f}"
                         f"{s['mismatches']:>10}{s['audio_mb_per_hour']:>9.1f}  {voices}")
        if any(r["fallback"] for r in info["renderings"].values()):
            lines.append("* espeak-ng fallback: MBROLA voices were absent when this rendering was built")
    return "\n".join(lines)
