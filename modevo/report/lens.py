"""The latent-transcription figure and table: `modevo lens` results (score/lens.py lens.json) of several runs
side by side — recall@k of the current and the next word's first text piece against relative depth, one
line per condition with its interval band, each condition's shuffled-target baseline dashed in its colour."""

from __future__ import annotations

import csv
from pathlib import Path

TARGET_TITLES = {"current": "the word being heard", "next": "the next word"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(result: dict, target: str, k: str, measure: str = "recall"):
    """(depths, means, los, his) of one target and k over a run's layers (layers without a value left out)."""
    pts = [(r["depth"], r[measure][target][k]) for r in result["layers"] if r[measure][target][k]["mean"] is not None]
    return ([d for d, _ in pts], [e["mean"] for _, e in pts], [e["lo"] for _, e in pts], [e["hi"] for _, e in pts])


def lens_figure(results: dict[str, dict], out_png: str | Path, ks: list | None = None,
                measure: str = "recall") -> Path:
    """Rows: current word, next word; columns: each k. x = layer / n_layers (0 = embeddings, 1 = last block),
    y = recall@k from 0; solid lines with bands: the readout; dashed, same colour: that run's shuffled-target
    baseline. The legend sits outside the axes, on the right."""
    plt = _plt()
    from matplotlib.lines import Line2D

    out_png = Path(out_png)
    first = next(iter(results.values()))
    ks = [str(k) for k in (ks or first["settings"]["ks"])]
    targets = ["current", "next"]
    fig, axes = plt.subplots(len(targets), len(ks), figsize=(3.7 * len(ks), 3.1 * len(targets)), dpi=130,
                             squeeze=False, sharex=True)
    from modevo.report.figures import styles

    looks = styles([(label, res["view"]) for label, res in results.items()])
    top, handles = 0.0, []
    for label, res in results.items():
        colour, marker = looks[label]["color"], looks[label]["marker"]
        handles.append(Line2D([], [], color=colour, marker=marker, ms=4, lw=1.6,
                              label=f"{label}\n{res['n_words']} words, {res['n_utterances']} utterances, "
                                    f"{res['settings']['checkpoint'].removesuffix('.pt')}"))
        for i, target in enumerate(targets):
            for j, k in enumerate(ks):
                ax = axes[i][j]
                x, m, lo, hi = _series(res, target, k, measure)
                if x:
                    ax.plot(x, m, marker=marker, ms=4, lw=1.6, color=colour)
                    ax.fill_between(x, lo, hi, color=colour, alpha=0.18, lw=0)
                    top = max(top, max(hi))
                x, m, _, hi = _series(res, f"shuffled_{target}", k, measure)
                if x:
                    ax.plot(x, m, ls="--", lw=1.1, color=colour)
                    top = max(top, max(hi))
    handles.append(Line2D([], [], color="grey", ls="--", lw=1.1,
                          label="dashed: the same run, targets permuted\nacross words (the readout's chance level)"))
    for i, target in enumerate(targets):
        for j, k in enumerate(ks):
            ax = axes[i][j]
            ax.set_ylim(0, min(1.0, max(0.05, top * 1.1)))
            ax.set_xlim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=9)
            ax.set_title(f"recall@{k}: {TARGET_TITLES[target]}", fontsize=10)
            if j == 0:
                ax.set_ylabel(f"recall@k ({target} word)", fontsize=9)
            if i == len(targets) - 1:
                ax.set_xlabel("relative depth (layer / layers; 0 = embeddings)", fontsize=9)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    what = ("per word, the share of its frames at which the target is in the top k; mean over words"
            if measure == "recall" else "the share of words whose target is in the top k at any of their frames")
    fig.suptitle("Latent transcription: logit lens over the text vocabulary inside spoken words", fontsize=11)
    fig.text(0.01, 0.005, f"{measure}: {what}; bands: 95% cluster bootstrap over utterances", fontsize=7,
             color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, bbox_inches="tight")
    plt.close(fig)
    return out_png


def lens_table(results: dict[str, dict], out_csv: str | Path) -> Path:
    """Every number of the figure (and recall_any) as one CSV: label, layer, depth, measure, target, k, mean, lo, hi."""
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "view", "run_dir", "checkpoint", "layer", "depth", "measure", "target", "k", "mean", "lo",
                    "hi", "n_words"])
        for label, res in results.items():
            for row in res["layers"]:
                for measure in ("recall", "recall_any"):
                    for target, cell in row[measure].items():
                        for k, e in cell.items():
                            w.writerow([label, res["view"], res["run_dir"], res["settings"]["checkpoint"], row["layer"],
                                        f"{row['depth']:.4f}", measure, target, k, e["mean"], e["lo"], e["hi"], e["n"]])
    return out_csv
