"""A build killed mid-way (SIGKILL) resumes from its finished shards to the same content hash."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from modevo.config import load
from modevo.corpus.build import build
from modevo.corpus.config import CorpusConfig
from tests.conftest import write_novel

ROOT = Path(__file__).resolve().parent.parent


def test_killed_build_resumes_to_same_hash(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    for i in range(12):
        write_novel(books / f"b{i:02d}.txt", n_paragraphs=400, seed=i)
    overrides = [f"source.paths=[{books}]", "num_proc=1", "split.chunk_sentences=8"]

    killed_cache = tmp_path / "killed"
    env = dict(os.environ, MODEVO_CACHE=str(killed_cache), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "modevo", "corpus", "build", "--no-progress", *overrides],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    shards = None
    while time.time() < deadline and proc.poll() is None:
        found = list(killed_cache.glob("corpus/*/shards/[0-9]*"))
        if found:
            shards = found[0].parent
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert shards is not None, "the build finished no shard before the deadline"
    done_before = len(list(shards.glob("[0-9]*")))
    assert 1 <= done_before < 12
    assert not (shards.parent / "manifest.json").exists()

    os.environ["MODEVO_CACHE"] = str(killed_cache)
    try:
        resumed = build(load(CorpusConfig, None, overrides), progress=False)
    finally:
        del os.environ["MODEVO_CACHE"]
    assert not list(shards.glob(".*tmp-*"))  # the half-written shard was cleaned, not kept

    clean = build(load(CorpusConfig, None, overrides + [f"cache_dir={tmp_path / 'clean'}"]), progress=False)
    h_resumed = json.loads(resumed.manifest.read_text())["content_hash"]
    h_clean = json.loads(clean.manifest.read_text())["content_hash"]
    assert h_resumed == h_clean
