"""The stamp's command line: as a user would type it, with no machine paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from primetime.eval import make_stamp
from primetime.eval.stamp import command_line

HOME = "/home/ada"
CWD = "/home/ada/proj"


def test_console_script_becomes_primetime_and_paths_are_shortened() -> None:
    argv = [
        f"{CWD}/.venv/bin/primetime",
        "evaluate",
        "--data",
        f"{CWD}/data/ratings.csv",
        f"--out={HOME}/reports",
        f"{HOME}/runs/run 1",
        "/srv/shared/catalog.csv",
        "relative/path.csv",
    ]
    assert command_line(argv, cwd=CWD, home=HOME) == (
        "primetime evaluate --data data/ratings.csv --out=~/reports "
        "'~/runs/run 1' /srv/shared/catalog.csv relative/path.csv"
    )


def test_python_dash_m_becomes_primetime() -> None:
    argv = ["/opt/site-packages/primetime/cli.py", "train", "--data", CWD]
    assert command_line(argv, cwd=CWD, home=HOME) == "primetime train --data ."


def test_other_programs_keep_their_name() -> None:
    assert command_line(["/usr/bin/pytest", "-q", HOME], cwd="/tmp", home=HOME) == "pytest -q ~"
    assert (
        command_line([f"{CWD}/benchmarks/bench_eval.py", "--n", "3"], cwd=CWD, home=HOME)
        == "benchmarks/bench_eval.py --n 3"
    )


def test_root_directory_shortens_nothing() -> None:
    assert command_line(["primetime", "evaluate", "/data/x.csv"], cwd="/", home="/") == (
        "primetime evaluate /data/x.csv"
    )


def test_make_stamp_writes_no_machine_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default command (``sys.argv``) of a run through the console script."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        [str(tmp_path / ".venv" / "bin" / "primetime"), "evaluate", str(tmp_path / "d.csv")],
    )
    stamp = make_stamp(dataset="tiny", task="A", protocol="loo")
    assert stamp["command"] == "primetime evaluate d.csv"
    assert str(tmp_path) not in stamp["command"]
    # a command given as a string is kept as given
    assert make_stamp(dataset="t", task="A", protocol="loo", command="x /y")["command"] == "x /y"
