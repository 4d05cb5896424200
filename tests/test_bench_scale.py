"""benchmarks/bench_scale.py's machinery on tiny data: every step in its own process,
torchrun included (no timing is asserted: the figures belong to the benchmark)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from bench_support import load_benchmark


def load_script() -> ModuleType:
    return load_benchmark("bench_scale")


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    src = str(Path(__file__).parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", src + ":" + __import__("os").environ.get("PYTHONPATH", ""))
    return tmp_path


@pytest.mark.slow
def test_every_step_on_the_tiny_preset(home: Path) -> None:
    bench = load_script()
    out = home / "scale.md"
    argv = ["--preset", "tiny", "--steps-train", "2", "--procs", "2", "--serve-users", "3"]
    argv += ["--csv-rows", "3000"]
    rows = bench.main([*argv, "--requests", "10", "--concurrency", "2", "--out", str(out)])
    steps = [r.step for r in rows]
    assert steps == [
        "world: generate",
        "load, cached",
        "load + prepare 0.003M-row GroupLens ratings.csv (bench_load), cold",
        "load 0.003M-row GroupLens ratings.csv (bench_load), cached",
        "train sasrec, 1 process",
        "train sasrec, 2 processes",
        "eval, every user",
        "serve + load test",
    ]
    assert all(r.peak_mib > 0 for r in rows)
    assert all("3,000 events" in r.figures for r in rows[2:4])
    assert "2 steps x 64 seq/process" in rows[5].figures
    assert "200 users x" in rows[6].figures and "a synthetic world" in rows[6].figures
    assert "errors 0" in rows[7].figures
    text = out.read_text()
    assert text.startswith("# MovieLens-25M scale")
    assert "· synthetic-tiny" in text and "| step | seconds | peak MiB | figures |" in text
    assert (home / "home" / "bench-scale" / "synthetic-tiny" / "registry" / "sasrec").is_dir()
    # a second run finds the world cached and appends a second section
    again = bench.main(["--preset", "tiny", "--steps", "world", "--out", str(out)])
    assert again == []  # a cached world is not regenerated: no row
    assert out.read_text().count("\n## ") == 2


def write_grouplens(folder: Path) -> None:
    """A small ratings.csv + movies.csv in GroupLens' ml-25m layout."""
    folder.mkdir()
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(1, 31):
        for k in range(8):
            lines.append(f"{u},{(u * 7 + k * 3) % 40 + 1},{1 + (u + k) % 5}.0,{1_000_000 + k}")
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    movies = ["movieId,title,genres"] + [
        f"{i},Title {i} ({1990 + i % 20}),Drama|Comedy" for i in range(1, 41)
    ]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")


@pytest.mark.slow
def test_a_grouplens_folder_is_loaded_cold_then_cached(home: Path) -> None:
    bench = load_script()
    data = home / "ml-25m"
    write_grouplens(data)
    rows = bench.main(["--data", str(data), "--steps", "world,load", "--out", "-"])
    assert [r.step for r in rows] == ["load + prepare, cold", "load, cached"]
    assert all("240 events, 30 users" in r.figures for r in rows)
    cache = home / "home" / "bench-scale" / "ml-25m" / "home" / "datasets"
    assert cache.is_dir() and any(cache.iterdir())


def test_bad_arguments_are_refused(home: Path) -> None:
    bench = load_script()
    with pytest.raises(SystemExit):
        bench.main(["--steps", "world,fly", "--out", "-"])
    with pytest.raises(SystemExit):
        bench.main(["--data", str(home / "missing"), "--out", "-"])
