"""Probe figures: one figure per probe, accuracy by relative depth, one line per condition.

Reads what `modevo probe` wrote (<run>/probes/<checkpoint>/probes.json, score/probe.py). Relative depth is
layer / L (0 = embeddings, 1 = the last block's output), so models of different depths share one axis.
Each condition's line carries its bootstrap band (over test utterances); its majority-class accuracy is a
dashed line and its shuffled-label control a dotted one, in the condition's colour.
"""

from __future__ import annotations

import json
from pathlib import Path

from modevo.errors import InputError

PROBE_ORDER = ("phone", "place", "manner", "voicing", "speaker", "pitch", "word")
TITLES = {"phone": "phone identity", "place": "place of articulation", "manner": "manner of articulation",
          "voicing": "voicing", "speaker": "speaker (rendering voice)", "pitch": "pitch bucket (rendering)",
          "word": "word identity (word-final token)"}


def read_probes(paths) -> list[dict]:
    """probes.json files (or run folders: their newest probes.json) → the results, in the order given."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("probes/*/probes.json"))
            if not found:
                raise InputError(f"{p} has no probes/*/probes.json: run modevo probe --run {p} first")
            p = found[-1]
        if not p.is_file():
            raise InputError(f"no such probes file: {p}")
        out.append(json.loads(p.read_text()))
    return out


def plot_probe(results: list[dict], probe: str, path: Path) -> Path | None:
    """One probe's figure over conditions; None (nothing written) where no condition has that probe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from modevo.report.figures import styles

    have = [r for r in results if probe in r.get("probes", {})]
    if not have:
        return None
    looks = styles([(r.get("condition") or r["view"], r["view"]) for r in have])
    fig, ax = plt.subplots(figsize=(7.4, 3.6), dpi=130)
    for r in have:
        pr = r["probes"][probe]
        label = r.get("condition") or r["view"]
        look = looks[label]
        color = look["color"]
        x = [row["relative_depth"] for row in pr["layers"]]
        ax.fill_between(x, [row["lo"] for row in pr["layers"]], [row["hi"] for row in pr["layers"]], color=color,
                        alpha=0.18, lw=0)
        # solid: the probe (its marker tells conditions apart); dashed and dotted are the controls
        ax.plot(x, [row["acc"] for row in pr["layers"]], marker=look["marker"], ms=4, color=color,
                label=f"{label} (n={pr['n_test']}, {pr['classes']} classes)")
        ax.axhline(pr["majority"]["acc"], color=color, lw=0.8, ls="--")
        ax.plot(x, [row["shuffled_acc"] for row in pr["layers"]], color=color, lw=0.8, ls=":")
    ax.plot([], [], color="grey", ls="--", lw=0.8, label="majority class")
    ax.plot([], [], color="grey", ls=":", lw=0.8, label="shuffled-label probe")
    ax.set_xlabel("relative depth (layer / L; 0 = embeddings)")
    ax.set_ylabel("probe accuracy (test utterances)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(-0.02, 1.02)
    ax.set_title(f"linear probe: {TITLES.get(probe, probe)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def write_probe_figures(results: list[dict], out_dir: Path) -> list[Path]:
    """probe_<name>.png in out_dir for every probe any condition has."""
    names = [p for p in PROBE_ORDER if any(p in r.get("probes", {}) for r in results)]
    names += sorted({p for r in results for p in r.get("probes", {})} - set(names))
    written = [plot_probe(results, p, Path(out_dir) / f"probe_{p}.png") for p in names]
    return [w for w in written if w is not None]
