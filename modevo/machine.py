"""What a number was measured on: one description shared by step timings, reports and benchmarks."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo where there is one (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


THREADS_ENV = "MODEVO_THREADS"  # the thread count a heavy command uses, when the user sets one
# set_threads exports OMP_NUM_THREADS for libraries; this marks the value as modevo's own guess, which a child
# step must not take for the user's setting: a campaign that started beside another job (half the cores)
# would otherwise hand its one thread to every training it runs for hours after that job ended
CHOSEN_ENV = "MODEVO_THREADS_CHOSEN"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_threads(shared: bool = False) -> tuple[int, str]:
    """(threads, why) for a heavy command: MODEVO_THREADS, else OMP_NUM_THREADS, else every usable core;
    half of them (at least one) when another modevo job already runs here. Oversubscribed OpenMP threads
    spin-wait for each other: on a loaded 2-core machine two threads per process made small operations
    50-100x slower than one (ENVIRONMENT.md), so the count is set, never left to the library."""
    inherited_guess = CHOSEN_ENV in os.environ and os.environ[CHOSEN_ENV] == os.environ.get("OMP_NUM_THREADS")
    for env in (THREADS_ENV,) + (() if inherited_guess else ("OMP_NUM_THREADS",)):
        value = os.environ.get(env, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value), f"{env}={value}"
    cores = usable_cores()
    ranks = os.environ.get("LOCAL_WORLD_SIZE", "1")
    if ranks.isdigit() and int(ranks) > 1:  # torchrun/srun ranks on one machine share its cores
        return max(1, cores // int(ranks)), f"{cores} usable cores shared by {ranks} local ranks"
    if shared:
        return max(1, cores // 2), f"half of {cores} usable cores: another modevo job runs here"
    return cores, f"{cores} usable cores"


def set_threads(shared: bool = False) -> tuple[int, str]:
    """Fix the intra-op thread count of this process and its children (torch, OpenMP, MKL) before the
    heavy work starts; torch's inter-op pool gets one thread (modevo runs one graph at a time)."""
    import sys

    n, why = choose_threads(shared)
    for env in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[env] = str(n)
    if why.startswith(THREADS_ENV) or why.startswith("OMP_NUM_THREADS"):
        os.environ.pop(CHOSEN_ENV, None)  # the user's count: children keep it
    else:
        os.environ[CHOSEN_ENV] = str(n)
    if "torch" in sys.modules:  # imported already (in-process callers): the variables came too late
        import torch

        torch.set_num_threads(n)
    return n, why


def describe(with_torch: bool = True) -> dict:
    """Host, CPU, cores and (unless with_torch=False, for callers that must stay light) torch and GPU."""
    facts = {"host": platform.node(), "platform": platform.platform(), "processor": cpu_model(),
             "cpus": os.cpu_count(), "python": platform.python_version()}
    if with_torch:
        import torch

        facts.update(torch=torch.__version__, threads=torch.get_num_threads(),
                     cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    return facts


def summary() -> str:
    """One line for a benchmark's header: 'CPU, N cores, torch V, T threads, GPU'."""
    m = describe()
    return (f"{m['processor']}, {m['cpus']} cores, torch {m['torch']}, {m['threads']} threads, "
            f"{m['cuda'] or 'no GPU'}")
