"""`modevo layers` (issue 25): one run per condition probed (and lens-read where its vocabulary has text),
the figures and a plain "What each layer keeps" summary in results/<scale>/layers/."""

import csv
import json
from types import SimpleNamespace

import pytest

from conftest import novels_workspace, train_tiny
from modevo.corpus import synth
from modevo.report.layers import lens_verdicts, probe_verdicts, representatives

needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


def _probe_result(layer_acc, lo_shift, majority_hi, shuffled):
    layers = [{"layer": i, "acc": a, "lo": a - lo_shift, "hi": a + lo_shift, "shuffled_acc": shuffled}
              for i, a in enumerate(layer_acc)]
    best = max(range(len(layers)), key=lambda i: layers[i]["acc"])
    return {"n_layer": len(layers) - 1, "checkpoint": "tokens-000100.pt", "probes": {"phone": {
        "classes": 5, "n_test": 300, "best_layer": best, "layers": layers,
        "majority": {"acc": majority_hi - 0.02, "lo": majority_hi - 0.04, "hi": majority_hi}}}}


def test_probe_verdict_is_kept_only_where_a_layer_clears_both_controls():
    res = _probe_result([0.30, 0.52, 0.60, 0.41], lo_shift=0.05, majority_hi=0.40, shuffled=0.35)
    (row,) = probe_verdicts("phone", res)
    # layer 1: lo 0.47 > 0.40; layer 2: lo 0.55; layer 3: lo 0.36 < 0.40; layer 0: below
    assert row["layers clear of controls"] == "1,2" and row["verdict"] == "kept" and row["best layer"] == "2/3"
    # the shuffled-label probe is a control too: at 0.56 only layer 2 is clear of it
    (row,) = probe_verdicts("phone", _probe_result([0.30, 0.52, 0.62, 0.41], 0.05, 0.40, shuffled=0.56))
    assert row["layers clear of controls"] == "2"
    # nothing clear of the majority's upper bound: cannot tell, even with the best point above it
    (row,) = probe_verdicts("phone", _probe_result([0.30, 0.44, 0.45, 0.41], 0.05, 0.42, 0.30))
    assert row["verdict"] == "cannot tell" and row["layers clear of controls"] == "none"


def test_lens_verdict_compares_the_peak_with_its_own_shuffled_baseline():
    def cell(m, w):
        return {"5": {"mean": m, "lo": m - w, "hi": m + w, "n": 50}}

    layers = [{"layer": i, "recall": {"current": cell(c, 0.02), "next": cell(n, 0.02),
                                       "shuffled_current": cell(0.05, 0.01), "shuffled_next": cell(0.05, 0.01)}}
              for i, (c, n) in enumerate([(0.04, 0.05), (0.30, 0.06), (0.10, 0.055)])]
    res = {"layers": layers, "n_layers": 2, "n_words": 50, "settings": {"checkpoint": "tokens-000100.pt"}}
    cur, nxt = lens_verdicts("interleaved", res, "5")
    assert cur["peak layer"] == "1/2" and cur["verdict"] == "above shuffled"
    assert nxt["verdict"] == "cannot tell"  # 0.06 - 0.02 = 0.04 < 0.06


def test_lowest_seed_stands_for_its_condition_and_a_missing_condition_is_one_error():
    from modevo.errors import InputError

    def run(view, seed, rid, variant=""):
        return SimpleNamespace(view=view, seed=seed, run_id=rid, tags={"variant": variant} if variant else {})

    runs = [run("phone", 1, "a"), run("phone", 0, "b"), run("phone", 0, "c"),
            run("interleaved@varied/mel-kmeans", 0, "d", "speech share 1")]
    chosen = representatives(runs)
    assert chosen["phone"].run_id == "c"  # seed 0, its newest run
    assert set(chosen) == {"phone", "interleaved@varied/mel-kmeans [speech share 1]"}
    assert list(representatives(runs, ["phone"])) == ["phone"]
    with pytest.raises(InputError, match="no finished run of text-bpe"):
        representatives(runs, ["text-bpe"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "layers")


@needs_espeak
def test_modevo_layers_writes_probes_lens_and_the_summary(workdir, capsys):
    from modevo.cli import main

    tmp = workdir[0]
    mixed = train_tiny(workdir, "interleaved@varied/mel-kmeans")
    repeat = train_tiny(workdir, "phone-repeat@varied")
    out = tmp / "layers-out"
    argv = ["layers", "--scale", "smoke", "--runs-dir", str(tmp / "runs"), "--out", str(out), "--max-positions",
            "300", "--max-utterances", "40", "--utterances", "20", "--probes", "phone,voicing,speaker",
            "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pairs kept above both controls" in printed
    md = (out / "layers.md").read_text()
    assert "interleaved@varied/mel-kmeans" in md and "phone-repeat@varied" in md and "## Latent transcription" in md
    assert (out / "lens.png").is_file() and (out / "probe_phone.png").is_file()
    # every verdict in layers.csv follows from the probes.json it was read from
    rows = list(csv.DictReader(open(out / "layers.csv")))
    assert {r["condition"] for r in rows} == {"interleaved@varied/mel-kmeans", "phone-repeat@varied"}
    for run in (mixed, repeat):
        res = json.loads(next((run / "probes").glob("*/probes.json")).read_text())
        label = res["view"]
        for name, pr in res["probes"].items():
            (row,) = [r for r in rows if r["condition"] == label and r["probe"] == name]
            clear = [x["layer"] for x in pr["layers"] if x["lo"] > max(pr["majority"]["hi"], x["shuffled_acc"])]
            assert row["layers clear of controls"] == (",".join(map(str, clear)) or "none")
    lens_rows = list(csv.DictReader(open(out / "lens_verdicts.csv")))
    assert {r["condition"] for r in lens_rows} == {"interleaved@varied/mel-kmeans"}  # phone-repeat has no text
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["conditions"]["phone-repeat@varied"]["run_dir"] == str(repeat)
    # a condition with no run: one line, exit 2, nothing written over
    before = (out / "layers.md").read_text()
    assert main(argv + ["--conditions", "text-bpe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no finished run of text-bpe" in err[0]
    assert (out / "layers.md").read_text() == before
