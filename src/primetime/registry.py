"""A versioned model registry on disk: register, list, promote, load.

The one store of trained models: ``train``, ``benchmark --register``,
``models register``, ``serve``, ``recommend``, ``evaluate`` and the web admin
all read and write it. Layout under ``root`` (default
``primetime.paths.models_dir()``, i.e. ``$PRIMETIME_HOME/models``)::

    <root>/<name>/v1/          a model bundle (Recommender.save) + meta.json
    <root>/<name>/v2/
    <root>/<name>/PROMOTED     the promoted version, e.g. "v2\\n"

Older layouts are migrated when a registry is opened, each move logged: an
unversioned bundle ``<root>/<name>/bundle.json`` (what ``train`` wrote before)
becomes the next version of ``<name>``, and the former separate registry
``<root>/registry/<name>/vN`` moves up, its promoted version still promoted.

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

import contextlib
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
from primetime.artifacts import Bundle, load_bundle, vocab_fingerprint
from primetime.data.dataset import Dataset
from primetime.models import MODELS
from primetime.models.base import Recommender

log = logging.getLogger(__name__)

__all__ = [
    "META_FILE",
    "PROMOTED_FILE",
    "ModelRegistry",
    "ModelVersion",
    "default_root",
    "migrate_legacy",
    "parse_key",
]

META_FILE = "meta.json"
PROMOTED_FILE = "PROMOTED"
_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Facts of a version that describe its figures, not the data: not handed to members.
_OWNER_FIGURES = frozenset({"valid_metrics", "tuning_on_valid", "test_metrics_of"})
#: Folder names under the root that are not model names (the former registry).
_RESERVED = frozenset({"registry"})


def default_root() -> Path:
    """``primetime.paths.models_dir()`` (follows ``$PRIMETIME_HOME``)."""
    return paths.models_dir()


def parse_key(key: str) -> tuple[str, str]:
    """``"sasrec:v3"`` -> ``("sasrec", "v3")``; how bundles reference member models."""
    name, sep, version = key.partition(":")
    if not sep or not _NAME.match(name):
        raise ValueError(f"a registry key looks like 'sasrec:v3', got {key!r}")
    return name, _as_version(version)


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

    def __init__(self, root: str | Path | None = None, *, migrate: bool = True) -> None:
        self.root = Path(root) if root is not None else default_root()
        if migrate and self.root.is_dir():
            migrate_legacy(self.root)

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
            if d.is_dir() and _NAME.match(d.name) and d.name not in _RESERVED and self._list(d.name)
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
            raise KeyError(
                f"no model {name!r} in the registry {self.root}; registered: {known}. "
                f"Train one with `primetime train {name}`"
            )
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
        model = cls.load(mv.path)
        if model.members:  # an ensemble: its bundle names its members by key
            model.bind_members({role: self.load_key(key) for role, key in model.members.items()})
        return model

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
        extra: Mapping[str, Any] | None = None,
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
            extra: More JSON-able facts for ``meta.json`` (what the version was fit
                on, its validation figures, the spec that made it).

        Raises:
            ValueError: if the model is not fitted, or ``name`` is not a plain folder name.
        """
        if model.items is None:
            raise ValueError(f"model {model.name!r} is not fitted; fit or load it first")
        name = name if name is not None else model.name
        _check_name(name)
        self._register_members(model, dataset=dataset, extra=extra, owner=name)
        cfg = model.config
        config = (
            dataclasses.asdict(cfg)
            if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)
            else {}
        )
        path = self._reserve(name)
        version = path.name
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
            **dict(extra or {}),
        }
        try:
            model.save(
                path, meta={"registry": {"name": name, "version": version}, **dict(extra or {})}
            )
            _atomic_write(path / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        log.info("registered %s %s at %s", name, version, path)
        return self._version(name, version, self._promoted_version(name))

    def _register_members(
        self,
        model: Recommender,
        *,
        dataset: Dataset | str | Mapping[str, Any] | None,
        extra: Mapping[str, Any] | None,
        owner: str,
    ) -> None:
        """Register each member of ``model`` that this registry does not hold yet as a
        version of its own, and record its key in ``model.members`` (an ensemble's
        bundle names its members by key)."""
        for role, member in model.member_models().items():
            key = model.members.get(role)
            if key is not None:
                mname, version = parse_key(key)
                if version in self._list(mname):
                    continue  # already here (a loaded ensemble registered again)
            # what the member was fit on is the owner's; the owner's figures are not its own
            facts = {k: v for k, v in (extra or {}).items() if k not in _OWNER_FIGURES}
            mv = self.register(
                member,
                dataset=dataset,
                notes=f"member {role!r} of {owner}",
                extra={**facts, "member_of": owner},
            )
            model.members[role] = f"{mv.name}:{mv.version}"

    def _reserve(self, name: str) -> Path:
        """Create the next version folder of ``name`` (mkdir is atomic: a concurrent
        registration takes the next number) and return it."""
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        number = max(self._all_numbers(name), default=0) + 1
        while True:
            path = base / f"v{number}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                number += 1

    def adopt(
        self, bundle: str | Path, *, name: str | None = None, notes: str = ""
    ) -> ModelVersion:
        """Register a bundle made elsewhere (``Recommender.save``, another machine's
        registry) as the next version of ``name`` (default: its model's name).

        Raises:
            FileNotFoundError: if ``bundle`` is not a model bundle.
            ValueError: if its model is not in :data:`primetime.models.MODELS`, or the
                bundle fails its own checks (format, fingerprints).
        """
        src = Path(bundle)
        info = load_bundle(src)  # checks format and fingerprints, names what is wrong
        if info.model not in MODELS:
            raise ValueError(
                f"{src} holds a {info.model!r} model, which is not in MODELS ({', '.join(MODELS)})"
            )
        name = name if name is not None else info.model
        _check_name(name)
        path = self._reserve(name)
        try:
            for f in src.iterdir():
                if f.is_file() and f.name not in (META_FILE,):
                    shutil.copy2(f, path / f.name)
            old_meta = {}
            if (src / META_FILE).exists():
                old_meta = json.loads((src / META_FILE).read_text(encoding="utf-8"))
            meta = _meta_from_bundle(info, name, path.name, old_meta)
            meta["notes"] = notes or f"adopted from {src}"
            meta["adopted_from"] = str(src)
            _atomic_write(path / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        log.info("adopted %s as %s %s", src, name, path.name)
        return self._version(name, path.name, self._promoted_version(name))

    def load_key(self, key: str) -> Recommender:
        """Load the model a bundle references as a member, e.g. ``"sasrec:v3"``."""
        name, version = parse_key(key)
        return self.load(name, version)

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


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name in _RESERVED:
        raise ValueError(
            f"registry name must match {_NAME.pattern} and not be one of "
            f"{sorted(_RESERVED)}, got {name!r}"
        )


def _meta_from_bundle(
    info: Bundle, name: str, version: str, old: Mapping[str, Any]
) -> dict[str, Any]:
    """A ``meta.json`` for a bundle that arrives without one of this registry."""
    bmeta = dict(info.meta)
    return {
        **{k: v for k, v in old.items() if k not in ("name", "version")},
        "name": name,
        "version": version,
        "model": info.model,
        "created_at": old.get("created_at") or datetime.now(UTC).isoformat(timespec="seconds"),
        "created_unix": old.get("created_unix") or time.time(),
        "dataset": old.get("dataset") or _dataset_info(bmeta.get("dataset") or bmeta.get("data")),
        "items_fingerprint": vocab_fingerprint(info.items),
        "n_items": len(info.items),
        "metrics": old.get("metrics") or {},
        "config": info.config,
        "train_seconds": old.get("train_seconds", bmeta.get("fit_seconds")),
        "data": old.get("data", bmeta.get("data", bmeta.get("dataset"))),
        "split": old.get("split", bmeta.get("split")),
        "fit_on": old.get("fit_on", bmeta.get("fit_on")),
        "primetime_version": __version__,
    }


def migrate_legacy(root: Path) -> list[str]:
    """Move older layouts under ``root`` into ``<root>/<name>/vN`` (see the module
    docstring); returns one line per move, each also logged. Safe to run again and
    from several processes at once (a folder another process moved is skipped)."""
    moved: list[str] = []
    for flat in sorted(root.glob("*/bundle.json")):
        d = flat.parent
        if d.name in _RESERVED or not _NAME.match(d.name):
            continue
        try:
            info = load_bundle(d)
        except (OSError, ValueError) as e:
            log.warning("%s: an old model folder that cannot be read (%s); left as it is", d, e)
            continue
        reg = ModelRegistry(root, migrate=False)
        path = reg._reserve(d.name)
        for f in list(d.iterdir()):
            if f.is_file() and f.name != PROMOTED_FILE:
                with contextlib.suppress(FileNotFoundError):  # another process moved it
                    os.replace(f, path / f.name)
        meta = _meta_from_bundle(info, d.name, path.name, {})
        meta["notes"] = f"migrated from the unversioned folder {d}"
        _atomic_write(path / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
        moved.append(f"{d}/ -> {path}/")
    old = root / "registry"
    if old.is_dir():
        for d in sorted(p for p in old.iterdir() if p.is_dir() and _NAME.match(p.name)):
            promoted = (
                (d / PROMOTED_FILE).read_text().strip() if (d / PROMOTED_FILE).exists() else ""
            )
            versions = sorted(
                (p for p in d.iterdir() if _VERSION.match(p.name)),
                key=lambda p: _version_number(p.name),
            )
            reg = ModelRegistry(root, migrate=False)
            for v in versions:
                target = reg._reserve(d.name)
                target.rmdir()
                try:
                    os.replace(v, target)
                except FileNotFoundError:
                    continue
                meta_file = target / META_FILE
                if meta_file.exists():
                    meta = json.loads(meta_file.read_text(encoding="utf-8"))
                    meta["version"] = target.name
                    _atomic_write(meta_file, json.dumps(meta, indent=2, default=str) + "\n")
                if v.name == promoted:
                    _atomic_write(root / d.name / PROMOTED_FILE, target.name + "\n")
                moved.append(f"{v}/ -> {target}/")
            shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            old.rmdir()
    for line in moved:
        log.warning("model registry: moved %s", line)
    return moved
