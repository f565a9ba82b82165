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
