"""Learned fusion (``ensemble``): a LambdaMART ranker over the scores of member models.

Hand-set blend weights are replaced by a ranker learned on data the members neither
trained nor selected on. ``fit(train, valid=…)`` runs two cuts:

1. **the earlier cut**: each user's last ``cut_events`` train events are held out
   (the leave-one-out rule applied that many times: a user keeps at least 2); the
   members are fit on the rest (early-stopping on ``valid`` as usual) and score the
   held-out events, each with every event before it as history, asked at its time.
   Those rankings are the fusion's training data: one query per held-out event, the
   candidates are the union of the members' top-``candidates`` titles, the label is 1
   for the held-out title. LightGBM's LambdaMART (``objective="lambdarank"``) learns from
   them; its number of trees is chosen on ``valid`` (histories = train).
2. **the final members**: fit on the whole of ``train`` exactly as each would be
   fit alone; the ranker learned on the earlier cut reorders their candidates
   (``refit_members=False`` skips this step and serves the earlier cut's members, the
   very ones the ranker learned from, at half the fit time).

A member is named by a role: a model name, or ``NAME@N`` for another seed of it
(``"temporal,temporal@2,itemknn"``), each fit, saved and registered on its own.

Fitting each member twice is most of the cost (``temporal``: minutes per fit), so two
fits are not repeated. A final member already fit on the same ``train`` with the
same config (:attr:`~primetime.models.base.FitOptions.prior`: the staged suite's
earlier stages, the models a benchmark fit before it) is bound, not fit again. And
the refit on the whole log (:attr:`~primetime.models.base.FitOptions.previous`) keeps
the ranker the selection fit learned, whose test figure was measured, and refits only
the final members
(``refit_ranker=True`` learns it again on the whole log's earlier cut, at twice the
member fits). The ranker reads standardised scores and log ranks, so it carries from
members fit on one log to members fit on a longer one as it already carries from the
earlier cut's members to the final ones.

Features of a (user, title) pair, all computable from the user's history and the
catalog (:data:`CONTEXT_FEATURES`): per member its score standardised over the
user's unseen titles and its log rank; the title's log popularity and log
time-decayed (trending) popularity in the fit log; the cosine of the title's genres
with the user's genre profile (whole history and last 10 titles); the title's
release year and its gap to the mean year of the history; days since the title's
first event in the log; the log history length (the user segment); movie or show.

Scores: candidates get the ranker's output; every other title (seen ones
included) a finite score below every candidate's, ordered by the members' mean
z-score, so ``score`` still returns a full vector. Column 0 is ``-inf``.

A request costs each member's (B, V) scores, a partition per member for its top
titles and one sort of its scores to rank the candidates (ties resolved by
counting); features and the ranker see only the candidates. No title ranking over
the whole catalog: candidates, ranks and features equal those of ranking every
title (:mod:`primetime.models.ensemble_reference`, the former path, kept as the
reference the tests and ``benchmarks/bench_ensemble.py`` compare against).

The bundle names its members by registry key (``members``: role -> ``"sasrec:v3"``):
:meth:`primetime.registry.ModelRegistry.register` registers the fitted members
first and :meth:`~primetime.registry.ModelRegistry.load` binds them again; a plain
:meth:`save` of an ensemble whose members have no key is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from primetime.artifacts import Bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.models.base import (
    FitOptions,
    FitReport,
    Recommender,
    config_from_dict,
)
from primetime.types import UserContext

log = logging.getLogger(__name__)

DAY = 86_400.0
#: Per member: its score standardised over the user's unseen titles, its log rank.
MEMBER_FEATURES = ("z", "log_rank")
#: Per (user, title), whatever the members.
CONSENSUS_FEATURES = ("mean_z", "rrf")  # over the members, with ``consensus``
CONTEXT_FEATURES = (
    "log_popularity",
    "log_trending",
    "genre_affinity",
    "recent_genre_affinity",
    "year",
    "year_gap",
    "title_age_days",
    "log_history",
    "kind",
)
OBJECTIVES = ("lambdarank", "rank_xendcg", "binary")
RECENT = 10  # titles of the history behind recent_genre_affinity


@dataclass(frozen=True)
class EnsembleConfig:
    """Attributes:
    members: Comma-separated model names to fuse (each a key of ``MODELS``, at most
        once). The default is the set valid chose on ml-100k
        (``benchmarks/bench_fusion.py``: with or without ``sasrec``, ``ease`` and
        ``itemknn``; with 5 bags valid NDCG@10 0.1612 without ``itemknn`` against 0.1547
        with it and 0.1559 without ``ease``; README "Learned fusion"): the time-aware
        transformer plus the quick members. Each member is fit twice
        (once on the earlier cut, once on train; the second is bound instead when
        ``FitOptions.prior`` holds it), ``temporal`` about 3-4 minutes per fit on a
        quiet 2-core machine (18-20 on a shared one), ``ease`` under a second;
        ``itemknn``, ``sasrec``, ``gnn`` and ``multimodal`` may be added.
        ``NAME@N`` (N >= 2) is another instance of a model that has a ``seed``, fit
        with its seed + N - 1 (``"temporal,temporal@2,itemknn"``: two transformers
        whose scores the ranker combines, as seed ensembles do).
    member_settings: Config overrides of members, ``"sasrec.epochs=2,als.factors=32"``
        (JSON values; a role's own, ``"temporal@2.epochs=4"``).
    candidates: Top titles taken from each member per user; their union is what the
        ranker reorders. 20 was chosen on valid (ml-100k, 0.1376 against 0.1356 at
        100 with the default members; with the former members 0.1300 against 0.1191);
        it also shrinks what the ranker scores per request.
    trees: Most boosting rounds (fewer when ``valid`` stops it earlier).
    learning_rate: LightGBM shrinkage.
    leaves: Leaves per tree.
    min_child: Fewest rows in a leaf. 15 leaves of at least 200 rows were chosen on
        valid with ``cut_events=3`` (ml-100k: valid NDCG@10 0.1516 against 0.1457 at
        31 / 20 and 0.1440-0.1475 at 7-31 / 50-200; README "Learned fusion").
    stop_after: Rounds without a better valid NDCG@10 before boosting stops.
    half_life_days: Half-life of the trending feature's decay, before the newest event.
    seed: LightGBM seed (the fit is deterministic with one thread).
    refit_ranker: In the refit on the whole log, learn the ranker again on that log's
        earlier cut (every member fit twice more) instead of keeping the selection
        fit's (module docstring).
    refit_members: After the ranker is learned, fit the members again on all of train
        and serve those (the default), or serve the earlier cut's members, those the
        ranker learned from (each member fit once: half the fit time; they never see
        each user's last ``cut_events`` train events, but score with them as history).
    consensus: Give the ranker the members' consensus too: the mean z-score and the
        reciprocal rank fusion score (sum of 1 / (60 + rank)) of each candidate.
    bags: Boosters in the ranker, each learned with its own seed on 80% of the rows and
        features per round and early-stopped on valid on its own; their outputs are
        summed (bagging: less variance from ~3,000 queries), their trees merged into
        one booster (:func:`merge_boosters`). 1: one booster on all. 5 was chosen on
        valid (ml-100k, default members: 0.1612 against 0.1506 at 1, 0.1598 at 10,
        0.1589 at 20; README "Learned fusion"); the trees are most of a request's
        LightGBM time (one booster of ~40 trees over 60 candidates about 0.1 ms).
    objective: LightGBM's objective: ``lambdarank`` (LambdaMART), ``rank_xendcg``
        (its cross-entropy relative) or ``binary`` (pointwise).
    cut_events: Train events per user the earlier cut holds out (users with more
        events than that, at least 3); each is one query of the ranker, its history
        every event before it (the members, fit on the rest, score a history they
        partly did not train on, as they score a live user's new events). 1: one
        query per user. 3 was chosen on valid (ml-100k, default members: valid
        NDCG@10 0.1376 at 1, 0.1457 at 3, 0.1449 at 6; README "Learned fusion").
    """

    members: str = "temporal,ease,als,popularity"
    member_settings: str = ""
    candidates: int = 20
    trees: int = 300
    learning_rate: float = 0.05
    leaves: int = 15
    min_child: int = 200
    stop_after: int = 30
    half_life_days: float = 30.0
    seed: int = 0
    refit_ranker: bool = False
    cut_events: int = 3
    refit_members: bool = True
    bags: int = 5
    consensus: bool = False
    objective: str = "lambdarank"

    def __post_init__(self) -> None:
        names = self.member_names()
        if not names:
            raise ValueError("members: name at least one model")
        if len(set(names)) != len(names):
            raise ValueError(f"members: a model named twice in {self.members!r}")
        if "ensemble" in names:
            raise ValueError("members: an ensemble cannot be its own member")
        for role in names:
            member_model(role)  # names a malformed NAME@N
        self.settings()  # names a malformed member_settings
        for key in (
            "candidates",
            "trees",
            "leaves",
            "min_child",
            "stop_after",
            "cut_events",
            "bags",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days}")

    def member_names(self) -> list[str]:
        return [n.strip() for n in self.members.split(",") if n.strip()]

    def settings(self) -> dict[str, dict[str, Any]]:
        """``member_settings`` parsed: ``{"sasrec": {"epochs": 2}}``."""
        out: dict[str, dict[str, Any]] = {}
        for part in filter(None, (p.strip() for p in self.member_settings.split(","))):
            key, sep, value = part.partition("=")
            name, dot, option = key.strip().partition(".")
            if not sep or not dot or not option:
                raise ValueError(
                    f"member_settings: {part!r} is not MEMBER.OPTION=VALUE (e.g. 'sasrec.epochs=2')"
                )
            if name not in self.member_names():
                raise ValueError(f"member_settings: {name!r} is not among members {self.members!r}")
            try:
                parsed: Any = json.loads(value)
            except json.JSONDecodeError:
                parsed = value
            out.setdefault(name, {})[option] = parsed
        return out


def member_model(role: str) -> tuple[str, int]:
    """A member role's model name and instance: ``"temporal@2"`` -> ``("temporal", 2)``,
    ``"itemknn"`` -> ``("itemknn", 1)``."""
    name, at, n = role.partition("@")
    if not at:
        return role, 1
    if not name or not n.isdigit() or int(n) < 2:
        raise ValueError(
            f"members: {role!r} is not NAME@N with N >= 2 (another seed of NAME, e.g. 'temporal@2')"
        )
    return name, int(n)


def earlier_cut(train: Interactions, n: int) -> tuple[Interactions, list[Interactions]]:
    """``(rest, rounds)``: the last ``n`` events of each user of ``train`` held out, as
    ``n`` rounds (round ``j`` holds each user's ``j``-th of them, oldest first), and
    the rest. A user keeps at least 2 events in ``rest`` (as leave-one-out does, which
    this is for ``n = 1``): a user with fewer than ``n + 2`` events gives fewer rounds."""
    cut = leave_one_out(train)
    rest = Interactions.concat([cut.train, cut.valid])
    rounds = [cut.test]
    for _ in range(n - 1):
        cut = leave_one_out(rest)
        if not len(cut.test):
            break
        rest = Interactions.concat([cut.train, cut.valid])
        rounds.insert(0, cut.test)
    return rest, rounds


# ------------------------------------------------------------------ features
@dataclass
class TitleStats:
    """Per-title facts of a fit log and catalog, each (items.size,), NaN where unknown."""

    log_popularity: np.ndarray
    log_trending: np.ndarray
    genres: np.ndarray  # (V, G) unit rows (zero without genres)
    year: np.ndarray
    age_days: np.ndarray
    kind: np.ndarray

    @classmethod
    def of(cls, log_: Interactions, side: SideData, half_life_days: float) -> TitleStats:
        size = log_.items.size
        pop = np.bincount(log_.item_idx, minlength=size).astype(np.float32)
        end = float(log_.timestamp.max())
        weight = np.exp2(-(end - log_.timestamp.astype(np.float64)) / (half_life_days * DAY))
        trend = np.bincount(log_.item_idx, weights=weight, minlength=size)
        first = np.full(size, np.inf)
        np.minimum.at(first, log_.item_idx, log_.timestamp.astype(np.float64))
        age = np.where(np.isfinite(first), (end - first) / DAY, np.nan)
        year = np.full(size, np.nan, dtype=np.float32)
        kind = np.full(size, np.nan, dtype=np.float32)
        genres = np.zeros((size, 1), dtype=np.float32)
        if side.catalog is not None:
            frame = side.catalog.frame
            year[1:] = frame["year"].cast(float).fill_null(np.nan).to_numpy()
            kind[1:] = side.catalog.kind_codes()[1:]
            gm, _ = side.catalog.genre_matrix()
            if gm.shape[1]:
                genres = gm / np.maximum(np.linalg.norm(gm, axis=1, keepdims=True), 1e-12)
        return cls(
            log_popularity=np.log1p(pop).astype(np.float32),
            log_trending=np.log1p(trend).astype(np.float32),
            genres=genres.astype(np.float32),
            year=year,
            age_days=age.astype(np.float32),
            kind=kind,
        )

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{f.name}": getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> TitleStats:
        return cls(**{f.name: arrays[f"{prefix}{f.name}"] for f in dataclasses.fields(cls)})


def _same_settings(fitted: Recommender, built: Recommender) -> bool:
    """Was ``fitted`` made with the config the ensemble would build (``built``)?"""
    return type(fitted) is type(built) and dataclasses.asdict(fitted.config) == (
        dataclasses.asdict(built.config)
    )


def _unseen_scores(model: Recommender, contexts: Sequence[UserContext]) -> np.ndarray:
    """A member's (B, V) scores with padding and each user's history set to -inf."""
    s = np.array(model.score(contexts), dtype=np.float32)  # (B, V), a copy
    s[np.isnan(s)] = -np.inf  # in place: nan_to_num copies and scans for +-inf too
    s[:, 0] = -np.inf
    for b, c in enumerate(contexts):
        s[b, c.history] = -np.inf
    return s


# The order of a member's titles: score descending, ties by lower item_idx (what a
# stable argsort of -score gives). Candidates and ranks follow it exactly, from one
# sort of each member's scores (SIMD-sorted floats, no indices carried) instead of
# an index ranking of the catalog: a stable argsort of 27,000 scores took 4.8 ms per
# member and user, the bulk of a request. np.partition was tried for the top titles
# and was slower than the sort on members with many tied scores (itemknn's zeros).
TIE_VALUES_LOOP = 32  # above this many tied score values in a row, rank by one int64 sort


def _top(s: np.ndarray, top: int, srt: np.ndarray | None = None) -> np.ndarray:
    """(B, V) bool: each row's first ``top`` titles in member order, finite ones only.

    Args:
        s: (B, V) float32 scores, ``-inf`` = cannot be recommended.
        top: Titles taken per row.
        srt: ``np.sort(s, axis=1)`` when the caller has it.
    """
    B, V = s.shape
    if top >= V:
        return np.isfinite(s)
    srt = np.sort(s, axis=1) if srt is None else srt  # (B, V) ascending
    kth = srt[:, V - top]  # (B,) the top-th largest score
    picked = s >= kth[:, None]  # (B, V): the titles above it and all its ties
    for b in range(B):
        n_above = V - int(np.searchsorted(srt[b], kth[b], side="right"))
        room = top - n_above  # >= 1 of the ties fits: keep the lowest indices
        picked[b, np.flatnonzero(s[b] == kth[b])[room:]] = False
    return picked & np.isfinite(s)


def _order_keys(row: np.ndarray) -> np.ndarray:
    """(V,) int64 keys of a float32 row, all distinct: a larger key = earlier in member
    order (the float's order-preserving bits, then the lower index)."""
    V = row.size
    bits = (row + np.float32(0.0)).view(np.int32)  # + 0 turns -0.0 into 0.0 (they tie)
    ordered = np.where(bits >= 0, bits, bits ^ np.int32(0x7FFFFFFF)).astype(np.int64)
    return ordered * V + (V - 1 - np.arange(V, dtype=np.int64))


def _ranks_at(
    s: np.ndarray, rows: np.ndarray, cols: np.ndarray, srt: np.ndarray | None = None
) -> np.ndarray:
    """(N,) 0-based rank in member order of title ``cols[n]`` within row ``rows[n]`` of
    ``s`` (B, V): the number of titles scored higher plus the tied ones of lower index,
    the same as ranking the whole row. ``rows`` must be ascending (candidates grouped
    by user); ``srt`` is ``np.sort(s, axis=1)`` when the caller has it."""
    B, V = s.shape
    srt = np.sort(s, axis=1) if srt is None else srt  # (B, V) ascending
    out = np.empty(len(rows), dtype=np.int64)
    bounds = np.searchsorted(rows, np.arange(B + 1))  # (B + 1,) each row's slice
    for b in range(B):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue
        row, c = s[b], cols[lo:hi]
        v = row[c]  # (n,)
        left = np.searchsorted(srt[b], v, side="left")
        right = np.searchsorted(srt[b], v, side="right")
        r = V - right  # titles scored strictly higher
        tied = right - left > 1
        if tied.any():
            values = np.unique(v[tied])
            if values.size <= TIE_VALUES_LOOP:
                for u in values:  # e.g. itemknn's zeros, popularity's counts
                    sel = tied & (v == u)
                    r[sel] += np.searchsorted(np.flatnonzero(row == u), c[sel])
            else:
                keys = _order_keys(row)
                r = V - np.searchsorted(np.sort(keys), keys[c], side="right")
        out[lo:hi] = r
    return out


def _z_moments(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) mean and standard deviation of each row's finite scores (float64)."""
    finite = np.isfinite(s)
    n = np.maximum(finite.sum(axis=1), 1)
    safe = np.where(finite, s, 0.0).astype(np.float64)
    mean = safe.sum(axis=1) / n  # (B,)
    std = np.sqrt(
        np.maximum((np.where(finite, s, mean[:, None]) ** 2).sum(axis=1) / n - mean**2, 0.0)
    )
    return mean, std


def _member_features(
    s: np.ndarray,
    moments: tuple[np.ndarray, np.ndarray],
    ranks: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> list[np.ndarray]:
    """One member's :data:`MEMBER_FEATURES` of the candidates: (N,) z-score (NaN where it
    cannot score the title) and (N,) log rank, from its (B, V) scores ``s``, their
    :func:`_z_moments` and the candidates' (N,) ranks."""
    mean, std = moments
    at = s[rows, cols]  # (N,)
    z = (at - mean[rows]) / (std[rows] + 1e-9)
    return [np.where(np.isfinite(at), z, np.nan), np.log1p(ranks)]


RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al., 2009)


def _consensus_features(per_member: Sequence[np.ndarray]) -> list[np.ndarray]:
    """:data:`CONSENSUS_FEATURES` from the members' features (``[z, log_rank]`` per
    member, in order): the mean z-score over the members that can score the title
    and the reciprocal rank fusion score, sum of 1 / (60 + rank)."""
    z = np.column_stack(per_member[0::2])  # (N, M)
    ranks = np.expm1(np.column_stack(per_member[1::2]))  # (N, M), 0-based
    scored = np.isfinite(z)
    mean_z = np.where(scored, z, 0.0).sum(axis=1) / np.maximum(scored.sum(axis=1), 1)
    return [
        np.where(scored.any(axis=1), mean_z, np.nan),
        (1.0 / (RRF_K + 1.0 + ranks)).sum(axis=1),
    ]


def _context_features(
    contexts: Sequence[UserContext], stats: TitleStats, rows: np.ndarray, cols: np.ndarray
) -> list[np.ndarray]:
    """The :data:`CONTEXT_FEATURES` of candidates (``rows`` of the batch, ``cols`` titles),
    each (N,)."""
    # the user side: genre profiles and the mean release year of the history
    B = len(contexts)
    G = stats.genres.shape[1]
    profile = np.zeros((B, G), dtype=np.float32)
    recent = np.zeros((B, G), dtype=np.float32)
    hist_year = np.full(B, np.nan, dtype=np.float32)
    length = np.zeros(B, dtype=np.float32)
    for b, c in enumerate(contexts):
        h = np.unique(c.history)
        length[b] = len(c.history)
        if h.size:
            profile[b] = stats.genres[h].sum(axis=0)
            recent[b] = stats.genres[np.unique(c.history[-RECENT:])].sum(axis=0)
            years = stats.year[h]
            if np.isfinite(years).any():
                hist_year[b] = np.nanmean(years)
    profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
    recent /= np.maximum(np.linalg.norm(recent, axis=1, keepdims=True), 1e-12)
    g = stats.genres[cols]  # (N, G)
    return [
        stats.log_popularity[cols],
        stats.log_trending[cols],
        (profile[rows] * g).sum(axis=1),
        (recent[rows] * g).sum(axis=1),
        stats.year[cols],
        stats.year[cols] - hist_year[rows],
        stats.age_days[cols],
        np.log1p(length[rows]),
        stats.kind[cols],
    ]


@dataclass
class Candidates:
    """Which (user, title) pairs the ranker sees, their features and the fallback order."""

    rows: np.ndarray  # (N,) row of the batch
    cols: np.ndarray  # (N,) item_idx
    features: np.ndarray  # (N, F) float32
    fallback: np.ndarray  # (B, V) order of the other titles, higher is better (-inf: last)


def candidates_and_features(
    member_scores: Sequence[np.ndarray],
    contexts: Sequence[UserContext],
    stats: TitleStats,
    top: int,
    consensus: bool = False,
) -> Candidates:
    """The union of each member's top-``top`` unseen titles per user, with features.

    The same function builds the ranker's training queries and scores requests, so
    training and serving features cannot drift apart. Candidates are found by
    partition and ranked by counting against each member's whole score row, so they
    and their features equal what ranking every title would give
    (:mod:`primetime.models.ensemble_reference`, tested equal).

    Args:
        member_scores: Per member, (B, V) float32 scores with the history and padding -inf.
        contexts: The B users.
        stats: Title facts of the fit log.
        top: Titles taken from each member.
        consensus: Add :data:`CONSENSUS_FEATURES` after the members' own.

    Returns:
        Rows in batch order (a user's candidates contiguous, titles ascending); the
        fallback is the mean over members of their z-scores (O(V), no ranks).
    """
    B, V = member_scores[0].shape
    mask = np.zeros((B, V), dtype=bool)
    sorted_scores = [np.sort(s, axis=1) for s in member_scores]  # (B, V) each, ascending
    for s, srt in zip(member_scores, sorted_scores, strict=True):
        mask |= _top(s, top, srt)
    rows, cols = np.nonzero(mask)  # (N,), (N,): row-major, so grouped by user
    per_member: list[np.ndarray] = []
    fallback = np.zeros((B, V), dtype=np.float32)
    for s, srt in zip(member_scores, sorted_scores, strict=True):
        mean, std = _z_moments(s)
        ranks = _ranks_at(s, rows, cols, srt)  # (N,)
        per_member += _member_features(s, (mean, std), ranks, rows, cols)
        fallback += ((s - mean[:, None]) / (std[:, None] + 1e-9)).astype(np.float32)
    if consensus:
        per_member += _consensus_features(per_member)
    features = np.column_stack(per_member + _context_features(contexts, stats, rows, cols))
    return Candidates(
        rows=rows,
        cols=cols,
        features=features.astype(np.float32),
        fallback=fallback / len(member_scores),
    )


def learn_ranker(
    cfg: EnsembleConfig, train_set: lgb.Dataset, valid_set: lgb.Dataset | None, threads: int
) -> tuple[list[str], list[int], list[float | None]]:
    """The ranker's ``cfg.bags`` boosters as model texts, each with its own seed (and,
    with more than one, its own sample of rows and features per round), each stopped
    on ``valid_set`` on its own; their numbers of trees and valid NDCG@10 there."""
    params = {
        "objective": cfg.objective,
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.leaves,
        "min_data_in_leaf": cfg.min_child,
        "lambdarank_truncation_level": 20,
        "num_threads": threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    if cfg.bags > 1:  # each booster sees its own sample of rows and features
        params.update(bagging_fraction=0.8, bagging_freq=1, feature_fraction=0.8)
    boosters, best_trees, curves = [], [], []
    for bag in range(cfg.bags):
        evals: dict[str, Any] = {}
        callbacks: list[Any] = [lgb.record_evaluation(evals)]
        sets, names = [], []
        if valid_set is not None:
            sets, names = [valid_set], ["valid"]
            callbacks.append(lgb.early_stopping(cfg.stop_after, verbose=False))
        booster = lgb.train(
            {**params, "seed": cfg.seed + bag},
            train_set,
            num_boost_round=cfg.trees,
            valid_sets=sets,
            valid_names=names,
            callbacks=callbacks,
        )
        best = booster.best_iteration or cfg.trees
        boosters.append(booster.model_to_string(num_iteration=best))
        best_trees.append(best)
        curve = evals.get("valid", {}).get("ndcg@10", [])
        curves.append(round(float(curve[best - 1]), 4) if curve else None)
    return boosters, best_trees, curves


def merge_boosters(texts: Sequence[str]) -> str:
    """One LightGBM model text holding the trees of every model text of ``texts`` (the
    same features and objective, no initial score): it predicts their sum in one call,
    where one call per booster would cost ~0.1 ms each on a request. LightGBM has no
    merge; its text format is a header (with each tree's size in bytes), the trees
    (``Tree=i`` blocks) and a trailer (the first model's is kept)."""
    blocks: list[str] = []
    for text in texts:
        _, sep, rest = text.partition("\nTree=0\n")
        if not sep:
            raise ValueError("merge_boosters: a model text without trees")
        trees, _, _ = ("Tree=0\n" + rest).partition("end of trees")
        blocks += [b for b in re.split(r"(?=^Tree=\d+\n)", trees, flags=re.M) if b]
    blocks = [f"Tree={i}\n" + b.partition("\n")[2] for i, b in enumerate(blocks)]
    head = texts[0].partition("\nTree=0\n")[0]
    sizes = " ".join(str(len(b.encode("utf-8"))) for b in blocks)
    head = re.sub(r"^tree_sizes=.*$", f"tree_sizes={sizes}", head, count=1, flags=re.M)
    tail = "end of trees" + texts[0].partition("end of trees")[2]
    return head + "\n" + "".join(blocks) + tail


def ranker_scores(booster: lgb.Booster, cands: Candidates) -> np.ndarray:
    """(N,) float64 ranker output of the candidates (one LightGBM thread)."""
    if not len(cands.rows):
        return np.zeros(0)
    return np.asarray(booster.predict(cands.features, num_threads=1), dtype=np.float64)


def lowest_candidate(cands: Candidates, predicted: np.ndarray, rows: int) -> np.ndarray:
    """(B,) each row's lowest ranker score among its candidates (0 for a row without)."""
    if not predicted.size:
        return np.zeros(rows)
    lo = np.full(rows, np.inf)
    np.minimum.at(lo, cands.rows, predicted)
    return np.where(np.isfinite(lo), lo, 0.0)


def fused_scores(cands: Candidates, predicted: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(B, V) float32 scores: the ranker's on candidates, every other title below them in
    fallback order (finite, in ``(lowest candidate - 2, lowest candidate - 1)``), padding
    -inf."""
    floor = lowest_candidate(cands, predicted, shape[0])
    # tanh maps the fallback (-inf for titles no member can score) into [-1, 1]
    out = (floor[:, None] - 1.5 + 0.49 * np.tanh(cands.fallback)).astype(np.float32)
    out[cands.rows, cands.cols] = predicted
    out[:, 0] = -np.inf
    return out


def _labels(cands: Candidates, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate row 1 for the user's target; keep only users whose target is a
    candidate. Returns ``(keep, labels, group sizes)``."""
    y = (cands.cols == targets[cands.rows]).astype(np.float32)
    B = len(targets)
    hit = np.zeros(B, dtype=bool)
    hit[cands.rows[y > 0]] = True
    keep = hit[cands.rows]
    sizes = np.bincount(cands.rows[keep], minlength=B)
    return keep, y[keep], sizes[sizes > 0]


# ------------------------------------------------------------------ the model
class EnsembleRecommender(Recommender):
    """A LambdaMART ranker over member scores and user/title features (module docstring)."""

    name = "ensemble"
    config_class = EnsembleConfig

    def __init__(self, config: EnsembleConfig | None = None) -> None:
        super().__init__(config)
        self.fitted: dict[str, Recommender] = {}  # role (model name) -> final member
        self.booster: lgb.Booster | None = None
        self.stats: TitleStats | None = None
        self._member_reports: dict[str, FitReport] = {}  # the final members' (not saved)
        self._bound: list[str] = []  # final members bound from FitOptions.prior

    # ----------------------------------------------------------- members
    def member_models(self) -> dict[str, Recommender]:
        return dict(self.fitted)

    def bind_members(self, models: dict[str, Recommender]) -> None:
        want = self.config.member_names()
        if sorted(models) != sorted(want):
            raise ValueError(f"{self.name}: members {sorted(models)} given, {want} expected")
        for role, m in models.items():
            if m.name != member_model(role)[0]:
                raise ValueError(f"{self.name}: member {role!r} is a {m.name!r} model")
            if self.items is not None and m.items != self.items:
                raise ValueError(f"{self.name}: member {role!r} was fit on another catalog")
        self.fitted = {role: models[role] for role in want}

    def _build_member(self, role: str) -> Recommender:
        from primetime.models import get_model_class  # the registry of models imports us

        name, instance = member_model(role)
        cls = get_model_class(name)
        base = dataclasses.asdict(cls.config_class())
        base.update(self.config.settings().get(role, {}))
        if instance > 1:
            if "seed" not in base:
                raise ValueError(
                    f"members: {role!r} names another seed of {name!r}, which has none "
                    "(its fit does not depend on one)"
                )
            base["seed"] = int(base["seed"]) + instance - 1
        return cls(config_from_dict(cls.config_class, base))

    def _fit_members(
        self,
        train: Interactions,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
        tag: str,
    ) -> tuple[dict[str, Recommender], dict[str, float]]:
        out, seconds = {}, {}
        for name in self.config.member_names():
            model = self._build_member(name)
            if model.task != "topn":
                raise ValueError(f"{self.name}: member {name!r} is a rating model")
            # a prior was fit on all of train: the final members, when they are fit there
            on_train = tag == "final" and self.config.refit_members
            prior = options.prior.get(name) if on_train else None
            if prior is not None and _same_settings(prior.model, model):
                log.info("%s: final member %s bound from an earlier fit", self.name, name)
                out[name], seconds[name] = prior.model, 0.0
                self._member_reports[name] = prior.report
                self._bound.append(name)
                continue
            run_dir = options.run_dir / f"{tag}-{name}" if options.run_dir is not None else None
            opts = dataclasses.replace(options, run_dir=run_dir)
            report = model.fit(train, valid=valid, side=side, options=opts)
            log.info("%s: %s member %s fit in %.1fs", self.name, tag, name, report.seconds)
            out[name], seconds[name] = model, round(report.seconds, 2)
            if tag == "final" or not self.config.refit_members:  # the members served
                self._member_reports[name] = report
        return out, seconds

    # ---------------------------------------------------------------- fit
    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        from primetime.models import get_model_class

        cfg = self.config
        if any("text" in get_model_class(member_model(n)[0]).uses for n in cfg.member_names()):
            side = side.with_text_vectors(device=options.device or "cpu")
        threads = options.threads or 1
        self._bound = []
        previous = options.previous
        if (
            isinstance(previous, EnsembleRecommender)
            and previous.booster is not None
            and not cfg.refit_ranker
        ):
            if previous.config.member_names() != cfg.member_names():
                raise ValueError(
                    f"{self.name}: the selection fit's members "
                    f"{previous.config.members!r} are not {cfg.members!r}"
                )
            return self._refit_members(train, valid, side, options, previous)
        t0 = time.perf_counter()
        # 1. the earlier cut: each user's last train events held out
        cut_train, held = earlier_cut(train, cfg.cut_events)
        if not len(held[0]):
            raise ValueError(
                f"{self.name}: no user has 3 train events; nothing to learn the fusion from"
            )
        early, early_seconds = self._fit_members(cut_train, valid, side, options, "cut")
        stats_cut = TitleStats.of(cut_train, side, cfg.half_life_days)
        train_set, coverage = self._queries(early, stats_cut, cut_train, held)
        valid_set = None
        if valid is not None and len(valid):
            valid_set, _ = self._queries(
                early, TitleStats.of(train, side, cfg.half_life_days), train, [valid]
            )
        boosters, best_trees, curves = learn_ranker(cfg, train_set, valid_set, threads)
        # a round trip through the text form: what save writes is what scores now
        self.booster = lgb.Booster(model_str=merge_boosters(boosters))
        fusion_seconds = time.perf_counter() - t0
        # 2. the final members, each fit on all of train as it would be alone (or
        # the earlier cut's, those the ranker learned from)
        if cfg.refit_members:
            self.fitted, final_seconds = self._fit_members(train, valid, side, options, "final")
        else:
            self.fitted, final_seconds = early, {}
        self.stats = TitleStats.of(train, side, cfg.half_life_days)
        gain = self.booster.feature_importance(importance_type="gain")
        names_f = self.feature_names()
        notes: dict[str, Any] = {
            "members": cfg.member_names(),
            "fusion_queries": int(np.asarray(train_set.get_group()).size),
            "held_out_events": sum(len(h) for h in held),
            "target_in_candidates": round(coverage, 4),
            "trees": round(float(np.mean(best_trees))),
            **({"trees_per_bag": best_trees} if cfg.bags > 1 else {}),
            "valid_ndcg@10_of_ranker_on_early_members": curves[0] if cfg.bags == 1 else curves,
            "member_fit_seconds": {"cut": early_seconds, "final": final_seconds},
            "final_members_bound": list(self._bound),
            "earlier_cut_and_ranker_seconds": round(fusion_seconds, 2),
            "feature_gain_share": {
                n: round(float(g / max(gain.sum(), 1e-12)), 4)
                for n, g in sorted(zip(names_f, gain, strict=True), key=lambda x: -x[1])
            },
        }
        judge = options.validator(train, valid)
        if judge is not None:
            notes["members_valid_ndcg@10"] = {n: round(judge(m), 4) for n, m in self.fitted.items()}
        return FitReport(notes=notes)

    def _refit_members(
        self,
        train: Interactions,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
        previous: EnsembleRecommender,
    ) -> FitReport:
        """The refit on the whole log: the selection fit's ranker, final members fit
        (or bound) on ``train``."""
        assert previous.booster is not None
        self.booster = lgb.Booster(model_str=previous.booster.model_to_string())
        # the members served are fit as the selection fit's were: on all of the log, or
        # on its earlier cut
        cfg = self.config
        fit_on = train if cfg.refit_members else earlier_cut(train, cfg.cut_events)[0]
        self.fitted, final_seconds = self._fit_members(fit_on, valid, side, options, "final")
        self.stats = TitleStats.of(train, side, self.config.half_life_days)
        return FitReport(
            notes={
                "members": self.config.member_names(),
                "ranker": "kept from the selection fit (refit_ranker=false)",
                "trees": int(self.booster.num_trees()),
                "member_fit_seconds": {"final": final_seconds},
                "final_members_bound": list(self._bound),
            }
        )

    def _queries(
        self,
        members: dict[str, Recommender],
        stats: TitleStats,
        history: Interactions,
        rounds: Sequence[Interactions],
    ) -> tuple[lgb.Dataset, float]:
        """A LightGBM ranking set: per round of ``rounds`` (at most one target per
        user), its users with histories from ``history`` and the earlier rounds'
        targets, their candidates under ``members``, label 1 on the target; and the
        share of targets inside the candidates.

        Members are asked at the target's time (``UserContext.now``), as evaluation
        (:class:`~primetime.eval.evalset.EvalSet`) and the service ask them: a
        time-aware member (``temporal``) scores differently at the moment of the
        request than at the last event, and the ranker must learn from the scores it
        will be given."""
        feats, labels, groups, hits, asked = [], [], [], 0, 0
        for targets in rounds:
            by_user = np.zeros(targets.users.size, dtype=np.int64)
            by_user[targets.user_idx] = targets.item_idx
            at = np.zeros(targets.users.size, dtype=np.int64)
            at[targets.user_idx] = targets.timestamp
            users = np.unique(targets.user_idx)
            contexts = [
                dataclasses.replace(c, now=int(at[u]))
                for c, u in zip(history.contexts(users), users, strict=True)
            ]
            for start in range(0, len(contexts), 256):
                ctx = contexts[start : start + 256]
                scores = [_unseen_scores(m, ctx) for m in members.values()]
                cfg = self.config
                cands = candidates_and_features(scores, ctx, stats, cfg.candidates, cfg.consensus)
                keep, y, sizes = _labels(cands, by_user[users[start : start + 256]])
                feats.append(cands.features[keep])
                labels.append(y)
                groups.append(sizes)
                hits += len(sizes)
            asked += len(users)
            history = Interactions.concat([history, targets])  # the next round's history
        group = np.concatenate(groups)
        if not group.size:
            raise ValueError(f"{self.name}: no held-out title is among the candidates")
        data = lgb.Dataset(
            np.concatenate(feats),
            label=np.concatenate(labels),
            group=group,
            feature_name=self.feature_names(),
            free_raw_data=False,
        )
        return data, hits / max(asked, 1)

    def refit_overrides(self, report: FitReport) -> dict[str, Any]:
        """The trees valid chose and each final member's own pinned choice (its best
        epoch), as ``trees`` and ``member_settings``."""
        pinned = self.config.settings()
        for name, member in self.fitted.items():
            rep = self._member_reports.get(name)
            if rep is not None:
                pinned.setdefault(name, {}).update(member.refit_overrides(rep))
        settings = ",".join(
            f"{m}.{k}={json.dumps(v)}" for m, opts in pinned.items() for k, v in opts.items()
        )
        trees = report.notes.get("trees")
        return {"member_settings": settings, **({"trees": int(trees)} if trees else {})}

    def feature_names(self) -> list[str]:
        per = [f"{m}_{f}" for m in self.config.member_names() for f in MEMBER_FEATURES]
        return (
            per + list(CONSENSUS_FEATURES if self.config.consensus else ()) + list(CONTEXT_FEATURES)
        )

    # -------------------------------------------------------------- score
    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        if self.booster is None or self.stats is None:
            raise RuntimeError(f"{self.name} is not fitted; call fit() or load() first")
        if not self.fitted:
            raise RuntimeError(
                f"{self.name}: members {self.members or self.config.members} are not loaded; "
                "load the ensemble with ModelRegistry.load, which resolves them by key"
            )
        assert self.items is not None
        scores = [_unseen_scores(m, contexts) for m in self.fitted.values()]
        cfg = self.config
        cands = candidates_and_features(scores, contexts, self.stats, cfg.candidates, cfg.consensus)
        predicted = ranker_scores(self.booster, cands)  # (N,)
        return fused_scores(cands, predicted, (len(contexts), self.items.size))

    # ------------------------------------------------------ save and load
    def save(self, directory: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write the bundle; every member must already have a registry key in
        :attr:`members` (``ModelRegistry.register`` registers them first)."""
        missing = [r for r in self.config.member_names() if r not in self.members]
        if missing:
            raise ValueError(
                f"{self.name}: members {missing} have no registry key; register the ensemble "
                "with ModelRegistry.register, which registers its members first"
            )
        return super().save(directory, meta=meta)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.booster is not None and self.stats is not None
        text = self.booster.model_to_string().encode("utf-8")
        return {"booster": np.frombuffer(text, dtype=np.uint8), **self.stats.arrays("title_")}

    def _restore(self, bundle: Bundle) -> None:
        text = bundle.arrays["booster"].tobytes().decode("utf-8")
        self.booster = lgb.Booster(model_str=text)
        self.stats = TitleStats.from_arrays(bundle.arrays, "title_")
