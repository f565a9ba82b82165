"""Two heavy modevo jobs on one machine: the second says so in one line and goes on."""

import logging
import os
import subprocess
import sys

import pytest

from modevo.cli import main
from modevo.jobs import PARENT_ENV, heavy_job, lock_path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="advisory file locks are POSIX")

HOLD = "import sys; from modevo.jobs import heavy_job\nwith heavy_job('modevo train --view phone'):\n" \
       "    print('held', flush=True); sys.stdin.read()\n"


@pytest.fixture
def other_job():
    """A second process holding the lock until the test closes its stdin."""
    p = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={k: v for k, v in os.environ.items() if k != PARENT_ENV})
    assert p.stdout.readline().strip() == "held"
    yield p
    p.stdin.close()
    p.wait(timeout=30)


def _warnings(caplog, command="modevo eval --all"):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="modevo"), heavy_job(command):
        pass
    return [r.getMessage() for r in caplog.records]


def test_a_second_job_warns_naming_the_first(other_job, caplog, monkeypatch):
    (msg,) = _warnings(caplog)
    assert f"pid {other_job.pid}: modevo train --view phone" in msg and "another modevo job" in msg
    monkeypatch.setenv(PARENT_ENV, "1")  # a step that `modevo factor` runs does not warn about its parent
    assert _warnings(caplog) == []


def test_the_lock_goes_with_the_process(other_job, caplog):
    other_job.stdin.close()
    other_job.wait(timeout=30)
    assert _warnings(caplog) == []
    assert lock_path().read_text() == ""  # released and emptied on the way out


def test_one_job_alone_writes_who_holds_the_lock(caplog):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="modevo"), heavy_job("modevo train x"):
        assert lock_path().read_text() == f"pid {os.getpid()}: modevo train x"
    assert caplog.records == []


def test_cli_warns_once_then_runs_the_command(other_job, capsys):
    assert main(["eval"]) == 2  # a heavy command with a user mistake: the warning, then the one error line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "another modevo job" in err[0] and err[1].startswith("modevo: error: name what to score")
    assert main(["plan", "A", "--scale", "nosuch"]) == 2  # not heavy: no warning
    assert "another modevo job" not in capsys.readouterr().err


def test_a_second_job_is_told_and_takes_half_the_cores(other_job, monkeypatch):
    from modevo.machine import choose_threads, usable_cores

    with heavy_job("modevo eval --all") as shared:
        assert shared is True
    with heavy_job("modevo eval --all") as shared:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("MODEVO_THREADS", raising=False)
        assert choose_threads(shared)[0] == max(1, usable_cores() // 2)
    other_job.stdin.close()
    other_job.wait(timeout=30)
    with heavy_job("modevo eval --all") as shared:
        assert shared is False


def test_ranks_after_the_first_of_a_launch_do_not_warn(other_job, caplog, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _warnings(caplog) == []
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert _warnings(caplog) != []
