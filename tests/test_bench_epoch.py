"""benchmarks/bench_epoch.py (the GPU check's epoch timing) on a tiny log, on the CPU:
every epoch is run and timed, the first apart, and a device torch cannot see is refused
before any data is read (no timing is asserted: the figures belong to the benchmark)."""

from __future__ import annotations

import pytest
import torch

from bench_support import load_benchmark


@pytest.fixture
def log(tmp_path, planted_csv, monkeypatch):
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))
    return planted_csv


def test_each_model_is_timed_per_epoch(log, capsys):
    bench = load_benchmark("bench_epoch")
    argv = ["--data", str(log), "--models", "sasrec,gnn", "--devices", "cpu", "--epochs", "2"]
    rows = bench.main([*argv, "--set", "dim=16", "--threads", "1"])
    assert set(rows) == {("sasrec", "cpu"), ("gnn", "cpu")}
    assert all(s > 0 for s in rows.values())
    out = capsys.readouterr().out
    assert "command: " in out and "machine: " in out  # every benchmark's header
    assert out.count(" cpu ") >= 2


def test_wrong_requests_are_refused(log):
    bench = load_benchmark("bench_epoch")
    with pytest.raises(SystemExit):
        bench.main(["--data", str(log), "--epochs", "1"])  # the first epoch is set apart
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.main(["--data", str(log), "--devices", "cpu,cuda"])
