"""The quick fault script: every stage SIGKILLed at random moments (3 trials each) reruns to exactly what
an uninterrupted run produces, nothing half-written; two trainers share one sqlite MLflow store."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_fault_script(tmp_path):
    proc = subprocess.run([sys.executable, "bench/faults.py", "--quick", "--seed", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1500,
                          env={**__import__("os").environ, "MODEVO_BENCH_OUT": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    survived, total = map(int, re.search(r"(\d+)/(\d+)", last).groups())
    assert total == 15 and survived == total, proc.stdout
    assert "all metrics present" in proc.stdout
