"""The stamp of a report: the facts every figure and table must state.

Every report carries a *stamp* (EVALUATION.md, "Reporting"): data set, task,
protocol, split sizes, seed, the code's git commit (``-dirty`` when the work
tree has uncommitted changes), the time and the command line that produced
it.

The command is stored as a user would type it (:func:`command_line`):
``primetime <args>``, never a path of the machine that made the report.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

__all__ = ["command_line", "git_commit", "make_stamp"]

#: Names the ``primetime`` console script runs under (``pip`` adds ``.exe`` on Windows).
_CONSOLE_SCRIPTS = frozenset({"primetime", "primetime.exe", "primetime-script.py"})
#: Tails of ``argv[0]`` under ``python -m primetime.cli`` (Python puts the module's path there).
_MODULE_MAINS = frozenset({("primetime", "cli.py"), ("primetime", "__main__.py")})


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


def command_line(
    argv: Sequence[str] | None = None,
    *,
    cwd: str | PurePath | None = None,
    home: str | PurePath | None = None,
) -> str:
    """The command as a user would type it, without this machine's paths.

    ``argv[0]`` of the console script (``/…/.venv/bin/primetime``) or of
    ``python -m primetime.cli`` (``/…/primetime/cli.py``) becomes ``primetime``;
    another program keeps its name (a ``.py`` script is shortened like an
    argument). An argument, or the value of ``--option=value``, that is an
    absolute path under ``cwd`` becomes relative to it (``cwd`` itself: ``.``);
    one under the home directory starts with ``~``. Arguments are quoted for a
    POSIX shell (a ``~`` is left bare, as it is typed).

    Args:
        argv: The command line (default ``sys.argv``).
        cwd: The folder it was run in (default: the current directory).
        home: The home directory (default ``Path.home()``; none when unknown).
    """
    args = [str(a) for a in (sys.argv if argv is None else argv)]
    if not args:
        return ""
    here = PurePath(os.getcwd() if cwd is None else cwd)
    if home is None:
        try:
            home = Path.home()
        except (RuntimeError, KeyError):  # no HOME and no passwd entry
            home = None
    roots = [(PurePath(b), p) for b, p in ((here, ""), (home, "~")) if b is not None]
    roots = [(b, p) for b, p in roots if b != PurePath(b.anchor)]  # "/" would shorten all

    def short(arg: str) -> str:
        path = PurePath(arg)
        if not path.is_absolute():
            return arg
        for base, prefix in roots:  # the current directory first: usually under home
            if path == base:
                return prefix or "."
            if path.is_relative_to(base):
                rel = str(path.relative_to(base))
                return f"{prefix}{os.sep}{rel}" if prefix else rel
        return arg

    def short_arg(arg: str) -> str:
        if arg.startswith("-") and "=" in arg:
            opt, value = arg.split("=", 1)
            return f"{opt}={short(value)}"
        return short(arg)

    prog = PurePath(args[0])
    if prog.name in _CONSOLE_SCRIPTS or tuple(prog.parts[-2:]) in _MODULE_MAINS:
        first = "primetime"
    elif prog.is_absolute() and prog.suffix != ".py":
        first = prog.name  # a program found on PATH is typed by its name
    else:
        first = short(args[0])
    return " ".join(_quote(a) for a in [first, *(short_arg(a) for a in args[1:])])


def _quote(arg: str) -> str:
    """``shlex.quote``, but a ``~`` alone does not make an argument need quotes."""
    bare = arg.replace("~", "_")
    return arg if arg and shlex.quote(bare) == bare else shlex.quote(arg)


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
        command: The command line: a string is kept as given, an argv is
            written as a user would type it (:func:`command_line`); default
            ``sys.argv``.
        extra: More key -> value pairs to record.

    Returns:
        A JSON-serialisable dict with ``commit`` and a UTC ``timestamp`` added.
    """
    if command is None:
        command = list(sys.argv)
    cmd = command if isinstance(command, str) else command_line([str(c) for c in command])
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
