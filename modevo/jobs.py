"""A one-line warning when two heavy modevo jobs share a machine.

Training, scoring and unit encoding each use every core, so two of them at once run far slower than one
after the other (measured here: unit encoding went from 17 to 236 s per shard with a scoring job beside it
on 2 cores, ~14×). A heavy command takes an advisory lock on a file in the temp folder (released by the OS
when the process ends, so a crash leaves nothing stale); a second one finds it held, says so in one line
and goes on: on a large machine two jobs may be what the user wants. `modevo factor` marks its own child
steps (MODEVO_PARENT_JOB) so they do not warn about it.

The warning is for two jobs that really run at once. So the lock is a POSIX record lock (fcntl.lockf), which
belongs to the process that took it: a forked child (a data loader worker, a datasets map worker, a unit
encoding worker) does not inherit it, and one left behind by a killed job cannot hold it after its parent
is gone, as it could with flock, whose lock goes with the open file into every fork. And a holder that is
an ancestor of this process is waiting for it, not running beside it: no warning then either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator

log = logging.getLogger("modevo")

PARENT_ENV = "MODEVO_PARENT_JOB"  # set by `modevo factor` for the steps it runs
LOCK_DIR_ENV = "MODEVO_LOCK_DIR"  # where the lock lives (tests point it at a temporary folder)


def lock_path() -> Path:
    folder = Path(os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir())
    return folder / f"modevo-job-{os.getuid() if hasattr(os, 'getuid') else 'user'}.lock"


def _holder_pid(text: str) -> int | None:
    """The pid in the lock file's 'pid N: command' line."""
    head = text.split(":", 1)[0].split()
    return int(head[1]) if len(head) == 2 and head[0] == "pid" and head[1].isdigit() else None


def _ancestors(pid: int | None = None) -> set[int]:
    """This process's parent, its parent's parent, ... (Linux /proc; empty elsewhere)."""
    out, pid = set(), os.getpid() if pid is None else pid
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rfind(")") + 2:].split()[1])  # state ppid ...
        out.add(pid)
    return out


@contextlib.contextmanager
def heavy_job(command: str) -> Iterator[bool]:
    """Hold the machine's job lock while the block runs; warn once if another modevo job holds it. Yields
    whether another job was found running (the caller then takes fewer threads)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no advisory locks, no warning
        yield False
        return
    if os.environ.get(PARENT_ENV) or os.environ.get("LOCAL_RANK", "0") not in ("", "0"):
        yield False  # a step of `modevo factor`, or a rank other than the first of a torchrun/srun launch
        return
    path = lock_path()
    try:
        f = open(path, "a+")
    except OSError:  # an unwritable temp folder must not stop the job
        yield False
        return
    with f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            if _holder_pid(holder) in _ancestors():  # the job that started this one waits for it
                yield False
                return
            log.warning(f"another modevo job is running on this machine ({holder}); both share its "
                        f"{os.cpu_count()} cores, so each will run much slower than alone. Going on")
            yield True
            return
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}: {command}")
        f.flush()
        try:
            yield False
        finally:
            f.truncate(0)
            f.flush()
            fcntl.lockf(f, fcntl.LOCK_UN)
