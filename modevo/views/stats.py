"""`modevo views stats`: the length ladder of the views and the quality of the speech units."""

from __future__ import annotations

from pathlib import Path

from modevo.cache import read_json
from modevo.corpus.build import load_manifest
from modevo.views.build import ViewsStageConfig, view_settings
from modevo.units.quality import QUALITY_HEADER, quality_columns
from modevo.views.registry import parse_view


def find_views(stage: ViewsStageConfig) -> dict[str, Path]:
    """Built views of this corpus with this config's settings, newest per view name (nothing is built)."""
    _, corpus = load_manifest(stage.corpus)
    wanted = {parse_view(n, stage.views.tokenizer).name for n in stage.views.views}
    settings = view_settings(stage.views)
    found: dict[str, Path] = {}
    for m in sorted((corpus.root / "views").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime):
        man = read_json(m, f"delete {m.parent} and rerun `modevo views build`")
        if man["view"] in wanted and man["settings"] == settings:
            found[man["view"]] = m.parent
    return found


def _speech_seconds(corpus_root: Path, rendering: str) -> float | None:
    for m in sorted((corpus_root / "renderings").glob(f"{rendering}-*/manifest.json")):
        return read_json(m, "delete it and rerun `modevo corpus build` (finished shards are kept)")["stats"]["hours"] * 3600
    return None


def collect_views(stage: ViewsStageConfig, roots: dict[str, Path]) -> dict:
    _, corpus = load_manifest(stage.corpus)
    out = {}
    for name, root in roots.items():
        out[name] = read_json(Path(root) / "manifest.json", f"delete {root} and rerun `modevo views build`")
    base = out.get("text-bpe", {}).get("tokens")
    seconds = _speech_seconds(corpus.root, stage.views.mean_from)
    for m in out.values():
        m["length_ratio_to_text_bpe"] = m["tokens"] / base if base else None
        m["tokens_per_second"] = m["tokens"] / seconds if seconds else None
    return {"views": out, "seconds_of_speech": seconds, "seconds_from": stage.views.mean_from,
            "settings": view_settings(stage.views)}


def format_views(info: dict) -> str:
    views = info["views"]
    lines = [f"views with word_boundaries={info['settings']['word_boundaries']} stress={info['settings']['stress']} "
             f"dedup_units={info['settings']['dedup_units']}",
             f"{'view':<28}{'paper':<14}{'vocab':>7}{'tokens':>11}{'tok/word':>10}{'tok/s':>8}{'×text-bpe':>11}"]
    for name, m in sorted(views.items(), key=lambda kv: kv[1]["tokens"]):
        ratio = f"{m['length_ratio_to_text_bpe']:.2f}" if m["length_ratio_to_text_bpe"] else "-"
        tps = f"{m['tokens_per_second']:.1f}" if m["tokens_per_second"] else "-"
        lines.append(f"{name:<28}{m['paper_name']:<14}{m['vocab_size']:>7}{m['tokens']:>11}"
                     f"{m['tokens_per_word']:>10.2f}{tps:>8}{ratio:>11}")
    if info["seconds_of_speech"]:
        lines.append(f"tok/s: tokens per second of the '{info['seconds_from']}' rendering's audio "
                     f"({info['seconds_of_speech'] / 3600:.2f} h, silences included)")
    units = [(n, m["units"]) for n, m in views.items() if "units" in m]
    if units:
        lines.append("")
        lines.append(f"{'unit quality (held-out, no silence)':<40}{QUALITY_HEADER}")
        for name, u in units:
            lines.append(f"{name:<40}{quality_columns(u['vocab_size'], u['quality']['speech'])}")
    for name, m in views.items():
        if "vocab_search" in m:
            vs = m["vocab_search"]
            searched = next(v for k, v in vs.items() if k != "text_bpe_tokens_per_word")  # phone or unit BPE's
            cands = ", ".join(f"{v}: {t:.2f}" for v, t in searched.items())
            lines.append(f"{name} vocabulary {m['vocab_size'] - 1}: tokens/word by size {cands}; "
                         f"text-bpe {vs['text_bpe_tokens_per_word']:.2f}")
    return "\n".join(lines)
