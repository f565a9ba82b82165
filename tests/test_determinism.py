"""Same seed and config → the same corpus, renderings, units, views, weights and scores, whatever the
number of worker processes: the whole pipeline (bench/faults.py's tiny one) run twice, with --num-proc 1
and 2, in two folders at the same path in turn (runs record absolute paths)."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import faults  # noqa: E402


def test_pipeline_twice_identical_across_num_proc(tmp_path):
    ws = tmp_path / "ws"
    prints = {}
    for num_proc in (1, 2):
        shutil.rmtree(ws, ignore_errors=True)
        ws.mkdir()
        for stage in faults.STAGES:
            _, rc, err = faults.run(ws, stage, num_proc)
            assert rc == 0, (stage, num_proc, err)
        prints[num_proc] = faults.fingerprint(ws)
    a, b = prints[1], prints[2]
    kinds = {k.split("/")[0] for k in a}
    assert {"cache", "tokenizers", "runs"} <= kinds  # corpus/renderings/views, unit tokenizer, weights + scores
    assert any(k.endswith(".pt") or ".pt" in k for k in a) and any("summary.json" in k for k in a)
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    assert {k for k in a if a[k] != b[k]} == set()
