"""Reference rankers for new titles (EVALUATION.md Task C): ``random`` and ``genre-profile``.

On the cold-items split the titles to rank were never seen in train, so every
collaborative model (popularity, item-KNN, factorisation, sequences) has nothing
to go on. These two set the bar a content, text or graph model must clear:

- ``random``: seeded random scores, the floor (its expectation is the chance level
  of the candidate set).
- ``genre-profile``: the cosine between the user's genre profile (the genres of the
  titles in their history) and each title's genres, from the catalog alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from primetime.artifacts import Bundle
from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.models.base import (
    FitOptions,
    FitReport,
    Recommender,
    history_matrix,
    mask_padding,
)
from primetime.models.titlecontext import DAY, release_days
from primetime.types import UserContext

log = logging.getLogger(__name__)

#: Scale of the fixed, seeded tie-break added to genre-profile scores: far below any
#: difference of two distinct cosines of genre vectors, so it only orders ties.
TIE_BREAK = 1e-5


@dataclass(frozen=True)
class RandomConfig:
    """Attributes:
    seed: Scores of user ``u`` come from ``numpy.random.default_rng([seed, u])``
        (a user the model has not seen counts as user 0), so they do not depend
        on batching or call order.
    """

    seed: int = 0

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


class RandomRecommender(Recommender):
    """Uniform random scores, seeded per user: the floor of every ranking table."""

    name = "random"
    config_class = RandomConfig

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        return FitReport(notes={"seed": self.config.seed})

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.items is not None
        out = np.empty((len(contexts), self.items.size), dtype=np.float32)
        for b, c in enumerate(contexts):
            rng = np.random.default_rng([self.config.seed, c.user_idx or 0])
            out[b] = rng.random(self.items.size, dtype=np.float32)
        return mask_padding(out)


@dataclass(frozen=True)
class GenreProfileConfig:
    """Attributes:
    seed: Seed of the fixed tie-break order of titles (titles with the same genres
        score the same cosine; ties are broken by one seeded random order, the same
        for every user, instead of by item index).
    """

    seed: int = 0

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


class GenreProfileRecommender(Recommender):
    """Cosine between a user's genre profile and each title's genre vector.

    A title's genre vector is its multi-hot genres from ``side.catalog``, scaled to
    unit length (a title with five genres weighs as much as one with one). A user's
    profile is the sum of the vectors of the distinct titles in their history; a
    user without history (or whose history has no genres) gets the genre profile of
    all train events. Titles without genres score 0. Needs no interaction with a
    title to score it, hence a fair reference on new titles.
    """

    name = "genre-profile"
    config_class = GenreProfileConfig

    def __init__(self, config: GenreProfileConfig | None = None) -> None:
        super().__init__(config)
        self.genres: np.ndarray | None = None  # (V, G) unit rows, row 0 zero
        self.fallback: np.ndarray | None = None  # (G,) unit profile of all train events
        self.tie_break: np.ndarray | None = None  # (V,) in [0, TIE_BREAK)

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        size = train.items.size
        if side.catalog is not None:
            gm, names = side.catalog.genre_matrix()  # (V, G)
        else:
            gm, names = np.zeros((size, 0), dtype=np.float32), []
        if gm.shape[1] == 0:
            log.warning("%s: no genres in the side data; every title scores 0", self.name)
            gm = np.zeros((size, 1), dtype=np.float32)
        norms = np.linalg.norm(gm, axis=1, keepdims=True)
        self.genres = (gm / np.maximum(norms, 1e-12)).astype(np.float32)
        self.fallback = _unit(self.genres[train.item_idx].sum(axis=0))
        rng = np.random.default_rng(self.config.seed)
        self.tie_break = (rng.random(size) * TIE_BREAK).astype(np.float32)
        with_genres = int((norms[1:] > 0).sum())
        return FitReport(notes={"genres": len(names), "titles_with_genres": with_genres})

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.genres is not None and self.fallback is not None
        assert self.tie_break is not None
        hist = history_matrix(contexts, self.genres.shape[0])  # (B, V) binary
        profile = np.asarray(hist @ self.genres, dtype=np.float32)  # (B, G)
        norm = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.where(norm > 0, profile / np.maximum(norm, 1e-12), self.fallback[None, :])
        scores = profile @ self.genres.T + self.tie_break[None, :]  # (B, V) cosine
        return mask_padding(scores.astype(np.float32))

    def _extend(self, items: Vocabulary, side: SideData, n_old: int) -> bool:
        """A new title's unit genre vector over the genres learned (a genre the
        training catalog did not have is left out) and a seeded tie-break."""
        assert self.genres is not None and self.tie_break is not None
        if side.catalog is None:
            return False
        hot = new_genre_rows(side.catalog, n_old)
        if hot is None or (hot.shape[1] or 1) != self.genres.shape[1]:
            return False
        hot = hot if hot.shape[1] else np.zeros((hot.shape[0], 1), np.float32)
        norms = np.linalg.norm(hot, axis=1, keepdims=True)
        rng = np.random.default_rng([self.config.seed, n_old])
        tie = (rng.random(len(hot)) * TIE_BREAK).astype(np.float32)
        self.genres = np.concatenate([self.genres, hot / np.maximum(norms, 1e-12)]).astype(
            np.float32
        )
        self.tie_break = np.concatenate([self.tie_break, tie])
        return True

    def _state(self) -> dict[str, np.ndarray]:
        assert self.genres is not None and self.fallback is not None
        assert self.tie_break is not None
        return {"genres": self.genres, "fallback": self.fallback, "tie_break": self.tie_break}

    def _restore(self, bundle: Bundle) -> None:
        self.genres = bundle.arrays["genres"]
        self.fallback = bundle.arrays["fallback"]
        self.tie_break = bundle.arrays["tie_break"]


class GenreReleasedRecommender(GenreProfileRecommender):
    """``genre-profile`` among the titles out at the request: a title whose release day
    is after the context's ``now`` scores below every title that is out (its cosine
    minus 2); an unknown release day or request time keeps the title's cosine.

    A stronger reference than the genre profile where new titles come out over the
    test period (the synthetic worlds: at a given request many of the new titles are
    not out yet, and the service never serves those, :mod:`primetime.pipeline`). A
    model that reads release dates against the request time (the content head's
    request-time terms, :mod:`primetime.models.titlecontext`) gains that much over the
    genre profile from the date alone; this row shows how much.
    """

    name = "genre-released"

    def __init__(self, config: GenreProfileConfig | None = None) -> None:
        super().__init__(config)
        self.release: np.ndarray | None = None  # (V,) release day, NaN unknown

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        report = super()._fit(train, valid=valid, side=side, options=options)
        self.release = release_days(side, 0, train.items.size)
        report.notes["titles_with_release_day"] = int(np.isfinite(self.release).sum())
        return report

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.release is not None
        scores = super()._score(contexts)
        now = np.array([np.nan if c.now is None else c.now / DAY for c in contexts])
        with np.errstate(invalid="ignore"):
            later = self.release[None, :] > now[:, None]  # (B, V) False where NaN
        scores[later] -= 2.0
        return scores

    def _extend(self, items: Vocabulary, side: SideData, n_old: int) -> bool:
        """As ``genre-profile``, and the new titles' release days."""
        assert self.release is not None
        if not super()._extend(items, side, n_old):
            return False
        self.release = np.concatenate([self.release, release_days(side, n_old, items.size)])
        return True

    def _state(self) -> dict[str, np.ndarray]:
        assert self.release is not None
        return {**super()._state(), "release": self.release}

    def _restore(self, bundle: Bundle) -> None:
        super()._restore(bundle)
        self.release = bundle.arrays["release"]


def new_genre_rows(catalog: Catalog, n_old: int) -> np.ndarray | None:
    """Multi-hot genres (n, G) of the catalog's titles from item_idx ``n_old`` on, over
    the sorted genres of the titles before them (the columns of ``genre_matrix`` at
    training time); genres the older titles never had are left out. None when the
    catalog has fewer than ``n_old - 1`` titles."""
    frame = catalog.frame
    if frame.height < n_old - 1:
        return None
    genres = frame["genres"].to_list()
    names = sorted({g for gs in genres[: n_old - 1] for g in gs or ()})
    col = {g: j for j, g in enumerate(names)}
    new = genres[n_old - 1 :]
    out = np.zeros((len(new), len(names)), dtype=np.float32)
    for k, gs in enumerate(new):
        for g in gs or ():
            if g in col:
                out[k, col[g]] = 1.0
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)
