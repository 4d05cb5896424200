"""The evaluation protocol of EVALUATION.md: full ranking, sampled-100, ratings.

:class:`EvalSet` turns a split into what a model is asked: for every user
with at least one held-out (target) interaction, a :class:`UserContext`
holding the history it may use, the relevant item indices, and the items to
exclude from the ranking (the whole history). :func:`evaluate` asks a model
for scores in batches, ranks **every** catalog item, and returns an
:class:`EvalResult` with per-user values, so that confidence intervals,
paired tests and breakdowns can be computed afterwards.

Any object with a ``name`` and ``score(contexts) -> (B, items.size) float32``
can be evaluated (a :class:`~primetime.models.base.Recommender`, the
synthetic world's oracle, a test double); ``-inf`` in a score row means
"must not recommend".

Ties are broken **pessimistically** for rank metrics: a relevant item's rank
counts every other item with an equal score as ranked above it, so a model
that scores everything the same gets no credit. Top-K lists (coverage,
diversity, novelty, export) break ties by lower item_idx instead, so a list
is well defined; both rules are independent of batching.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.data.splits import Split
from primetime.data.vocab import Vocabulary
from primetime.eval import metrics as M
from primetime.eval.ranking import exclude_items, pessimistic_ranks, topk_lists
from primetime.eval.significance import bootstrap_ci, bootstrap_ci_many
from primetime.types import UserContext

log = logging.getLogger(__name__)

__all__ = [
    "FULL",
    "SEGMENTS",
    "EvalResult",
    "EvalSet",
    "RatingModel",
    "RatingResult",
    "ScoringModel",
    "evaluate",
    "evaluate_ratings",
    "evaluate_sampled",
    "sample_negatives",
    "sampled_label",
]

#: Protocol label of full-ranking results.
FULL = "full"

#: User activity segments (EVALUATION.md step 8) as half-open ranges
#: ``[lo, hi)`` of history length: cold < 5, light 5-19, regular 20-100,
#: power > 100. The document's "5-20" / "20-100" share their end points; a
#: user with exactly 20 counts as regular, exactly 100 as regular.
SEGMENTS: tuple[tuple[str, int, float], ...] = (
    ("cold", 0, 5),
    ("light", 5, 20),
    ("regular", 20, 101),
    ("power", 101, float("inf")),
)

NO_GENRE = "(no genre)"


@runtime_checkable
class ScoringModel(Protocol):
    """What :func:`evaluate` needs from a model."""

    @property
    def name(self) -> str: ...

    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, items.size) float32 scores; column 0 and forbidden items ``-inf``."""
        ...


@runtime_checkable
class RatingModel(Protocol):
    """What :func:`evaluate_ratings` needs from a model."""

    @property
    def name(self) -> str: ...

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """(N,) predicted ratings for (N,) user and item indices."""
        ...


def sampled_label(n_negatives: int) -> str:
    """Protocol label of a sampled evaluation, e.g. ``"sampled-100"``."""
    return f"sampled-{n_negatives}"


