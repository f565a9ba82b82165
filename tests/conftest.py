import os

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _private_job_lock(tmp_path_factory):
    """Tests take the heavy-job lock in a folder of their own: a modevo job the user runs meanwhile must not
    add a warning line to the output the tests check (and the tests must not warn that job)."""
    os.environ["MODEVO_LOCK_DIR"] = str(tmp_path_factory.mktemp("job-lock"))

PROSE = [
    "Mr. Holmes was seated at the breakfast table. It was a fine, thick piece of wood.",
    "Dr. Mortimer had left his stick behind him. He paid 5 pounds for it in 1884!",
    "The moor was dark and the wind was cold. Watson looked at the old house.",
    "Who could have done such a thing? Nobody knew the answer to that question.",
    "The hound was never seen again. Sir Henry went home to his family.",
]


def tiny_run_overrides(novels, tmp, *extra):
    """Config overrides for a run that trains in seconds on the `novels` fixture (tiny BPE, k=8 units)."""
    return [f"corpus.source.paths=[{novels}]", "corpus.source.max_sentences_per_document=40",
            "corpus.num_proc=1", "corpus.split.chunk_sentences=5", f"units.tokenizers_dir={tmp / 'tok'}",
            "views.text_bpe_vocab=60", "views.phone_bpe_candidates=[50,60]", "units.k=8",
            "units.max_train_frames=20000", "units.iterations=5", f"train.runs_dir={tmp / 'runs'}",
            "train.max_tokens=2048", "train.batch_size=4", "train.seq_len=32", "train.val_every_tokens=512",
            "train.val_max_tokens=512", "train.checkpoint_every_steps=4", *extra]


def write_novel(path, n_paragraphs=30, seed=0):
    """A small synthetic 'novel': a heading, then paragraphs of ordinary prose."""
    lines = ["CHAPTER I", ""]
    for i in range(n_paragraphs):
        lines.append(PROSE[(i + seed) % len(PROSE)])
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path):
    """An input folder holding one good synthetic novel (bad-input tests add the bad files beside it)."""
    d = tmp_path / "in"
    d.mkdir()
    write_novel(d / "good.txt", n_paragraphs=8)
    return d


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("MODEVO_CACHE", str(d))
    return d


@pytest.fixture
def novels(tmp_path):
    d = tmp_path / "novels"
    d.mkdir()
    for i in range(3):
        write_novel(d / f"book{i}.txt", seed=i)
    return d


def novels_workspace(tmp_path_factory, name: str):
    """A module's workspace for trained runs: three synthetic novels and a private MODEVO_CACHE; a generator
    for a module-scoped fixture, yielding (folder, novels folder)."""
    tmp = tmp_path_factory.mktemp(name)
    novels = tmp / "novels"
    novels.mkdir()
    for i in range(3):
        write_novel(novels / f"book{i}.txt", seed=i)
    mp = pytest.MonkeyPatch()
    mp.setenv("MODEVO_CACHE", str(tmp / "cache"))
    yield tmp, novels
    mp.undo()


def train_tiny(workspace, view: str, milestones: int = 2, *extra: str):
    """A run of `view` trained in seconds in a novels_workspace (extra: key=value overrides); returns its folder."""
    from pathlib import Path

    from modevo.config import load
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import train

    tmp, novels = workspace
    root = Path(__file__).resolve().parent.parent
    stage = load(TrainStageConfig, root / "configs/train/smoke.yaml",
                 tiny_run_overrides(novels, tmp, f"train.view={view}", f"train.milestones={milestones}", *extra))
    return Path(train(stage, progress=False)["run_dir"])
