"""The machine a figure was measured on, for reports: its CPU model and RAM.

Timings compare only on one kind of machine: the project's 2-core VMs come as AMD
EPYC or Intel Xeon, and the same work moves by 15-35% between them and between runs
(README, "The staged suite")."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown CPU"


def ram_gib() -> float | None:
    """Total RAM in GiB (``/proc/meminfo``), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        return None
    return kb / 2**20


def describe() -> str:
    """``"<cpu>, <n> CPUs, <ram> GiB RAM"``: the machine line of reports."""
    ram = ram_gib()
    mem = "RAM unknown" if ram is None else f"{ram:.1f} GiB RAM"
    return f"{cpu_model()}, {os.cpu_count()} CPUs, {mem}"
