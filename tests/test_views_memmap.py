"""Views written shard by shard and read memory-mapped equal what the whole-corpus, in-memory path gave:
the same tokens per utterance, the same split streams (each utterance followed by the separator) as the old
`pack`, the uint16/uint32 rule, no full load; and nothing in `views build` holds every corpus row."""

import json

import numpy as np
import pytest

from modevo.config import load
from modevo.corpus import synth
from modevo.views.build import (SPLITS, StreamWriter, ViewContext, ViewsStageConfig, build_view, encoder_and_inputs,
                                load_view, stream_dtype)
from modevo.views.registry import parse_view

needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")
VIEWS = ["text-bpe", "text-char", "phone", "phone-repeat@mean", "phone-repeat@varied", "speech@varied/mel-kmeans"]


@pytest.fixture
def stage(novels, tmp_path, cache):
    return load(ViewsStageConfig, None, [
        f"corpus.source.paths=[{novels}]", "corpus.source.max_sentences_per_document=30", "corpus.num_proc=1",
        "corpus.split.chunk_sentences=5", f"units.tokenizers_dir={tmp_path / 'tok'}", "views.text_bpe_vocab=60",
        "units.k=8", "units.max_train_frames=20000", "units.iterations=5"])


def _reference(spec, ctx):
    """The pre-streaming path: every corpus row, rendering row and unit sequence in memory at once."""
    from modevo.corpus.build import load_corpus
    from modevo.corpus.render import load_rendering
    from modevo.units.build import load_units

    enc, _, _ = encoder_and_inputs(spec, ctx)
    ds = load_corpus(ctx.corpus)
    rows = [dict(zip(ds.column_names, vals)) for vals in zip(*(ds[c] for c in ds.column_names))]
    rend = units = None
    if spec.frame_level and spec.rendering != "mean":
        r = load_rendering(ctx.rendering(spec.rendering)[0])
        cols = ["id", "frames", "durations_ms", "start_ms"]
        rend = {v[0]: dict(zip(cols, v)) for v in zip(*(r[c] for c in cols))}
    if spec.family == "speech":
        u = load_units(ctx.units(spec.rendering, spec.tokenizer)[0])
        units = dict(zip(u["id"], u["units"]))
    pieces = [enc.encode(r, rendering=rend[r["id"]] if rend else None,
                         units=np.asarray(units[r["id"]]) if units else None) for r in rows]
    streams = {}
    for s in SPLITS:  # the old `pack`: each utterance of the split followed by a zero
        mine = [p for p, r in zip(pieces, rows) if r["split"] == s]
        streams[s] = np.concatenate([np.r_[p, 0] for p in mine]).astype(np.int64) if mine else np.zeros(0, np.int64)
    return rows, pieces, streams


@needs_espeak
def test_streamed_views_equal_the_in_memory_path(stage):
    ctx = ViewContext(stage, progress=False)
    roots = {n: build_view(parse_view(n, stage.views.tokenizer), ctx) for n in VIEWS}
    assert ctx._rows is None  # the build streamed the corpus shard by shard: all rows were never loaded
    assert ctx.manifest["shards"] > 1
    for name, root in roots.items():
        view = load_view(root)
        rows, pieces, streams = _reference(view.spec, ctx)
        assert view.ids == [r["id"] for r in rows] and view.splits == [r["split"] for r in rows]
        assert len(view) == len(rows)
        for i, p in enumerate(pieces):
            np.testing.assert_array_equal(view.utterance(i), p)
        for s in SPLITS:
            st = view.stream(s)
            assert isinstance(st, np.memmap) and st.dtype == np.uint16 and not st.flags.writeable
            np.testing.assert_array_equal(st, streams[s])
            assert view.split_mask(s).sum() == view.manifest["splits"][s]["utterances"]
            assert view.manifest["splits"][s]["tokens"] == len(st) - view.manifest["splits"][s]["utterances"]
        assert view.manifest["tokens"] == sum(len(p) for p in pieces)
        assert view.manifest["dtype"] == "uint16" and not (root / "tokens.npy").exists()


