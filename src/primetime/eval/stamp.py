"""The stamp of a report: the facts every figure and table must state.

Every report carries a *stamp* (EVALUATION.md, "Reporting"): data set, task,
protocol, split sizes, seed, the code's git commit (``-dirty`` when the work
tree has uncommitted changes), the time and the command line that produced
it.
"""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "make_stamp"]


def git_commit(cwd: str | Path | None = None) -> str:
    """Short commit of the code, ``+ "-dirty"`` with uncommitted changes, else ``"unknown"``.

    Args:
        cwd: A folder inside the repository (default: this package's folder).
    """
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return f"{head}-dirty" if status else head


def make_stamp(
    *,
    dataset: str,
    task: str,
    protocol: str,
    split_sizes: Mapping[str, int] | None = None,
    seed: int | None = None,
    command: str | Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The facts every figure and table must state.

    Args:
        dataset: Data set name ("ml-100k").
        task: "A: next-item top-N" / "B: rating prediction" or similar.
        protocol: Split protocol ("loo", "ratio-90/10-seed42", "files:...").
        split_sizes: Rows per part, e.g. ``Split.sizes()``.
        seed: Seed of the run.
        command: The command line (string or argv); default ``sys.argv``.
        extra: More key -> value pairs to record.

    Returns:
        A JSON-serialisable dict with ``commit`` and a UTC ``timestamp`` added.
    """
    if command is None:
        command = list(sys.argv)
    cmd = command if isinstance(command, str) else shlex.join(str(c) for c in command)
    stamp: dict[str, Any] = {
        "dataset": dataset,
        "task": task,
        "protocol": protocol,
        "split_sizes": dict(split_sizes) if split_sizes is not None else None,
        "seed": seed,
        "commit": git_commit(),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": cmd,
    }
    if extra:
        stamp.update(dict(extra))
    return stamp