# =================================================================== EvalSet
def _gather_csr(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Select CSR rows: returns new (len(rows) + 1,) indptr and flat positions."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    new = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new[1:])
    pos = np.repeat(starts - new[:-1], lengths) + np.arange(new[-1], dtype=np.int64)
    return new, pos


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Distinct values ascending (sort-based; np.unique's hash path is slower on big ints)."""
    srt = np.sort(x)
    keep = np.ones(srt.size, dtype=bool)
    keep[1:] = srt[1:] != srt[:-1]
    return srt[keep]


def _member(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(Q,) bool: which queries occur in ``sorted_keys`` (ascending); faster than np.isin."""
    if sorted_keys.size == 0:
        return np.zeros(queries.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return sorted_keys[pos] == queries


@dataclass(frozen=True, eq=False)
class EvalSet:
    """The users to evaluate, each with a history, targets and exclusions.

    All per-user arrays are aligned with ``user_idx`` (ascending). Histories
    and relevant items are stored CSR style: user ``i``'s history is
    ``hist_items[hist_indptr[i]:hist_indptr[i + 1]]`` (oldest first, equal
    timestamps in file order) and its relevant items are
    ``rel_items[rel_indptr[i]:rel_indptr[i + 1]]`` (distinct, ascending idx).
    The items excluded from a user's ranking are exactly its history items.

    Attributes:
        name: "valid", "test", or a caller's name.
        history: The interactions histories are taken from (also the default
            popularity source for Novelty).
        user_idx: (U,) int64 users with at least one target, ascending.
        hist_indptr: (U + 1,) int64.
        hist_items: (H,) int64 item_idx, time order per user.
        hist_timestamps: (H,) int64 unix seconds.
        hist_ratings: (H,) float32, NaN where no rating.
        rel_indptr: (U + 1,) int64.
        rel_items: (T,) int64 relevant item_idx.
        now: (U,) int64 timestamp of each user's first target: the moment
            the recommendation is asked for.
    """

    name: str
    history: Interactions
    user_idx: np.ndarray
    hist_indptr: np.ndarray
    hist_items: np.ndarray
    hist_timestamps: np.ndarray
    hist_ratings: np.ndarray
    rel_indptr: np.ndarray
    rel_items: np.ndarray
    now: np.ndarray

    # ------------------------------------------------------------ building
    @classmethod
    def for_valid(cls, split: Split) -> EvalSet:
        """Model selection: history = train, targets = valid rows."""
        return cls.from_parts(split.train, split.valid, name="valid")

    @classmethod
    def for_test(cls, split: Split) -> EvalSet:
        """Reporting: history = train + valid, targets = test rows.

        The valid item is part of the history, hence excluded from the ranking.
        """
        return cls.from_parts(split.train_valid(), split.test, name="test")

    @classmethod
    def from_parts(cls, history: Interactions, targets: Interactions, name: str) -> EvalSet:
        """Build from any history and targets sharing vocabularies.

        Every user with at least one target row is evaluated, including users
        without history (cold users: empty context, nothing excluded).
        Repeated targets of one item count once. A target that is also in the
        user's history is excluded from the ranking, so it is a miss; that is
        logged.
        """
        if history.users != targets.users:
            raise ValueError("history and targets have different user vocabularies")
        if history.items != targets.items:
            raise ValueError("history and targets have different item vocabularies")
        n_cols = history.items.size

        t_indptr, t_order = targets.user_histories()
        users = np.flatnonzero(np.diff(t_indptr) > 0).astype(np.int64)  # (U,)
        now = targets.timestamp[t_order[t_indptr[users]]]  # first target in time order
        r_indptr, r_pos = _gather_csr(t_indptr, users)
        seg = np.repeat(np.arange(users.size), np.diff(r_indptr))  # (rows,) position of user
        keys = _sorted_unique(seg * n_cols + targets.item_idx[t_order[r_pos]].astype(np.int64))
        rel_items = keys % n_cols
        rel_indptr = np.zeros(users.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_cols, minlength=users.size), out=rel_indptr[1:])

        h_indptr, h_order = history.user_histories()
        hist_indptr, h_pos = _gather_csr(h_indptr, users)
        rows = h_order[h_pos]
        hist_items = history.item_idx[rows].astype(np.int64)

        hseg = np.repeat(np.arange(users.size), np.diff(hist_indptr))
        in_hist = _member(np.sort(hseg * n_cols + hist_items), keys)
        if in_hist.any():
            log.warning(
                "%s: %d relevant (user, item) pair(s) are also in the user's history; they are "
                "excluded from the ranking and count as misses",
                name,
                int(in_hist.sum()),
            )
        es = cls(
            name=name,
            history=history,
            user_idx=users,
            hist_indptr=hist_indptr,
            hist_items=hist_items,
            hist_timestamps=history.timestamp[rows],
            hist_ratings=history.rating[rows],
            rel_indptr=rel_indptr,
            rel_items=rel_items,
            now=now.astype(np.int64),
        )
        log.info(
            "eval set %s: %d users (%d without history), %d relevant items",
            name,
            len(es),
            int((es.n_history == 0).sum()),
            rel_items.size,
        )
        return es

    # ------------------------------------------------------------- access
    def __len__(self) -> int:
        return int(self.user_idx.size)

    @property
    def users(self) -> Vocabulary:
        return self.history.users

    @property
    def items(self) -> Vocabulary:
        return self.history.items

    @property
    def n_history(self) -> np.ndarray:
        """(U,) history length of each user (events, repeats included)."""
        return np.diff(self.hist_indptr)

    @property
    def n_relevant(self) -> np.ndarray:
        """(U,) number of distinct relevant items of each user."""
        return np.diff(self.rel_indptr)

    def context(self, i: int) -> UserContext:
        """The context of the ``i``-th user (position, not user_idx)."""
        a, b = self.hist_indptr[i], self.hist_indptr[i + 1]
        return UserContext(
            user_idx=int(self.user_idx[i]),
            history=self.hist_items[a:b],
            timestamps=self.hist_timestamps[a:b],
            ratings=self.hist_ratings[a:b],
            now=int(self.now[i]),
        )

    def contexts(self, start: int = 0, stop: int | None = None) -> list[UserContext]:
        """Contexts of users at positions ``start:stop``."""
        stop = len(self) if stop is None else min(stop, len(self))
        return [self.context(i) for i in range(start, stop)]

    def relevant(self, i: int) -> np.ndarray:
        """Relevant item_idx of the ``i``-th user, (R_i,)."""
        return self.rel_items[self.rel_indptr[i] : self.rel_indptr[i + 1]]

    def excluded(self, i: int) -> np.ndarray:
        """Item_idx excluded from the ``i``-th user's ranking (its history), distinct."""
        return np.unique(self.hist_items[self.hist_indptr[i] : self.hist_indptr[i + 1]])

    def relevant_padded(self, start: int, stop: int) -> np.ndarray:
        """(b, R_max in the slice) relevant item_idx of positions ``start:stop``, 0-padded."""
        counts = np.diff(self.rel_indptr[start : stop + 1])
        width = int(counts.max()) if counts.size else 0
        out = np.zeros((counts.size, width), dtype=np.int64)
        col = np.arange(counts.sum()) - np.repeat(
            self.rel_indptr[start:stop] - self.rel_indptr[start], counts
        )
        row = np.repeat(np.arange(counts.size), counts)
        out[row, col] = self.rel_items[self.rel_indptr[start] : self.rel_indptr[stop]]
        return out

    def batches(self, batch_size: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` positions of consecutive batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for s in range(0, len(self), batch_size):
            yield s, min(s + batch_size, len(self))

    def exclude(self, scores: np.ndarray, start: int, stop: int) -> None:
        """Set the history items of positions ``start:stop`` to ``-inf`` in ``scores`` (B, V)."""
        ip = self.hist_indptr[start : stop + 1]
        exclude_items(scores, ip - ip[0], self.hist_items[ip[0] : ip[-1]])


# ================================================================ results
def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def _segment_of(n: np.ndarray) -> np.ndarray:
    """(U,) segment name of each history length."""
    out = np.empty(n.size, dtype=object)
    for name, lo, hi in SEGMENTS:
        out[(n >= lo) & (n < hi)] = name
    return out


@dataclass(eq=False)
class EvalResult:
    """Per-user outcome of one model on one :class:`EvalSet`.

    Attributes:
        model: Model name.
        evalset: Name of the eval set ("valid", "test").
        protocol: ``"full"`` or ``"sampled-100"`` (never mixed in one table).
        ks: Cut-offs of the rank metrics.
        user_idx: (U,) evaluated users, ascending.
        n_history: (U,) history length of each user.
        rank_offsets: (U + 1,) CSR offsets into ``ranks`` and ``relevant``.
        ranks: (T,) float64 pessimistic 1-based rank of each relevant item;
            ``+inf`` = unrankable (scored ``-inf``).
        relevant: (T,) int64 relevant item_idx.
        per_user: metric name -> (U,) float64 value per user (NaN = undefined).
        aggregates: metric name -> mean over users (NaN ignored), plus the
            catalog-level Coverage@K.
        topk: (U, max(ks)) int32 top lists, best first, 0 = padding; None for
            sampled results.
        users: User vocabulary (for ids).
        items: Item vocabulary (for ids).
        seconds: Wall time of the whole evaluation.
        scoring_seconds: Part of it spent inside ``model.score``.
    """

    model: str
    evalset: str
    protocol: str
    ks: tuple[int, ...]
    user_idx: np.ndarray
    n_history: np.ndarray
    rank_offsets: np.ndarray
    ranks: np.ndarray
    relevant: np.ndarray
    per_user: dict[str, np.ndarray]
    aggregates: dict[str, float]
    topk: np.ndarray | None
    users: Vocabulary
    items: Vocabulary
    seconds: float = 0.0
    scoring_seconds: float = 0.0
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The model name, with the protocol appended unless it is full ranking."""
        return self.model if self.protocol == FULL else f"{self.model} [{self.protocol}]"

    @property
    def n_users(self) -> int:
        return int(self.user_idx.size)

    def metrics(self) -> list[str]:
        """Metric names in report order."""
        return list(self.aggregates)

    def summary(self) -> dict[str, float]:
        """Metric -> mean over users (Coverage: the catalog share)."""
        return dict(self.aggregates)

    def values(self, metric: str) -> np.ndarray:
        """(U,) per-user values of ``metric``."""
        if metric not in self.per_user:
            raise KeyError(
                f"{self.label} has no per-user metric {metric!r}; known: {list(self.per_user)}"
            )
        return self.per_user[metric]

    def ci(
        self, metric: str, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
    ) -> tuple[float, float, float]:
        """``(mean, lo, hi)`` bootstrap CI over users.

        Coverage is a property of all lists together, not a mean over users,
        so it has no interval: ``(value, nan, nan)``.
        """
        if metric in self.per_user:
            return bootstrap_ci(self.per_user[metric], n_boot=n_boot, alpha=alpha, seed=seed)
        if metric in self.aggregates:
            return self.aggregates[metric], float("nan"), float("nan")
        raise KeyError(f"{self.label} has no metric {metric!r}; known: {list(self.aggregates)}")

    def cis(
        self, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
    ) -> dict[str, tuple[float, float, float]]:
        """Every metric's ``(mean, lo, hi)``; per-user metrics share the same resamples."""
        names = list(self.per_user)
        out: dict[str, tuple[float, float, float]] = {}
        ci: dict[str, tuple[float, float, float]] = {}
        if names:
            mat = np.stack([self.per_user[m] for m in names], axis=1)  # (U, m)
            mean, lo, hi = bootstrap_ci_many(mat, n_boot=n_boot, alpha=alpha, seed=seed)
            ci = {m: (float(mean[j]), float(lo[j]), float(hi[j])) for j, m in enumerate(names)}
        for m in self.aggregates:
            out[m] = (
                ci[m] if m in self.per_user else (self.aggregates[m], float("nan"), float("nan"))
            )
        return out

    # ------------------------------------------------------- breakdowns
    def by_segment(
        self, train: Interactions | None = None, metrics: Sequence[str] | None = None
    ) -> dict[str, dict[str, float]]:
        """Mean metrics per user activity segment (see :data:`SEGMENTS`).

        Args:
            train: If given, activity = the user's rows in ``train``; otherwise
                the user's history length in the eval set (train, or train +
                valid for test).
            metrics: Per-user metrics to report (all when None).

        Returns:
            segment -> {"users": count, metric: mean}; every segment is present
            (a segment without users has NaN means).
        """
        if train is not None:
            if train.users != self.users:
                raise ValueError("train has a different user vocabulary than this result")
            n = np.bincount(train.user_idx, minlength=self.users.size)[self.user_idx]
        else:
            n = self.n_history
        seg = _segment_of(n)
        names = list(self.per_user) if metrics is None else list(metrics)
        out: dict[str, dict[str, float]] = {}
        for name, _, _ in SEGMENTS:
            mask = seg == name
            row: dict[str, float] = {"users": int(mask.sum())}
            for m in names:
                row[m] = _nanmean(self.values(m)[mask])
            out[name] = row
        return out

    def by_genre(
        self, catalog: Catalog, metrics: Sequence[str] | None = None
    ) -> dict[str, dict[str, float]]:
        """Mean metrics by the genre(s) of the held-out item.

        A user counts under every genre of any of its relevant items (an item
        with several genres counts in each); users whose relevant items have
        no genre are grouped under ``"(no genre)"``.

        Returns:
            genre -> {"users": count, metric: mean}, genres sorted by name,
            only genres with at least one user.
        """
        if catalog.items != self.items:
            raise ValueError("the catalog's items differ from the evaluated item vocabulary")
        gm, names = catalog.genre_matrix()  # (V, G)
        g = gm[self.relevant] > 0  # (T, G) genres of each relevant item
        counts = np.diff(self.rank_offsets)
        seg = np.repeat(np.arange(counts.size), counts)
        user_g = np.zeros((counts.size, len(names)), dtype=np.int64)  # (U, G)
        np.add.at(user_g, seg, g.astype(np.int64))
        has = user_g > 0
        cols = list(self.per_user) if metrics is None else list(metrics)
        out: dict[str, dict[str, float]] = {}
        groups: list[tuple[str, np.ndarray]] = [(name, has[:, j]) for j, name in enumerate(names)]
        groups.append((NO_GENRE, np.asarray(~has.any(axis=1))))
        for name, mask in groups:
            if not mask.any():
                continue
            row: dict[str, float] = {"users": int(mask.sum())}
            for m in cols:
                row[m] = _nanmean(self.values(m)[mask])
            out[name] = row
        return out

    # ----------------------------------------------------------- export
    def export_topk(self, path: str | Path, k: int | None = None) -> Path:
        """Write the top-``k`` lists as TSV ``user_id  item_id  rank`` (original ids).

        Ranks are 1-based; padding (users with fewer than ``k`` rankable items)
        is not written. History items never appear (they were excluded).
        """
        if self.topk is None:
            raise ValueError(f"{self.label} has no top-K lists ({self.protocol} evaluation)")
        kmax = self.topk.shape[1]
        k = kmax if k is None else k
        if not 1 <= k <= kmax:
            raise ValueError(f"k must be in 1..{kmax} (the lists evaluated), got {k}")
        lists = self.topk[:, :k]  # (U, k)
        keep = lists > 0
        rows, cols = np.nonzero(keep)
        uids = np.asarray(self.users.ids(), dtype=object)
        iids = np.asarray(self.items.ids(), dtype=object)
        df = pl.DataFrame(
            {
                "user_id": pl.Series(uids[self.user_idx[rows] - 1], dtype=pl.Utf8),
                "item_id": pl.Series(iids[lists[rows, cols] - 1], dtype=pl.Utf8),
                "rank": (cols + 1).astype(np.int32),
            }
        )
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        df.write_csv(p, separator="\t")
        log.info("wrote %d top-%d rows of %s to %s", df.height, k, self.label, p)
        return p


def _rank_metrics(
    ranks: np.ndarray, offsets: np.ndarray, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"HR@{k}"] = M.hit_rate(ranks, k, offsets)
    for k in ks:
        out[f"NDCG@{k}"] = M.ndcg(ranks, k, offsets)
    for k in ks:
        out[f"MRR@{k}"] = M.mrr(ranks, k, offsets)
    return out


# ============================================================ evaluation
def _check_model(model: object, method: str) -> str:
    name = getattr(model, "name", None)
    if not isinstance(name, str) or not callable(getattr(model, method, None)):
        raise TypeError(
            f"model must have a str .name and a .{method}() method, got {type(model).__name__}"
        )
    return name


def _check_vocab(model: object, name: str, evalset: EvalSet) -> None:
    items = getattr(model, "items", None)
    if isinstance(items, Vocabulary) and items != evalset.items:
        raise ValueError(
            f"model {name!r} was fitted on {len(items)} items, the eval set has "
            f"{len(evalset.items)}: different catalogs"
        )


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(k) for k in ks}))
    if not out or out[0] < 1 or any(int(k) != k for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    return out


def _scores(model: ScoringModel, contexts: list[UserContext], n_cols: int, name: str) -> np.ndarray:
    """Model scores as a fresh float32 (B, V) array; NaN -> -inf; padding -inf."""
    # a copy: the model may hand out a view of its own state, which we mutate
    s = np.array(model.score(contexts), dtype=np.float32, copy=True)
    if s.shape != (len(contexts), n_cols):
        raise ValueError(
            f"{name}.score returned shape {s.shape}, expected ({len(contexts)}, {n_cols}) "
            "= (batch, items.size)"
        )
    nan = np.isnan(s)
    if nan.any():
        # NaN compares False with everything: left alone it would rank first
        log.warning("%s.score returned %d NaN score(s); treated as -inf", name, int(nan.sum()))
        s[nan] = -np.inf
    s[:, 0] = -np.inf
    return s


def evaluate(
    model: ScoringModel,
    evalset: EvalSet,
    *,
    ks: Sequence[int] = (5, 10, 20),
    catalog: Catalog | None = None,
    train: Interactions | None = None,
    batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Full-ranking evaluation (EVALUATION.md, Task A).

    For each batch of users the model scores every item; the user's history
    is set to ``-inf``; each relevant item's pessimistic rank among all items
    (see :func:`~primetime.eval.ranking.pessimistic_ranks`) and the top
    ``max(ks)`` list are kept. Memory is O(batch_size x items), never
    (users x items).

    Args:
        model: Anything with ``.name`` and ``.score(contexts)`` returning float32
            (B, items.size) indexed by item_idx; ``-inf`` = must not recommend.
        evalset: Users, histories and targets.
        ks: Cut-offs; HR, NDCG, MRR, Coverage, Novelty (and Diversity) at each.
        catalog: Title metadata; Diversity@K needs its genres (skipped if None).
        train: Popularity source for Novelty@K (default: the eval set's history).
        batch_size: Users scored at once.
        progress: Called as ``progress(users_done, users_total)`` after each batch.

    Returns:
        An :class:`EvalResult` labelled ``protocol="full"``.
    """
    name = _check_model(model, "score")
    _check_vocab(model, name, evalset)
    ks = _check_ks(ks)
    kmax = max(ks)
    if not len(evalset):
        log.warning("eval set %s has no users with a target; every metric is NaN", evalset.name)
    n_cols = evalset.items.size
    t0 = time.perf_counter()
    t_score = 0.0
    ranks = np.empty(evalset.rel_items.size, dtype=np.float64)
    topk = np.zeros((len(evalset), kmax), dtype=np.int32)
    for start, stop in evalset.batches(batch_size):
        contexts = evalset.contexts(start, stop)
        ts = time.perf_counter()
        scores = _scores(model, contexts, n_cols, name)  # (B, V)
        t_score += time.perf_counter() - ts
        evalset.exclude(scores, start, stop)
        rel = evalset.relevant_padded(start, stop)  # (B, R)
        r = pessimistic_ranks(scores, rel)  # (B, R), NaN at padding
        ranks[evalset.rel_indptr[start] : evalset.rel_indptr[stop]] = r[rel > 0]  # row-major = CSR
        topk[start:stop] = topk_lists(scores, kmax)[0]
        if progress is not None:
            progress(stop, len(evalset))

    per_user = _rank_metrics(ranks, evalset.rel_indptr, ks)
    aggregates = {m: _nanmean(v) for m, v in per_user.items()}
    for k in ks:
        aggregates[f"Coverage@{k}"] = (
            M.coverage(topk, k, len(evalset.items)) if len(evalset) else float("nan")
        )
    if catalog is not None:
        if catalog.items != evalset.items:
            raise ValueError("the catalog's items differ from the eval set's item vocabulary")
        genres, _ = catalog.genre_matrix()
        for k in ks:
            per_user[f"Diversity@{k}"] = M.diversity(topk, k, genres)
            aggregates[f"Diversity@{k}"] = _nanmean(per_user[f"Diversity@{k}"])
    pop_source = evalset.history if train is None else train
    if pop_source.items != evalset.items:
        raise ValueError("train has a different item vocabulary than the eval set")
    counts = np.bincount(pop_source.item_idx, minlength=n_cols)
    for k in ks:
        per_user[f"Novelty@{k}"] = M.novelty(topk, k, counts)
        aggregates[f"Novelty@{k}"] = _nanmean(per_user[f"Novelty@{k}"])

    seconds = time.perf_counter() - t0
    unrankable = int(np.isinf(ranks).sum())
    log.info(
        "%s on %s: %d users, NDCG@%d %.4f, %.2fs (%.2fs scoring), %d unrankable targets",
        name,
        evalset.name,
        len(evalset),
        ks[min(1, len(ks) - 1)],
        aggregates.get(f"NDCG@{ks[min(1, len(ks) - 1)]}", float("nan")),
        seconds,
        t_score,
        unrankable,
    )
    return EvalResult(
        model=name,
        evalset=evalset.name,
        protocol=FULL,
        ks=ks,
        user_idx=evalset.user_idx.copy(),
        n_history=evalset.n_history,
        rank_offsets=evalset.rel_indptr.copy(),
        ranks=ranks,
        relevant=evalset.rel_items.copy(),
        per_user=per_user,
        aggregates=aggregates,
        topk=topk,
        users=evalset.users,
        items=evalset.items,
        seconds=seconds,
        scoring_seconds=t_score,
        notes={"unrankable_targets": unrankable, "tie_break": "pessimistic"},
    )


# ------------------------------------------------------------- sampled
def _first_distinct(cand: np.ndarray) -> np.ndarray:
    """(n, m) bool: True where a row's value did not occur earlier in that row."""
    order = np.argsort(cand, axis=1, kind="stable")  # equal values keep draw order
    srt = np.take_along_axis(cand, order, axis=1)
    dup_sorted = np.zeros(cand.shape, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    first = np.empty(cand.shape, dtype=bool)
    np.put_along_axis(first, order, ~dup_sorted, axis=1)
    return first


def sample_negatives(evalset: EvalSet, n_negatives: int, seed: int) -> np.ndarray:
    """Per user, ``n_negatives`` distinct items it has not interacted with.

    "Interacted" = the user's history or relevant items in ``evalset``.
    Sampling is uniform without replacement, drawn for all users at once from
    ``numpy.random.default_rng(seed)``, so it does not depend on batching.

    Returns:
        (U, n_negatives) int64 item_idx; a user with fewer available items
        gets all of them, padded with 0.
    """
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    rng = np.random.default_rng(seed)
    n_users, n_items, n_cols = len(evalset), len(evalset.items), evalset.items.size
    hseg = np.repeat(np.arange(n_users), evalset.n_history)
    rseg = np.repeat(np.arange(n_users), evalset.n_relevant)
    seen = _sorted_unique(
        np.concatenate([hseg * n_cols + evalset.hist_items, rseg * n_cols + evalset.rel_items])
    )  # sorted keys user_pos * n_cols + item_idx
    n_seen = np.bincount(seen // n_cols, minlength=n_users)
    out = np.zeros((n_users, n_negatives), dtype=np.int64)
    pending = np.arange(n_users)
    for factor in (2, 8):  # vectorised rejection rounds; stragglers handled below
        if not pending.size:
            break
        m = factor * n_negatives
        cand = rng.integers(1, n_items + 1, size=(pending.size, m))  # (P, m)
        key = pending[:, None] * n_cols + cand
        ok = ~_member(seen, key) & _first_distinct(cand)
        enough = ok.sum(axis=1) >= n_negatives
        take = ok[enough] & (np.cumsum(ok[enough], axis=1) <= n_negatives)
        out[pending[enough]] = cand[enough][take].reshape(-1, n_negatives)
        pending = pending[~enough]
    for i in pending:  # users who have seen most of the catalog, or tiny catalogs
        mine = seen[(seen >= i * n_cols) & (seen < (i + 1) * n_cols)] - i * n_cols
        avail = np.setdiff1d(np.arange(1, n_items + 1), mine)
        pick = rng.choice(avail, size=min(n_negatives, avail.size), replace=False)
        out[i, : pick.size] = pick
    short = int((n_items - n_seen < n_negatives).sum())
    if short:
        log.warning(
            "%d user(s) have fewer than %d unseen items; they get fewer negatives",
            short,
            n_negatives,
        )
    return out


def evaluate_sampled(
    model: ScoringModel,
    evalset: EvalSet,
    *,
    n_negatives: int = 100,
    seed: int = 42,
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Sampled evaluation, for comparison with papers only (always labelled).

    Each relevant item is ranked among the user's relevant items plus
    ``n_negatives`` items the user has not interacted with (see
    :func:`sample_negatives`), with pessimistic ties. Only HR, NDCG and MRR
    are computed; the result's ``protocol`` is ``"sampled-<n>"`` (e.g.
    ``"sampled-100"``) and its ``label`` says so.
    """
    name = _check_model(model, "score")
    _check_vocab(model, name, evalset)
    ks = _check_ks(ks)
    negatives = sample_negatives(evalset, n_negatives, seed)  # (U, n)
    n_cols = evalset.items.size
    t0 = time.perf_counter()
    t_score = 0.0
    ranks = np.empty(evalset.rel_items.size, dtype=np.float64)
    for start, stop in evalset.batches(batch_size):
        contexts = evalset.contexts(start, stop)
        ts = time.perf_counter()
        scores = _scores(model, contexts, n_cols, name)
        t_score += time.perf_counter() - ts
        evalset.exclude(scores, start, stop)
        rel = evalset.relevant_padded(start, stop)  # (B, R)
        cand = np.concatenate([rel, negatives[start:stop]], axis=1)  # (B, R + n); 0 = padding
        sub = np.take_along_axis(scores, cand, axis=1)  # column 0 is -inf: padding never counts
        cols = np.broadcast_to(np.arange(rel.shape[1]), rel.shape)
        r = pessimistic_ranks(sub, cols, valid=rel > 0)
        ranks[evalset.rel_indptr[start] : evalset.rel_indptr[stop]] = r[rel > 0]
        if progress is not None:
            progress(stop, len(evalset))
    per_user = _rank_metrics(ranks, evalset.rel_indptr, ks)
    aggregates = {m: _nanmean(v) for m, v in per_user.items()}
    label = sampled_label(n_negatives)
    return EvalResult(
        model=name,
        evalset=evalset.name,
        protocol=label,
        ks=ks,
        user_idx=evalset.user_idx.copy(),
        n_history=evalset.n_history,
        rank_offsets=evalset.rel_indptr.copy(),
        ranks=ranks,
        relevant=evalset.rel_items.copy(),
        per_user=per_user,
        aggregates=aggregates,
        topk=None,
        users=evalset.users,
        items=evalset.items,
        seconds=time.perf_counter() - t0,
        scoring_seconds=t_score,
        notes={"n_negatives": n_negatives, "seed": seed, "tie_break": "pessimistic"},
    )


# ============================================================= ratings
@dataclass(eq=False)
class RatingResult:
    """Per-row outcome of rating prediction (EVALUATION.md, Task B).

    Attributes:
        model: Model name.
        evalset: Name of the rows evaluated ("test").
        user_idx: (N,) user of each rated row.
        item_idx: (N,) item of each rated row.
        pred: (N,) float64 predictions.
        true: (N,) float64 true ratings.
    """

    model: str
    evalset: str
    user_idx: np.ndarray
    item_idx: np.ndarray
    pred: np.ndarray
    true: np.ndarray
    protocol: str = "ratings"

    @property
    def label(self) -> str:
        return self.model

    @property
    def n_rows(self) -> int:
        return int(self.true.size)

    @property
    def abs_errors(self) -> np.ndarray:
        """(N,) absolute error per row."""
        return M.absolute_errors(self.pred, self.true)

    @property
    def sq_errors(self) -> np.ndarray:
        """(N,) squared error per row."""
        return M.squared_errors(self.pred, self.true)

    def summary(self) -> dict[str, float]:
        return {"MAE": M.mae(self.pred, self.true), "RMSE": M.rmse(self.pred, self.true)}

    def ci(
        self, metric: str, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
    ) -> tuple[float, float, float]:
        """``(value, lo, hi)`` bootstrap CI over rating rows.

        RMSE's interval is the square root of the interval of the mean squared
        error (the square root is monotone, so percentiles carry over).
        """
        if metric == "MAE":
            return bootstrap_ci(self.abs_errors, n_boot=n_boot, alpha=alpha, seed=seed)
        if metric == "RMSE":
            m, lo, hi = bootstrap_ci(self.sq_errors, n_boot=n_boot, alpha=alpha, seed=seed)
            return float(np.sqrt(m)), float(np.sqrt(lo)), float(np.sqrt(hi))
        raise KeyError(f"rating metric must be 'MAE' or 'RMSE', got {metric!r}")

    def cis(
        self, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
    ) -> dict[str, tuple[float, float, float]]:
        return {m: self.ci(m, n_boot=n_boot, seed=seed, alpha=alpha) for m in ("MAE", "RMSE")}


def evaluate_ratings(
    model: RatingModel, test: Interactions, *, name: str = "test", batch_size: int = 1 << 16
) -> RatingResult:
    """MAE / RMSE of ``model.predict_ratings`` on the rated rows of ``test``.

    Args:
        model: Anything with ``.name`` and ``.predict_ratings(user_idx, item_idx)``
            taking (N,) index arrays and returning (N,) floats.
        test: Rows to predict; rows without a rating (NaN) are skipped.
        name: Label of the rows ("test").
        batch_size: Rows per ``predict_ratings`` call.

    Raises:
        ValueError: if no row is rated, or the model returns a wrong shape or NaN.
    """
    mname = _check_model(model, "predict_ratings")
    rated = ~np.isnan(test.rating)
    if not rated.any():
        raise ValueError("evaluate_ratings needs rated rows; test has no ratings")
    if not rated.all():
        log.info("evaluate_ratings: skipping %d unrated row(s)", int((~rated).sum()))
    u = test.user_idx[rated].astype(np.int64)
    i = test.item_idx[rated].astype(np.int64)
    true = test.rating[rated].astype(np.float64)
    pred = np.empty(true.size, dtype=np.float64)
    for s in range(0, true.size, batch_size):
        ub, ib = u[s : s + batch_size], i[s : s + batch_size]
        p = np.asarray(model.predict_ratings(ub, ib), dtype=np.float64)
        if p.shape != ub.shape:
            raise ValueError(f"{mname}.predict_ratings returned shape {p.shape} for {ub.size} rows")
        pred[s : s + p.size] = p
    if np.isnan(pred).any():
        raise ValueError(
            f"{mname}.predict_ratings returned {int(np.isnan(pred).sum())} NaN prediction(s)"
        )
    return RatingResult(model=mname, evalset=name, user_idx=u, item_idx=i, pred=pred, true=true)
