"""The package layout is a contract: stages import only earlier stages, shared modules import no stage.

corpus → units → views → train → tasks → score → report; the top-level helpers (cache, config, errors,
machine, shards) sit below every stage; cli, pipeline and __main__ drive the stages and nothing imports them.
"""

import ast
from pathlib import Path

import modevo

ROOT = Path(modevo.__file__).resolve().parent
STAGES = ["corpus", "units", "views", "train", "tasks", "score", "generate", "report"]
DRIVERS = {"cli", "pipeline", "__main__"}


def _imports(path: Path, root: Path) -> list[str]:
    """Absolute module names `path` imports, relative imports resolved against its package."""
    package = ["modevo", *path.relative_to(root).parts[:-1]]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = base + ([node.module] if node.module else [])
            names += [".".join(module + [a.name]) for a in node.names]  # `from modevo import pipeline` too
    return names


def _owner(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _violations(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        src = _owner(path, root)
        if src in DRIVERS:  # cli, pipeline and __main__ may import every stage
            continue
        for name in _imports(path, root):
            parts = name.split(".")
            if parts[0] != "modevo" or len(parts) < 2:
                continue
            dst = parts[1]
            later = src in STAGES and dst in STAGES and STAGES.index(dst) > STAGES.index(src)
            shared_imports_stage = src not in STAGES and dst in STAGES
            if later or shared_imports_stage or dst in DRIVERS:
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


def test_no_import_goes_against_the_data_flow():
    assert _violations() == []


def test_the_check_catches_each_kind_of_violation(tmp_path):
    # The check is only as good as its parser: relative imports must resolve, `from . import x` too.
    for rel, text in {"units/probe.py": "from ..report import tables\nfrom modevo.views import registry\nfrom . import kmeans\n",
                      "cache.py": "from .train import model\n",
                      "score/probe.py": "from modevo import pipeline\nfrom ..tasks import base\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert _violations(tmp_path) == ["cache.py imports modevo.train.model",
                                     "score/probe.py imports modevo.pipeline",
                                     "units/probe.py imports modevo.report.tables",
                                     "units/probe.py imports modevo.views.registry"]
