"""Full-ranking evaluation (EVALUATION.md, Task A) and its per-user result.

:func:`evaluate` asks a model for scores in batches, ranks **every** catalog
item, and returns an :class:`EvalResult` with per-user values, so that
confidence intervals, paired tests and breakdowns (:data:`SEGMENTS`, genres)
can be computed afterwards. The checks and batch scoring shared with the
sampled and rating evaluations are here too.

Ties are broken **pessimistically** for rank metrics: a relevant item's rank
counts every other item with an equal score as ranked above it, so a model
that scores everything the same gets no credit. Top-K lists (coverage,
diversity, novelty, export) break ties by lower item_idx instead, so a list
is well defined; both rules are independent of batching.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.data.vocab import Vocabulary
from primetime.eval import metrics as M
from primetime.eval.evalset import EvalSet
from primetime.eval.significance import bootstrap_ci, bootstrap_ci_many
from primetime.ranking import pessimistic_ranks, topk_lists
from primetime.types import UserContext

log = logging.getLogger(__name__)

__all__ = [
    "FULL",
    "SEGMENTS",
    "EvalResult",
    "ScoringModel",
    "candidates_label",
    "evaluate",
    "is_ranking",
    "protocol_title",
]

#: Protocol label of full-ranking results.
FULL = "full"
#: Prefix of the protocol label of results ranked among a candidate set (Task C).
CANDIDATES = "candidates-"


def candidates_label(n: int) -> str:
    """Protocol label of a ranking among ``n`` candidate items, e.g. ``"candidates-168"``."""
    return f"{CANDIDATES}{n}"


def is_ranking(protocol: str) -> bool:
    """Whether ``protocol`` ranks every allowed item: full ranking or a candidate set
    (not a sampled variant); such results are a report's primary section."""
    return protocol == FULL or protocol.startswith(CANDIDATES)


def protocol_title(protocol: str) -> str:
    """Words for a protocol label in table titles and report headings."""
    if protocol == FULL:
        return "full ranking"
    if protocol.startswith(CANDIDATES):
        return f"ranked among {protocol[len(CANDIDATES) :]} candidate titles only"
    return protocol


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
        protocol: ``"full"``, ``"candidates-<n>"`` (ranked among a candidate set,
            Task C) or ``"sampled-100"`` (never mixed in one table).
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
        """The model name, with the protocol appended for a sampled variant."""
        return self.model if is_ranking(self.protocol) else f"{self.model} [{self.protocol}]"

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

    def popularity_buckets(
        self, train: Interactions
    ) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
        """Users by how often their held-out item was watched in ``train``.

        Thirds by the held-out item's training events (with several relevant
        items, the median of theirs), split at the 1/3 and 2/3 quantiles over
        users: the rarest third, the middle and the most watched. Where side
        information should help, a rarely watched title, is a question a mean over
        users hides.

        Returns:
            ``(events, buckets)``: (U,) training events of each user's held-out
            item, and ``(name, (U,) bool mask)`` per bucket, rarest first, empty
            buckets left out; no buckets when the held-out items' counts take fewer
            than three values (new titles, never watched in train, are all one bucket).
        """
        if train.items != self.items:
            raise ValueError("train has a different item vocabulary than this result")
        counts = np.bincount(train.item_idx, minlength=self.items.size)[self.relevant]  # (T,)
        bounds = zip(self.rank_offsets[:-1], self.rank_offsets[1:], strict=True)
        events = np.array([np.median(counts[a:b]) if b > a else np.nan for a, b in bounds])
        ok = ~np.isnan(events)  # (U,)
        if np.unique(events[ok]).size < 3:
            return events, []
        lo, hi = np.quantile(events[ok], [1 / 3, 2 / 3])
        buckets = [
            ("rarest third", ok & (events <= lo)),
            ("middle third", ok & (events > lo) & (events <= hi)),
            ("most watched third", ok & (events > hi)),
        ]
        return events, [(name, mask) for name, mask in buckets if mask.any()]

    def by_popularity(
        self, train: Interactions, metrics: Sequence[str] | None = None
    ) -> dict[str, dict[str, float]]:
        """Mean metrics per :meth:`popularity_buckets` bucket.

        Returns:
            bucket -> {"users", "events_lo", "events_hi" (the bucket's range of
            training events of the held-out item), metric: mean}, rarest first.
        """
        events, buckets = self.popularity_buckets(train)
        cols = list(self.per_user) if metrics is None else list(metrics)
        out: dict[str, dict[str, float]] = {}
        for name, mask in buckets:
            row: dict[str, float] = {
                "users": int(mask.sum()),
                "events_lo": float(events[mask].min()),
                "events_hi": float(events[mask].max()),
            }
            for m in cols:
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
        is not written. History items never appear (they were excluded), nor, with
        a candidate set, any item outside it.
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
    (and, when the eval set has a candidate set, every non-candidate item) is
    set to ``-inf``; each relevant item's pessimistic rank among all items
    (see :func:`~primetime.ranking.pessimistic_ranks`) and the top
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
        An :class:`EvalResult` labelled ``protocol="full"``, or
        ``"candidates-<n>"`` for an eval set with a candidate set (then
        Coverage@K is the share of the candidates).
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
        if not len(evalset):
            aggregates[f"Coverage@{k}"] = float("nan")
        elif evalset.candidates is None:
            aggregates[f"Coverage@{k}"] = M.coverage(topk, k, len(evalset.items))
        else:  # every listed item is a candidate: the share of the candidates listed
            listed = np.unique(topk[:, :k])
            aggregates[f"Coverage@{k}"] = float((listed > 0).sum() / evalset.n_candidates)
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
        protocol=FULL if evalset.candidates is None else candidates_label(evalset.n_candidates),
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
        notes={
            "unrankable_targets": unrankable,
            "tie_break": "pessimistic",
            "candidates": evalset.n_candidates,
        },
    )
