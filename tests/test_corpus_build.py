import json

from modevo.config import load
from modevo.corpus.build import assign_splits, build, load_corpus, load_manifest
from modevo.corpus.config import CorpusConfig
from modevo.corpus.phones import cmu_dict, split_stress


def cfg_for(paths, *overrides):
    return load(CorpusConfig, None, [f"source.paths={json.dumps([str(p) for p in paths])}",
                                     "split.chunk_sentences=4", "num_proc=1", *overrides])


def test_build_rows_and_stats(novels, cache):
    cfg = cfg_for([novels])
    paths = build(cfg, progress=False)
    ds = load_corpus(paths)
    manifest, _ = load_manifest(cfg)
    assert len(ds) == sum(manifest["stats"]["splits"][s]["sentences"] for s in ("train", "valid", "test"))
    row = ds[0]
    assert row["text"] == " ".join(row["words"])
    assert len(row["phones"]) == len(row["words"]) == len(row["stress"]) == len(row["phone_route"])
    for word, phones, stress, route in zip(row["words"], row["phones"], row["stress"], row["phone_route"]):
        if route == "cmudict":
            assert (phones, stress) == split_stress(cmu_dict()[word])
    # the heading is its own sentence, not glued to the first paragraph, and marked as a heading
    assert ds[0]["text"] == "chapter one" and ds[0]["heading"] is True
    assert all(r["heading"] == (r["text"] == "chapter one") for r in ds)  # each book's heading; no prose


def test_is_heading():
    from modevo.corpus.sources import is_heading

    for h in ("CHAPTER IV", "THE HOUND OF THE BASKERVILLES", "Contents", "I. Mr. Sherlock Holmes", "XLII"):
        assert is_heading(h), h
    for prose in ("It was a fine day.", "“Yes,” he said.", '"Who?"', "Yes,", "He stopped—",
                  "and the long road that ran on and on past the old mill and into the town beyond"):
        assert not is_heading(prose), prose


def test_splits_never_share_a_chunk_and_every_document_is_held_out(novels, cache):
    ds = load_corpus(build(cfg_for([novels]), progress=False))
    owner = {}
    for r in ds:
        key = (r["doc_id"], r["chunk"])
        assert owner.setdefault(key, r["split"]) == r["split"]
    for doc in {r["doc_id"] for r in ds}:
        splits = {owner[k] for k in owner if k[0] == doc}
        assert splits == {"train", "valid", "test"}


def test_assign_splits_deterministic_and_fractions():
    cfg = load(CorpusConfig, None, ["split.valid_fraction=0.1", "split.test_fraction=0.2"])
    a = assign_splits("doc", 100, cfg)
    assert a == assign_splits("doc", 100, cfg)
    assert a.count("valid") == 10 and a.count("test") == 20
    assert assign_splits("doc", 2, cfg) == ["train", "train"]  # too short to hold anything out


def test_cache_hit_and_num_proc_independent(novels, cache, tmp_path):
    cfg = cfg_for([novels])
    first = build(cfg, progress=False)
    h1 = json.loads(first.manifest.read_text())["content_hash"]
    assert build(cfg, progress=False) == first  # cached: same place, nothing rebuilt
    other = cfg_for([novels], f"cache_dir={tmp_path / 'other'}", "num_proc=2")
    import os
    os.environ.pop("MODEVO_CACHE")
    second = build(other, progress=False)
    assert second.root != first.root
    assert json.loads(second.manifest.read_text())["content_hash"] == h1


def test_cache_key_ignores_runtime_fields_but_not_text_fields(novels, cache):
    from modevo.corpus.build import plan

    base = plan(cfg_for([novels]))[2].root
    assert plan(cfg_for([novels], "num_proc=2", "name=other"))[2].root == base
    assert plan(cfg_for([novels], "text.max_words=10"))[2].root != base


def test_datasets_source(tmp_path, cache):
    import datasets

    from tests.conftest import PROSE

    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"body": PROSE * 4}).save_to_disk(str(folder))
    cfg = load(CorpusConfig, None, [f"source.dataset={folder}", "source.text_column=body",
                                    "source.docs_per_shard=7", "num_proc=1"])
    ds = load_corpus(build(cfg, progress=False))
    assert len({r["doc_id"] for r in ds}) == 20
    assert len(ds) == 40  # two sentences per document


def test_builtin_novels_come_from_the_manifest():
    from modevo.corpus.config import SourceConfig
    from modevo.corpus.sources import list_file_documents

    docs, prints = list_file_documents(SourceConfig(paths=["builtin:novels"]))
    assert len(docs) == 10 and all(d.path.endswith(".txt") for d in docs)
    assert "NOTE" not in {d.doc_id for d in docs}
    assert all(len(p["sha256"]) == 64 for p in prints)
