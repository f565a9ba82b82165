from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modevo.config import load, parse_override, require
from modevo.corpus.config import CorpusConfig
from modevo.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class Inner:
    n_layer: int = 2
    width: float = 1.0

    def __post_init__(self):
        require(self.n_layer > 0, "n_layer must be positive")


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    limit: int | None = None


def test_precedence_defaults_yaml_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("name: from_yaml\ninner:\n  n_layer: 4\n")
    cfg = load(Outer, y, ["inner.n_layer=6"])
    assert cfg.name == "from_yaml"  # yaml over default
    assert cfg.inner.n_layer == 6  # override over yaml
    assert cfg.inner.width == 1.0  # default kept
    assert load(Outer, y).inner.n_layer == 4


def test_unknown_key_names_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'inner.n_layr'.*did you mean 'n_layer'"):
        load(Outer, None, ["inner.n_layr=3"])
    y = tmp_path / "c.yaml"
    y.write_text("inner:\n  widht: 2\n")
    with pytest.raises(ConfigError, match=r"unknown key 'inner.widht'.*did you mean 'width'"):
        load(Outer, y)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"'inner.n_layer' expects an integer, got 'abc'"):
        load(Outer, None, ["inner.n_layer=abc"])
    with pytest.raises(ConfigError, match=r"'tags' expects a list"):
        load(Outer, None, ["tags=5"])


def test_value_check_and_optional():
    with pytest.raises(ConfigError, match="n_layer must be positive"):
        load(Outer, None, ["inner.n_layer=-1"])
    assert load(Outer, None, ["limit=null"]).limit is None
    assert load(Outer, None, ["limit=7", "tags=[a,b]"]).tags == ["a", "b"]
    assert load(Outer, None, ["inner.width=3"]).inner.width == 3.0  # int accepted as float
    assert load(Outer, None, ["inner.width=1e-3"]).inner.width == 0.001  # YAML 1.1 reads this as a string


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(Outer, bad)
    with pytest.raises(ConfigError, match="not key=value"):
        parse_override("justakey")


def _config_class(group: str):
    from modevo.score.config import EvalConfig
    from modevo.train.config import TrainStageConfig
    from modevo.train.model_config import ModelConfig
    from modevo.views.build import ViewsStageConfig

    return {"corpus": CorpusConfig, "views": ViewsStageConfig, "train": TrainStageConfig, "model": ModelConfig,
            "eval": EvalConfig}[group]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_config_loads(path):
    cfg = load(_config_class(path.parent.name), path)
    if path.parent.name == "model":
        assert cfg.n_layer > 0
        return
    if path.parent.name == "eval":
        assert cfg.tasks.names and cfg.score.headline in ("sum", "mean")
        return
    corpus = cfg if isinstance(cfg, CorpusConfig) else cfg.corpus
    if path.parent.name != "train" or path.stem != "paper":  # paper training reads the cpu views by default
        assert corpus.name == path.stem  # each scale's file names its scale
    if path.parent.name == "train":
        assert cfg.train.scale == path.stem


def test_defaults_include_and_precedence(tmp_path):
    (tmp_path / "base.yaml").write_text("n_layer: 3\nwidth: 2.0\n")
    (tmp_path / "top.yaml").write_text("defaults:\n  inner: base.yaml\ninner:\n  width: 5.0\n")
    cfg = load(Outer, tmp_path / "top.yaml")
    assert cfg.inner.n_layer == 3 and cfg.inner.width == 5.0  # the including file wins
    assert load(Outer, tmp_path / "top.yaml", ["inner.width=7"]).inner.width == 7.0
    (tmp_path / "loop.yaml").write_text("defaults:\n  inner: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load(Outer, tmp_path / "loop.yaml")


def test_negative_sizes_rejected():
    with pytest.raises(ConfigError, match="chunk_sentences must be positive"):
        load(CorpusConfig, None, ["split.chunk_sentences=0"])
    with pytest.raises(ConfigError, match="num_proc must be positive"):
        load(CorpusConfig, None, ["num_proc=-2"])
