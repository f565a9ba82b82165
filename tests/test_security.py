"""Security rules checked statically over modevo/**/*.py (ast, no execution): no shell strings built from user
text (argument lists only), torch.load(weights_only=True) for anything read back, no pickle of files, and the
MLflow UI bound to 127.0.0.1 unless the user asks for another host."""

import ast
import inspect
from pathlib import Path

import pytest

import modevo

PACKAGE = Path(modevo.__file__).resolve().parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
SUBPROCESS = {"run", "Popen", "call", "check_call", "check_output"}
# pickle over the pipe to synth.py's own helper process (requests and replies it wrote itself), never a file
PICKLE_ALLOWED = {("corpus/synth.py", "pickle.loads"), ("corpus/synth.py", "pickle.dumps")}


def _calls():
    """(relative path, line, dotted name, ast.Call) for every call in the package."""
    out = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                out.append((path.relative_to(PACKAGE).as_posix(), node.lineno, _dotted(node.func), node))
    return out


def _dotted(func) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    parts.append(func.id if isinstance(func, ast.Name) else "<expr>")  # f().eval is not the builtin eval
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


CALLS = _calls()


def test_the_scan_sees_the_package():
    names = {name for _, _, name, _ in CALLS}
    assert len(SOURCES) > 40 and "torch.load" in names and "subprocess.Popen" in names


def test_no_shell_true_anywhere():
    bad = [f"{p}:{line} {name}" for p, line, name, c in CALLS if _is_true(_kw(c, "shell"))]
    assert not bad, bad


@pytest.mark.parametrize("banned", ["os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                                    "os.execl", "os.execlp", "os.spawnl", "eval", "exec"])
def test_no_shell_or_code_string_runners(banned):
    bad = [f"{p}:{line}" for p, line, name, _ in CALLS if name == banned]
    assert not bad, f"{banned} used at {bad}"


def _stringy(node) -> bool:
    """A command given as one string: a literal, an f-string, '+'/'%' formatting, str.format or ' '.join."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _stringy(node.left) or _stringy(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "join"):
        return isinstance(node.func.value, (ast.Constant, ast.JoinedStr))
    return False


def test_subprocess_commands_are_argument_lists():
    seen, bad = 0, []
    for p, line, name, c in CALLS:
        if name.startswith("subprocess.") and name.split(".")[-1] in SUBPROCESS:
            seen += 1
            cmd = c.args[0] if c.args else _kw(c, "args")
            if cmd is None or _stringy(cmd):
                bad.append(f"{p}:{line}")
    assert seen >= 3 and not bad, bad


def test_every_torch_load_is_weights_only():
    loads = [(p, line, c) for p, line, name, c in CALLS if name == "torch.load"]
    assert loads
    bad = [f"{p}:{line}" for p, line, c in loads if not _is_true(_kw(c, "weights_only"))]
    assert not bad, f"torch.load without weights_only=True at {bad}"


def test_nothing_asks_for_full_unpickling():
    """weights_only=False (Lightning's save_checkpoint writes with it; nothing may read with it),
    allow_pickle=True, unsafe YAML loaders, joblib/dill."""
    bad = []
    for p, line, name, c in CALLS:
        wo = _kw(c, "weights_only")
        if isinstance(wo, ast.Constant) and wo.value is False and not name.endswith("save_checkpoint"):
            bad.append(f"{p}:{line} {name}(weights_only=False)")
        if _is_true(_kw(c, "allow_pickle")):
            bad.append(f"{p}:{line} {name}(allow_pickle=True)")
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "joblib.load", "dill.load", "dill.loads",
                    "torch.jit.load", "pandas.read_pickle", "pd.read_pickle"):
            bad.append(f"{p}:{line} {name}")
    assert not bad, bad


def test_pickle_only_over_synths_own_pipe():
    used = {(p, name) for p, _, name, _ in CALLS if name.startswith("pickle.")}
    assert used <= PICKLE_ALLOWED, used - PICKLE_ALLOWED
    synth = (PACKAGE / "corpus" / "synth.py").read_text()
    assert "pickle.load(" not in synth  # loads() of bytes read from the helper's stdout, never from a file


def test_torch_default_is_weights_only():
    """Lightning's resume (trainer.fit(ckpt_path=...)) passes weights_only=None: torch's default decides."""
    import os

    import torch

    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 6)
    assert not os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    assert not any("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in s.read_text(encoding="utf-8") for s in SOURCES)


def test_ui_binds_to_loopback_by_default(monkeypatch):
    from modevo import cli
    from modevo.report import ui

    assert cli.build_parser().parse_args(["ui"]).host == "127.0.0.1"
    for func in (ui.serve, ui.start):
        assert inspect.signature(func).parameters["host"].default == "127.0.0.1"
    seen = {}
    monkeypatch.setattr(ui, "serve", lambda runs_dir, tracking_uri, **kw: seen.update(kw))
    assert cli.main(["ui", "--runs-dir", "nowhere"]) == 0
    assert seen["host"] == "127.0.0.1"
    assert "0.0.0.0" not in (PACKAGE.parent / "Makefile").read_text()
