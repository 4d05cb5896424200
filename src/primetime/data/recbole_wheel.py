"""MovieLens-100k from PyPI: the ``recbole==1.2.1`` wheel, fetched through pip and checked.

``fetch_ml100k`` gets MovieLens-100k (with a Freebase knowledge graph) from the
``recbole==1.2.1`` wheel through pip, checks it by sha256, and unpacks the
atomic files (see ``shared/DATA.md``). :func:`load_ml100k` reads them; the
GroupLens layouts a user may already have are read by :mod:`primetime.data.movielens`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from primetime import paths
from primetime.data.dataset import Dataset, sha256_file
from primetime.data.errors import ChecksumError
from primetime.data.recbole_atomic import load_atomic

log = logging.getLogger(__name__)

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
#: Where the wheel keeps MovieLens-100k, and the sha256 of each file there.
ML100K_WHEEL_DIR = "recbole/dataset_example/ml-100k/"
ML100K_ATOMIC_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
    "ml-100k.link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
ML100K_DIRNAME = "ml-100k-atomic"


# ---------------------------------------------------------------------------
# ml-100k from the recbole wheel
# ---------------------------------------------------------------------------
def _atomic_ok(directory: Path) -> bool:
    """Whether ``directory`` holds the five ml-100k files with their known sha256."""
    for fname, sha in ML100K_ATOMIC_SHA256.items():
        f = directory / fname
        if not f.is_file() or sha256_file(f) != sha:
            return False
    return True


def _pip_download(dest: Path) -> None:
    """``pip download --no-deps recbole==1.2.1 -d dest``, as a subprocess."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        RECBOLE_REQUIREMENT,
        "-d",
        str(dest),
    ]
    log.info("downloading %s from the package index: %s", RECBOLE_WHEEL, " ".join(cmd))
    how_to = (
        f"Without network access to the package index, either copy {RECBOLE_WHEEL} "
        f"(sha256 {RECBOLE_WHEEL_SHA256}) into {dest}, or download GroupLens' ml-100k.zip "
        "elsewhere, unzip it and use its folder (the one holding u.data) instead of "
        "'ml-100k' (on the command line: --data PATH)."
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not run pip to fetch MovieLens-100k ({exc}). {how_to}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise RuntimeError(
            f"pip could not download {RECBOLE_REQUIREMENT} (exit {proc.returncode}); is the "
            f"package index reachable?\n{tail}\n{how_to}"
        )


def _verify(path: Path, expected: str, hint: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(path, expected=expected, actual=actual, hint=hint)


def fetch_ml100k(*, cache_dir: str | Path | None = None) -> Path:
    """MovieLens-100k atomic files, downloaded once and verified.

    Runs ``python -m pip download --no-deps recbole==1.2.1`` into the downloads
    folder, checks the wheel's sha256, and unpacks
    ``recbole/dataset_example/ml-100k/*`` next to it, checking each file's sha256.
    Later calls find the verified files and use no network.

    Args:
        cache_dir: Downloads folder; default :func:`primetime.paths.downloads_dir`.

    Returns:
        ``<cache_dir>/ml-100k-atomic``, holding ``ml-100k.inter`` ``.item``
        ``.user`` ``.link`` ``.kg``.

    Raises:
        RuntimeError: pip failed (for example the package index is unreachable);
            the message says how to proceed offline.
        ChecksumError: the wheel or an unpacked file does not have its known
            sha256; the message names the file.
    """
    dl = Path(cache_dir) if cache_dir is not None else paths.downloads_dir()
    out = dl / ML100K_DIRNAME
    if out.is_dir():
        if _atomic_ok(out):
            return out
        log.warning("%s: cached files are incomplete or changed; unpacking them again", out)
    dl.mkdir(parents=True, exist_ok=True)
    wheel = dl / RECBOLE_WHEEL
    if not wheel.is_file():
        _pip_download(dl)
        if not wheel.is_file():
            raise RuntimeError(f"pip reported success but {wheel} is not there")
    _verify(
        wheel,
        RECBOLE_WHEEL_SHA256,
        "The file is damaged or not the published wheel: delete it and run again.",
    )
    tmp = dl / f"{ML100K_DIRNAME}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            for fname, sha in ML100K_ATOMIC_SHA256.items():
                member = ML100K_WHEEL_DIR + fname
                if member not in names:
                    raise RuntimeError(f"{wheel} lacks {member}")
                target = tmp / fname
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                _verify(target, sha, f"{wheel} holds an unexpected {fname}.")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("MovieLens-100k unpacked into %s", out)
    return out


def load_ml100k(*, cache_dir: str | Path | None = None, name: str = "ml-100k") -> Dataset:
    """MovieLens-100k with users, genres and the Freebase knowledge graph.

    Fetches with :func:`fetch_ml100k` (network only on first use) and reads the
    atomic files with :func:`~primetime.data.recbole_atomic.load_atomic`.

    Args:
        cache_dir: Downloads folder; default :func:`primetime.paths.downloads_dir`.
        name: Dataset name.

    Returns:
        Dataset ``name``: 100,000 ratings by 943 users of 1,682 movies, and
        91,631 knowledge-graph triples.
    """
    directory = fetch_ml100k(cache_dir=cache_dir)
    return load_atomic(
        directory,
        "ml-100k",
        dataset_name=name,
        source=f"pypi:{RECBOLE_REQUIREMENT}/{ML100K_WHEEL_DIR.rstrip('/')}",
    )
