"""Where Primetime keeps downloaded files, prepared datasets and trained models."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Root of Primetime's working files: ``$PRIMETIME_HOME``, else ``./.primetime``."""
    return Path(os.environ.get("PRIMETIME_HOME", ".primetime")).expanduser()


def downloads_dir() -> Path:
    """Downloaded archives (the recbole wheel), checked by sha256."""
    return home() / "downloads"


def datasets_dir() -> Path:
    """Prepared datasets, one folder each (Parquet + manifest.json)."""
    return home() / "datasets"


def models_dir() -> Path:
    """Trained model bundles, ``models/<name>/``."""
    return home() / "models"


def reports_dir() -> Path:
    return home() / "reports"
