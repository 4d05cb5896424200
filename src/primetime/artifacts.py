"""Model bundles on disk, without pickle.

A bundle is a folder holding ``bundle.json`` (model name, config, item-catalog
fingerprint, versions, extra metadata), ``arrays.npz`` (weights, loaded with
``allow_pickle=False``) and the vocabularies as text files. Loading checks
the format version and, when asked, that the bundle was trained on the same
catalog as the data it is used with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primetime import __version__
from primetime.data.vocab import Vocabulary

BUNDLE_FORMAT = 1
_VOCAB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def vocab_fingerprint(vocab: Vocabulary) -> str:
    """sha256 over the ids in index order: equal iff the index spaces are equal."""
    h = hashlib.sha256()
    for x in vocab.ids():
        h.update(x.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """What :func:`load_bundle` returns."""

    model: str
    config: dict[str, Any]
    arrays: dict[str, np.ndarray]
    items: Vocabulary
    users: Vocabulary | None
    meta: dict[str, Any]
    vocabs: dict[str, Vocabulary] = dataclasses.field(default_factory=dict)
    members: dict[str, str] = dataclasses.field(default_factory=dict)


def save_bundle(
    directory: str | Path,
    *,
    model: str,
    config: Any,
    arrays: dict[str, np.ndarray],
    items: Vocabulary,
    users: Vocabulary | None = None,
    vocabs: dict[str, Vocabulary] | None = None,
    members: dict[str, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle. ``config`` is a dataclass instance (stored as JSON).

    Args:
        vocabs: Further named vocabularies (entities, relations …), each written
            as ``vocab-<name>.txt`` and fingerprinted in ``bundle.json``.
        members: Role -> registry key (``"sasrec:v3"``) of models this one
            builds on (an ensemble's members); resolved by the registry.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    is_instance = dataclasses.is_dataclass(config) and not isinstance(config, type)
    cfg = dataclasses.asdict(config) if is_instance else dict(config)
    for key, arr in arrays.items():
        if not isinstance(arr, np.ndarray) or arr.dtype == object:
            raise TypeError(f"bundle array {key!r} must be a numeric numpy array")
    np.savez(d / "arrays.npz", **arrays)  # type: ignore[arg-type]  # numpy stub: kwargs are arrays
    (d / "items.txt").write_text("\n".join(items.ids()) + "\n")
    if users is not None:
        (d / "users.txt").write_text("\n".join(users.ids()) + "\n")
    vocabs = vocabs or {}
    for name, vocab in vocabs.items():
        if not _VOCAB_NAME.match(name):
            raise ValueError(f"vocabulary name must match {_VOCAB_NAME.pattern}, got {name!r}")
        (d / f"vocab-{name}.txt").write_text("\n".join(vocab.ids()) + "\n")
    for role, key in (members or {}).items():
        if not isinstance(key, str) or ":" not in key:
            raise ValueError(f"member {role!r} must be a registry key 'name:vN', got {key!r}")
    info = {
        "format": BUNDLE_FORMAT,
        "model": model,
        "config": cfg,
        "items_fingerprint": vocab_fingerprint(items),
        "n_items": len(items),
        "n_users": len(users) if users is not None else None,
        "vocabs": {name: vocab_fingerprint(v) for name, v in vocabs.items()},
        "members": dict(members or {}),
        "primetime_version": __version__,
        "saved_at": int(time.time()),
        "meta": meta or {},
    }
    (d / "bundle.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return d


def _read_ids(path: Path) -> list[str]:
    text = path.read_text()
    return text.split("\n")[:-1] if text else []


def load_bundle(directory: str | Path, *, expect_model: str | None = None) -> Bundle:
    """Read a bundle written by :func:`save_bundle`.

    Raises:
        FileNotFoundError: if the folder or a part of it is missing.
        ValueError: if the format or model name does not match.
    """
    d = Path(directory)
    if not (d / "bundle.json").exists():
        raise FileNotFoundError(f"{d} is not a model bundle (no bundle.json); train a model first")
    info = json.loads((d / "bundle.json").read_text())
    if info.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{d}: bundle format {info.get('format')} is not {BUNDLE_FORMAT}")
    if expect_model is not None and info["model"] != expect_model:
        raise ValueError(f"{d} holds a {info['model']!r} model, not {expect_model!r}")
    with np.load(d / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    items = Vocabulary(_read_ids(d / "items.txt"), name="item")
    users = (
        Vocabulary(_read_ids(d / "users.txt"), name="user") if (d / "users.txt").exists() else None
    )
    if vocab_fingerprint(items) != info["items_fingerprint"]:
        raise ValueError(f"{d}: items.txt does not match the fingerprint in bundle.json")
    vocabs = {}
    for name, fingerprint in (info.get("vocabs") or {}).items():
        path = d / f"vocab-{name}.txt"
        if not path.exists():
            raise FileNotFoundError(
                f"{d}: bundle.json names vocabulary {name!r}, {path.name} is missing"
            )
        vocab = Vocabulary(_read_ids(path), name=name)
        if vocab_fingerprint(vocab) != fingerprint:
            raise ValueError(f"{d}: {path.name} does not match the fingerprint in bundle.json")
        vocabs[name] = vocab
    return Bundle(
        model=info["model"],
        config=info["config"],
        arrays=arrays,
        items=items,
        users=users,
        meta=info.get("meta", {}),
        vocabs=vocabs,
        members=dict(info.get("members") or {}),
    )


def check_same_catalog(bundle_items: Vocabulary, items: Vocabulary, *, where: str) -> None:
    """Raise ``ValueError`` if a model trained on ``bundle_items`` is used with ``items``."""
    if bundle_items is items or bundle_items == items:
        return
    a, b = set(bundle_items.ids()), set(items.ids())
    raise ValueError(
        f"{where} was trained on a different catalog ({len(bundle_items)} items) than the data "
        f"given ({len(items)} items; {len(a - b)} only in the model, "
        f"{len(b - a)} only in the data). "
        "Retrain the model on this data set."
    )
