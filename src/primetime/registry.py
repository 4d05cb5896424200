"""A versioned model registry on disk: register, list, promote, load.

Layout under ``root`` (default ``primetime.paths.models_dir() / "registry"``)::

    <root>/<name>/v1/          a model bundle (Recommender.save) + meta.json
    <root>/<name>/v2/
    <root>/<name>/PROMOTED     the promoted version, e.g. "v2\\n"

Versions are ``v1``, ``v2``, ... in registration order (one more than the
highest existing). A version folder is reserved with ``mkdir`` (atomic, so
two processes never get the same number) and becomes visible only when its
``meta.json`` is written, last, by temp file + ``os.replace``; ``PROMOTED``
is replaced the same way, so a reader sees the old or the new version, never
half a file. ``meta.json`` records name, version, created_at, model class,
dataset name + fingerprint, offline metrics, config, train seconds, notes
and the git commit when available.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from primetime import __version__, paths
from primetime.artifacts import vocab_fingerprint
from primetime.data.dataset import Dataset
from primetime.models import MODELS
from primetime.models.base import Recommender

log = logging.getLogger(__name__)

__all__ = ["META_FILE", "PROMOTED_FILE", "ModelRegistry", "ModelVersion", "default_root"]

META_FILE = "meta.json"
PROMOTED_FILE = "PROMOTED"
_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_root() -> Path:
    """``primetime.paths.models_dir() / "registry"`` (follows ``$PRIMETIME_HOME``)."""
    return paths.models_dir() / "registry"


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version.

    Attributes:
        name: Registry name (the model's ``name`` unless registered under another).
        version: ``"v1"``, ``"v2"``, ...
        path: The version folder (a model bundle).
        created_at: ISO-8601 UTC registration time.
        metrics: Offline metrics given at registration (``{"NDCG@10": 0.1}``).
        promoted: Whether this is the promoted version of ``name``.
        meta: The whole ``meta.json``.
    """

    name: str
    version: str
    path: Path
    created_at: str
    metrics: dict[str, float]
    promoted: bool
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def number(self) -> int:
        """The version as an int (``"v3"`` -> 3)."""
        return _version_number(self.version)


def _version_number(version: str) -> int:
    m = _VERSION.match(version)
    if not m:
        raise ValueError(f"version must look like 'v1', 'v2', ..., got {version!r}")
    return int(m.group(1))


def _as_version(version: str | int) -> str:
    """``2`` or ``"v2"`` -> ``"v2"``; anything else is a ValueError."""
    if isinstance(version, int) and not isinstance(version, bool):
        if version < 1:
            raise ValueError(f"version numbers start at 1, got {version}")
        return f"v{version}"
    if isinstance(version, str):
        _version_number(version)
        return version
    raise ValueError(f"version must be 'v<N>' or an int, got {version!r}")


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _git_commit() -> str | None:
    """The commit of the source tree this package runs from, or None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else None


def _dataset_info(dataset: Dataset | str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``{"name", "fingerprint"}``: a Dataset's fingerprint is sha256 of its manifest."""
    if dataset is None:
        return None
    if isinstance(dataset, Dataset):
        manifest = json.dumps(dataset.manifest, sort_keys=True, default=str)
        return {"name": dataset.name, "fingerprint": hashlib.sha256(manifest.encode()).hexdigest()}
    if isinstance(dataset, str):
        return {"name": dataset, "fingerprint": None}
    if isinstance(dataset, Mapping):
        if "name" not in dataset:
            raise ValueError("dataset mapping needs a 'name' key")
        return {"fingerprint": None, **dict(dataset)}
    raise TypeError(f"dataset must be a Dataset, a name or a mapping, got {type(dataset).__name__}")