@needs_espeak
def test_training_reads_the_memmap_and_ngram_is_unchanged(stage):
    from modevo.score.ngram import NGramLM, stream_chunks
    from modevo.train.data import StepBatches, ValidWindows, ViewDataModule

    ctx = ViewContext(stage, progress=False)
    view = load_view(build_view(parse_view("phone-repeat@varied"), ctx))
    dm = ViewDataModule(view, seq_len=16, batch_size=4, seed=0, total_steps=3, val_max_tokens=64)
    assert isinstance(dm.train_stream, np.memmap) and dm.train_stream.dtype == np.uint16  # no int64 copy
    batch = StepBatches(dm.train_stream, 16, 4, seed=0, start=0, total=3)[1]
    assert batch.dtype == __import__("torch").int64 and batch.shape == (4, 17)
    starts = StepBatches(dm.train_stream, 16, 4, seed=0, start=0, total=3).window_ids(1) * 16
    np.testing.assert_array_equal(batch.numpy(), np.stack([np.asarray(dm.train_stream[s:s + 17], np.int64)
                                                           for s in starts]))
    assert ValidWindows(dm.valid_stream, 16, 64)[0].dtype == __import__("torch").int64
    # the n-gram baseline fitted chunk by chunk from the stream equals the whole-corpus fit
    idx = np.flatnonzero(view.split_mask("train"))
    pieces = [view.utterance(i) for i in idx]
    offsets = np.r_[0, np.cumsum([len(p) for p in pieces])].astype(np.int64)
    whole = NGramLM.fit(np.concatenate(pieces).astype(np.int64), offsets, len(view.vocab), order=3)
    chunked = NGramLM.fit_chunks(stream_chunks(view.stream("train"), 100), len(view.vocab), order=3)
    for a, b in zip(whole.tables, chunked.tables, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_stream_dtype_rule():
    assert stream_dtype(40) == np.uint16 and stream_dtype(65535) == np.uint16
    assert stream_dtype(65536) == np.uint32 and stream_dtype(3_000_000) == np.uint32


def _write(folder, dtype, shards):
    w = StreamWriter(folder, dtype)
    for rows, pieces in shards:
        w.add_shard(rows, [np.asarray(p, np.int64) for p in pieces])
    return w.close()


def _rows(*splits):
    return [{"id": f"u{i}-{s}", "split": s, "words": ["w"] * (i + 1)} for i, s in enumerate(splits)]


def test_writer_uint32_streams_index_and_ids(tmp_path):
    shards = [(_rows("train", "valid", "train"), [[70000, 1], [], [2, 3, 99999]]),
              ([], []), (_rows("test", "train"), [[5], [6, 7]])]
    info = _write(tmp_path, np.uint32, shards)
    train = np.load(tmp_path / "stream-train.npy", mmap_mode="r")
    assert train.dtype == np.uint32 and train.tolist() == [70000, 1, 0, 2, 3, 99999, 0, 6, 7, 0]
    assert np.load(tmp_path / "stream-valid.npy").tolist() == [0]  # an empty utterance is its separator alone
    assert np.load(tmp_path / "stream-test.npy").tolist() == [5, 0]
    index = np.load(tmp_path / "index.npy")
    assert index.tolist() == [[0, 2], [0, 0], [3, 3], [0, 1], [7, 2]]
    assert np.load(tmp_path / "splits.npy").tolist() == [0, 1, 0, 2, 0]
    assert json.loads((tmp_path / "ids.json").read_text()) == ["u0-train", "u1-valid", "u2-train", "u0-test", "u1-train"]
    assert info["tokens"] == 8 and info["splits"]["train"] == {"utterances": 3, "tokens": 7, "words": 6}
    assert info["dtype"] == "uint32"


def test_writer_rewrites_when_the_header_grows(tmp_path, monkeypatch):
    """A numpy whose .npy header length depends on the shape: the stream is copied behind the new header."""
    real = StreamWriter._header

    def header(self, n):
        h = real(self, n)
        if n:
            return h
        body = h[10:].rstrip(b"\n") + b" " * 64 + b"\n"  # a longer (still valid) placeholder header
        return h[:8] + len(body).to_bytes(2, "little") + body

    monkeypatch.setattr(StreamWriter, "_header", header)
    _write(tmp_path, np.uint16, [(_rows("train", "train"), [[1, 2], [3]])])
    assert np.load(tmp_path / "stream-train.npy", mmap_mode="r").tolist() == [1, 2, 0, 3, 0]
    assert np.load(tmp_path / "stream-valid.npy").tolist() == []
    assert not list(tmp_path.glob("*.tmp"))