class ModelRegistry:
    """Model bundles by name and version, with one promoted version per name.

    Args:
        root: Registry folder (created on first registration); default
            :func:`default_root`.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    # ------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """Registered model names, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            d.name
            for d in self.root.iterdir()
            if d.is_dir() and _NAME.match(d.name) and self._list(d.name)
        )

    def _list(self, name: str) -> list[str]:
        """Complete versions of ``name`` (those with a meta.json), oldest first."""
        d = self.root / name
        if not d.is_dir():
            return []
        found = [p.name for p in d.iterdir() if _VERSION.match(p.name) and (p / META_FILE).exists()]
        return sorted(found, key=_version_number)

    def _require(self, name: str) -> list[str]:
        found = self._list(name)
        if not found:
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"no model {name!r} in the registry {self.root}; registered: {known}")
        return found

    def _promoted_version(self, name: str) -> str | None:
        f = self.root / name / PROMOTED_FILE
        if not f.exists():
            return None
        text = f.read_text(encoding="utf-8").strip()
        return text or None

    def _version(self, name: str, version: str, promoted: str | None) -> ModelVersion:
        path = self.root / name / version
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        return ModelVersion(
            name=name,
            version=version,
            path=path,
            created_at=str(meta.get("created_at", "")),
            metrics={k: float(v) for k, v in (meta.get("metrics") or {}).items()},
            promoted=version == promoted,
            meta=meta,
        )

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Versions of ``name`` (of every name when None), by name then version number.

        Raises:
            KeyError: if ``name`` is given and not registered.
        """
        names = [name] if name is not None else self.names()
        out: list[ModelVersion] = []
        for n in names:
            found = self._require(n)
            promoted = self._promoted_version(n)
            out.extend(self._version(n, v, promoted) for v in found)
        return out

    def get(self, name: str, version: str | int) -> ModelVersion:
        """One version.

        Raises:
            KeyError: for an unknown name or version (the error lists the known ones).
            ValueError: for a malformed version.
        """
        v = _as_version(version)
        found = self._require(name)
        if v not in found:
            raise KeyError(f"model {name!r} has no version {v!r}; versions: {', '.join(found)}")
        return self._version(name, v, self._promoted_version(name))

    def latest(self, name: str) -> ModelVersion:
        """The newest version of ``name`` (KeyError if unknown)."""
        return self.get(name, self._require(name)[-1])

    def promoted(self, name: str) -> ModelVersion | None:
        """The promoted version of ``name``, or None if none is (KeyError if unknown)."""
        found = self._require(name)
        v = self._promoted_version(name)
        if v is None:
            return None
        if v not in found:
            log.warning("%s: PROMOTED names %r, which is not registered; ignored", name, v)
            return None
        return self._version(name, v, v)

    def load(self, name: str, version: str | int | None = None) -> Recommender:
        """Load a model: ``version``, else the promoted one, else the newest.

        Raises:
            KeyError: for an unknown name or version.
            ValueError: if the bundle's model class is not in :data:`primetime.models.MODELS`.
        """
        if version is not None:
            mv = self.get(name, version)
        else:
            mv = self.promoted(name) or self.latest(name)
        model_name = str(mv.meta.get("model", name))
        cls = MODELS.get(model_name)
        if cls is None:
            raise ValueError(
                f"{mv.path} holds a {model_name!r} model, which is not in MODELS "
                f"({', '.join(MODELS)})"
            )
        log.info("loading %s %s from %s", name, mv.version, mv.path)
        return cls.load(mv.path)

    # ------------------------------------------------------------ writing
    def register(
        self,
        model: Recommender,
        *,
        metrics: Mapping[str, float] | None = None,
        dataset: Dataset | str | Mapping[str, Any] | None = None,
        notes: str = "",
        name: str | None = None,
        train_seconds: float | None = None,
    ) -> ModelVersion:
        """Save a fitted model as the next version of ``name`` (default ``model.name``).

        Args:
            model: A fitted Recommender.
            metrics: Offline metrics, e.g. ``result.summary()`` of an evaluation.
            dataset: The training data: a Dataset (name + manifest fingerprint),
                a name, or a mapping with at least ``name``.
            notes: Free text.
            name: Registry name, when not the model's own (e.g. "sasrec-long").
            train_seconds: Fit wall time.

        Raises:
            ValueError: if the model is not fitted, or ``name`` is not a plain folder name.
        """
        if model.items is None:
            raise ValueError(f"model {model.name!r} is not fitted; fit or load it first")
        name = name if name is not None else model.name
        if not _NAME.match(name):
            raise ValueError(f"registry name must match {_NAME.pattern}, got {name!r}")
        cfg = model.config
        config = (
            dataclasses.asdict(cfg)
            if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)
            else {}
        )
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        found = self._all_numbers(name)
        number = max(found, default=0) + 1
        while True:  # mkdir is atomic: a concurrent registration takes the next number
            path = base / f"v{number}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                number += 1
        version = f"v{number}"
        meta: dict[str, Any] = {
            "name": name,
            "version": version,
            "model": model.name,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "created_unix": time.time(),
            "dataset": _dataset_info(dataset),
            "items_fingerprint": vocab_fingerprint(model.items),
            "n_items": len(model.items),
            "metrics": {k: float(v) for k, v in (metrics or {}).items()},
            "config": config,
            "train_seconds": train_seconds,
            "notes": notes,
            "commit": _git_commit(),
            "primetime_version": __version__,
        }
        try:
            model.save(path, meta={"registry": {"name": name, "version": version}})
            _atomic_write(path / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        log.info("registered %s %s at %s", name, version, path)
        return self._version(name, version, self._promoted_version(name))

    def _all_numbers(self, name: str) -> list[int]:
        """Numbers of every version folder, complete or not (numbers are never reused)."""
        d = self.root / name
        return [_version_number(p.name) for p in d.iterdir() if _VERSION.match(p.name)]

    def promote(self, name: str, version: str | int) -> ModelVersion:
        """Make ``version`` the one :meth:`load` returns by default (atomic file replace).

        Raises:
            KeyError: for an unknown name or version.
            ValueError: for a malformed version.
        """
        mv = self.get(name, version)
        _atomic_write(self.root / name / PROMOTED_FILE, mv.version + "\n")
        log.info("promoted %s %s", name, mv.version)
        return dataclasses.replace(mv, promoted=True)
