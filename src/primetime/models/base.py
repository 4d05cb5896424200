"""The Recommender protocol every model follows, and helpers shared by models.

A model scores every catalog item for a batch of :class:`UserContext` and
returns a float32 array of shape (B, items.size) indexed by item_idx. Column 0
is padding and always ``-inf``; ``-inf`` anywhere means "must not recommend".
Seen items are NOT removed by ``score`` (a re-watch model may want them); the
pipeline and the evaluation protocol remove them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from primetime.artifacts import Bundle, check_same_catalog, load_bundle, save_bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.models.retrieval import ItemIndex, RetrievalConfig, scores_from_candidates
from primetime.types import UserContext

log = logging.getLogger(__name__)


@dataclass
class FitReport:
    """What ``fit`` did: wall time, epochs, validation curve."""

    seconds: float = 0.0
    epochs: int | None = None
    best_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


#: ``validation(train, valid)`` -> ``score(model)``: a metric of the model on
#: ``valid`` given ``train`` as history, higher is better. Built above the
#: models (``primetime.eval.validation``), so models never import ``eval``.
Validation = Callable[[Interactions, Interactions], Callable[["Recommender"], float]]


@dataclass(frozen=True)
class PriorFit:
    """A model already fit on the same log as the fit at hand, with its report: what a
    fit that contains other models (an ensemble's members) may bind instead of fitting
    the same model again (:attr:`FitOptions.prior`)."""

    model: Recommender
    report: FitReport


@dataclass(frozen=True)
class FitOptions:
    """How to run a fit (not what to learn: that is the model's config).

    Attributes:
        run_dir: Where the training loop writes checkpoints, its log and curve;
            None keeps everything in memory.
        resume: Continue from ``run_dir``'s checkpoint when it exists.
        device: "cpu", "cuda[:N]" or None (the model config's own ``device``).
        threads: torch intra-op threads for this fit (None: leave as is).
        validation: Builds the early-stopping metric for (train, valid) pairs;
            None: no validation (train the configured epochs).
        select: When ``valid`` is not given, may a model hold part of ``train``
            out to choose its epochs? False for a final fit on the whole log
            with settings already chosen (every event is learned from).
        retrieval: After the fit, build a FAISS index over the model's item table
            and score through it (:meth:`Recommender.enable_retrieval`); None
            (default): exact scoring of every item.
        init_from: Warm start: a saved version of the same model (a bundle folder, e.g.
            a registered version's ``path``) whose weights the fit starts from, per-title
            rows matched by title id (:mod:`primetime.models.warmstart`); only for
            models with ``supports_warm_start``. None (default): a fresh init.
        prior: Models already fit on exactly this fit's ``train`` (and ``valid``), by
            name, with their reports: a model made of other models (``ensemble``) binds
            one whose config equals what it would build instead of fitting it again.
            The staged suite hands each stage the fits of the earlier ones.
        previous: For a refit on the whole log, the selection fit it repeats with the
            settings valid chose; a model may keep what it learned there instead of
            learning it again (the ensemble keeps its ranker, see
            ``EnsembleConfig.refit_ranker``). None: nothing to keep.
    """

    run_dir: Path | None = None
    resume: bool = False
    device: str | None = None
    threads: int | None = None
    validation: Validation | None = None
    select: bool = True
    retrieval: RetrievalConfig | None = None
    init_from: Path | None = None
    prior: Mapping[str, PriorFit] = field(default_factory=dict)
    previous: Recommender | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"FitOptions.threads must be >= 1, got {self.threads}")
        if self.resume and self.run_dir is None:
            raise ValueError("FitOptions.resume needs a run_dir to resume from")

    def validator(
        self, train: Interactions, valid: Interactions | None
    ) -> Callable[[Recommender], float] | None:
        """The validation metric for ``(train, valid)``, or None without one."""
        if self.validation is None or valid is None or not len(valid):
            return None
        return self.validation(train, valid)


class Recommender(ABC):
    """Base class of every model.

    Subclasses set ``name`` and ``config_class``, implement ``_fit``, ``score``
    and the ``_state`` / ``_restore`` pair used by save / load.
    """

    name: ClassVar[str]
    task: ClassVar[str] = "topn"  # "topn" or "rating"
    config_class: ClassVar[type]
    #: Config overrides tried by ``benchmark --tune``, chosen on valid only.
    tuning_grid: ClassVar[list[dict[str, Any]]] = []
    #: Side data the model needs prepared before ``fit``: "text" makes the life cycle
    #: encode ``side.item_texts`` into ``side.text_vectors`` (cached on disk).
    uses: ClassVar[frozenset[str]] = frozenset()
    #: Can ``fit`` start from another version's weights (``FitOptions.init_from``)?
    supports_warm_start: ClassVar[bool] = False

    def __init__(self, config: Any | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(
                f"{self.name} needs a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.items: Vocabulary | None = None
        self.users: Vocabulary | None = None
        #: Further string vocabularies a model learns (entities, relations …), saved
        #: with the bundle as ``vocab-<name>.txt``.
        self.vocabs: dict[str, Vocabulary] = {}
        #: Member models by role -> registry key ``"name:vN"`` (an ensemble's members).
        self.members: dict[str, str] = {}
        #: Candidate retrieval (:meth:`enable_retrieval`): the index and the item table
        #: it was built from; None scores every item exactly.
        self.retrieval: ItemIndex | None = None
        self._retrieval_table: np.ndarray | None = None

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None = None,
        side: SideData | None = None,
        options: FitOptions | None = None,
    ) -> FitReport:
        """Fit on ``train``; ``valid`` (same vocabularies) may drive early stopping.

        Args:
            train: Training interactions.
            valid: Held-out interactions for model selection only, or None.
            side: Catalog, knowledge graph, user metadata and item texts; each
                model uses what it can.
            options: Run directory, resume, device, threads and the validation
                metric (see :class:`FitOptions`).
        """
        if len(train) == 0:
            raise ValueError(f"{self.name}: cannot fit on an empty training log")
        side = side if side is not None else SideData()
        options = options if options is not None else FitOptions()
        if options.init_from is not None and not self.supports_warm_start:
            raise ValueError(
                f"{self.name}: cannot warm-start (FitOptions.init_from); models that can: "
                "see Recommender.supports_warm_start"
            )
        if side.catalog is not None:
            check_same_catalog(side.catalog.items, train.items, where="the catalog")
        if side.users is not None and len(side.users.users) != len(train.users):
            raise ValueError(
                f"{self.name}: side.users holds {len(side.users.users)} users, the training "
                f"log {len(train.users)}; pass the users of the same data set"
            )
        if valid is not None and len(valid) and options.validation is None:
            log.info(
                "%s: valid given without FitOptions.validation: no early stopping on it "
                "(primetime.lifecycle.fit_model passes one)",
                self.name,
            )
        self.items, self.users = train.items, train.users
        threads = torch.get_num_threads()
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        t0 = time.perf_counter()
        try:
            report = self._fit(train, valid=valid, side=side, options=options) or FitReport()
        finally:
            torch.set_num_threads(threads)
        report.seconds = time.perf_counter() - t0
        if options.retrieval is not None:
            self.enable_retrieval(options.retrieval)
        return report

    @abstractmethod
    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport | None: ...

    # ---------------------------------------------------------------- score
    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """Scores of every item for each context.

        Args:
            contexts: B users, each with a history of item indices in time order.

        Returns:
            float32 array (B, items.size) indexed by item_idx; column 0 (padding)
            and items the model must not recommend are -inf.

        Raises:
            ValueError: if a history holds an index outside the model's catalog.
        """
        self._check_histories(contexts)
        if self.retrieval is not None:
            return self._score_retrieved(contexts)
        return self._score(contexts)

    def _check_histories(self, contexts: Sequence[UserContext]) -> None:
        items = self._require_fitted()
        for c in contexts:
            if c.history.size and c.history.max() >= items.size:
                raise ValueError(
                    f"{self.name}: history holds item_idx {int(c.history.max())}, but the model "
                    f"knows {len(items)} items"
                )

    @abstractmethod
    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray: ...

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predicted ratings (N,) for pairs of indices; only models with ``task == "rating"``."""
        raise NotImplementedError(f"model {self.name!r} does not predict ratings")

    def score_items(self, contexts: Sequence[UserContext], items: np.ndarray) -> np.ndarray:
        """Scores of the given item indices only, shape (B, len(items)).

        With retrieval enabled these are the exact scores of exactly these items
        (a candidate set chosen by the caller is not narrowed by the index)."""
        idx = np.asarray(items, dtype=np.int64)
        if self.retrieval is not None and self._retrieval_table is not None:
            self._check_histories(contexts)
            users = self.user_vectors(contexts)  # (B, D)
            out = (users @ self._retrieval_table[idx].T).astype(np.float32)  # (B, N)
            out[:, idx == 0] = -np.inf
            return out
        return self.score(contexts)[:, idx]

    # ------------------------------------------------- candidate retrieval
    def item_vectors(self) -> np.ndarray | None:
        """The (V, D) float32 item table when ``score(c)[i] == user_vectors([c])[0] @
        item_vectors()[i]`` for every real item i (a dot-product model); None (the
        default) for models whose score is not one."""
        return None

    def user_vectors(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, D) float32 user vectors matching :meth:`item_vectors`."""
        raise NotImplementedError(f"model {self.name!r} has no user vectors")

    def enable_retrieval(self, config: RetrievalConfig | None) -> bool:
        """Score through a FAISS index over the item table (see
        :mod:`primetime.models.retrieval`), or exactly again with ``None``.

        Call after ``fit`` or ``load`` (``FitOptions.retrieval`` does it after fit);
        ``extend_items`` rebuilds the index. Then ``score`` returns, per user, the exact
        scores of the ``config.candidates`` (+ history length) items the index
        retrieves and ``-inf`` for every other item.

        Returns:
            True when retrieval is on; False (scoring stays exact, with a log line)
            when the model is not a dot-product model or the catalog is smaller than
            ``config.min_items``.
        """
        self._require_fitted()
        self.retrieval, self._retrieval_table = None, None
        if config is None:
            return False
        table = self.item_vectors()
        if table is None:
            log.info("%s: no item table, retrieval not available: exact scoring", self.name)
            return False
        if len(table) - 1 < config.min_items:
            log.info(
                "%s: %d items < retrieval.min_items %d: exact scoring",
                self.name,
                len(table) - 1,
                config.min_items,
            )
            return False
        t0 = time.perf_counter()
        anchor = self._mean_user_vector(config) if config.common else None
        self._retrieval_table = np.ascontiguousarray(table, dtype=np.float32)
        self.retrieval = ItemIndex(self._retrieval_table, config, anchor=anchor)
        log.info(
            "%s: %s index over %d items built in %.1fs",
            self.name,
            config.kind,
            len(table) - 1,
            time.perf_counter() - t0,
        )
        return True

    def _mean_user_vector(self, config: RetrievalConfig) -> np.ndarray:
        """(D,) mean of the user vectors of ``config.probes`` single-title histories
        (titles drawn with ``config.seed``): the part of a user vector every user shares,
        whose best items :class:`ItemIndex` adds to every user's candidates."""
        items = self._require_fitted()
        rng = np.random.default_rng(config.seed)
        picks = rng.choice(
            np.arange(1, items.size), size=min(config.probes, len(items)), replace=False
        )
        probes = [UserContext(None, np.array([i], dtype=np.int64)) for i in picks]
        return self.user_vectors(probes).mean(axis=0)  # (D,)

    def _score_retrieved(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, V): exact scores of each user's retrieved candidates, -inf elsewhere."""
        index, table = self.retrieval, self._retrieval_table
        assert index is not None and table is not None
        if not contexts:
            return np.empty((0, table.shape[0]), dtype=np.float32)
        users = self.user_vectors(contexts)  # (B, D)
        need = index.config.candidates + np.array([len(np.unique(c.history)) for c in contexts])
        found = index.candidates(users, need)  # (B, N)
        out = scores_from_candidates(users, table, found)  # (B, V)
        blank = ~users.any(axis=1)  # a zero vector scores every item 0: nothing to retrieve
        if blank.any():
            out[blank, 1:] = 0.0
        return out

    # ------------------------------------------------------- new titles
    def extend_items(self, items: Vocabulary, side: SideData) -> bool:
        """Grow the model to titles added after it was trained, without retraining.

        Args:
            items: The model's item vocabulary with the new ids appended (the old ids
                first, in the same order).
            side: Side data of the grown catalog: ``catalog`` (every title, old and
                new), the graph's triples (those of the new titles included),
                ``item_texts`` and ``text_vectors`` (items.size rows; a model reads the
                rows of the new titles only, so the old rows may be left zero).

        Returns:
            True when the model now scores ``items`` (the new titles from what it
            knows of their content; the old titles' scores do not change); False when
            it cannot score a title it was not trained on, in which case the model is
            left as it was (a caller gives the new titles ``-inf`` in it).

        Raises:
            ValueError: if ``items`` does not start with the model's own vocabulary.
        """
        old = self._require_fitted()
        n_old = old.size
        if len(items) < len(old) or items.ids()[: len(old)] != old.ids():
            raise ValueError(
                f"{self.name}: extend_items needs the model's {len(old)} ids first, in order, "
                "with the new ids appended"
            )
        if len(items) == len(old):
            return True
        if side.catalog is not None and side.catalog.items != items:
            raise ValueError(f"{self.name}: side.catalog does not hold the grown vocabulary")
        if not self._extend(items, side, n_old):
            return False
        self.items = items
        if self.retrieval is not None:  # the new titles enter the index too
            self.enable_retrieval(self.retrieval.config)
        return True

    def _extend(self, items: Vocabulary, side: SideData, n_old: int) -> bool:
        """Grow the model's per-title state from ``n_old`` to ``items.size`` rows; False
        (the default) when the model cannot (it must then be left unchanged)."""
        return False

    def refit_overrides(self, report: FitReport) -> dict[str, Any]:
        """Config values that pin what the selection fit (``report``, early-stopped on
        valid) chose, for a refit on the whole log with nothing left to stop on: by
        default the best epoch for a model with an ``epochs`` option."""
        has_epochs = any(f.name == "epochs" for f in dataclasses.fields(self.config_class))
        return {"epochs": int(report.best_epoch)} if has_epochs and report.best_epoch else {}

    # ------------------------------------------------------------ members
    def member_models(self) -> dict[str, Recommender]:
        """Fitted member models by role (an ensemble's); {} for a model without members.

        The registry registers each as a version of its own and records its key in
        :attr:`members` before it saves this model (models never import the registry).
        """
        return {}

    def bind_members(self, models: dict[str, Recommender]) -> None:
        """Attach the member models :attr:`members` names (the registry loads them by key).

        Raises:
            ValueError: if this model has no members (the default).
        """
        if models:
            raise ValueError(f"{self.name} has no members; got {sorted(models)}")

    def _require_fitted(self) -> Vocabulary:
        if self.items is None:
            raise RuntimeError(f"{self.name} is not fitted; call fit() or load() first")
        return self.items

    # ------------------------------------------------------- save and load
    def save(self, directory: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write the model as a bundle (see :mod:`primetime.artifacts`)."""
        items = self._require_fitted()
        return save_bundle(
            directory,
            model=self.name,
            config=self.config,
            arrays=self._state(),
            items=items,
            users=self.users,
            vocabs=self.vocabs,
            members=self.members,
            meta=meta,
        )

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Read a bundle written by :meth:`save`."""
        bundle = load_bundle(directory, expect_model=cls.name)
        model = cls(config_from_dict(cls.config_class, bundle.config))
        model.items, model.users = bundle.items, bundle.users
        model.vocabs, model.members = dict(bundle.vocabs), dict(bundle.members)
        model._restore(bundle)
        return model

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, bundle: Bundle) -> None:  # noqa: B027 - optional hook
        pass


def config_from_dict(config_class: type, values: dict[str, Any]) -> Any:
    """Build a config dataclass, refusing unknown keys and values of the wrong kind for a
    number, flag or text option (``--set epochs=abc``), named in the error."""
    names = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"{config_class.__name__} has no option(s) {unknown}; known: {sorted(names)}"
        )
    for key, value in values.items():
        default = names[key].default
        if not _same_kind(default, value):
            raise ValueError(
                f"{config_class.__name__}.{key}: expected {type(default).__name__} "
                f"(default {default!r}), got {value!r}"
            )
    return config_class(**values)


def _same_kind(default: Any, value: Any) -> bool:
    """Whether ``value`` may replace a scalar default (an int where a float is expected;
    a bool only for a bool); other defaults (None, tuples …) are left to the config."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    return True


def history_matrix(
    contexts: Sequence[UserContext], n_cols: int, *, dtype: type = np.float32
) -> sp.csr_matrix:
    """Binary (B, n_cols) CSR matrix of each context's history (repeats count once)."""
    lengths = np.fromiter((len(c.history) for c in contexts), dtype=np.int64, count=len(contexts))
    indptr = np.zeros(len(contexts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.concatenate([c.history for c in contexts]) if indptr[-1] else np.zeros(0, np.int64)
    if indices.size and indices.max() >= n_cols:
        raise ValueError(
            f"history holds item_idx {indices.max()} outside the model's {n_cols - 1} items"
        )
    m = sp.csr_matrix(
        (np.ones(indices.size, dtype=dtype), indices, indptr), shape=(len(contexts), n_cols)
    )
    m.sum_duplicates()
    m.data[:] = 1
    return m


def mask_padding(scores: np.ndarray) -> np.ndarray:
    """Set column 0 (padding) to -inf in place and return the array as float32."""
    scores = np.asarray(scores, dtype=np.float32)
    scores[:, 0] = -np.inf
    return scores


def recency_history(contexts: Sequence[UserContext], n_cols: int, decay: float) -> sp.csr_matrix:
    """(B, n_cols) CSR history weights ``decay ** (steps from the end)``; a title seen
    more than once weighs as its latest event. ``decay = 1``: :func:`history_matrix`."""
    h = history_matrix(contexts, n_cols)
    if decay >= 1.0:
        return h
    h = h.tolil()
    for row, c in enumerate(contexts):
        # later occurrences overwrite earlier: the weight of the most recent event wins
        h[row, c.history] = decay ** np.arange(len(c.history) - 1, -1, -1)
    return h.tocsr()


class ItemItemRecommender(Recommender):
    """A model whose scores are the user's recency-weighted history times a sparse
    (V, V) title-title matrix, :attr:`weights` (``itemknn``'s similarities, ``ease``'s
    regression weights): scoring and the bundle's arrays are this class's; a subclass
    learns the matrix in ``_fit`` and has ``recency_decay`` in its config."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.weights: sp.csr_matrix | None = None  # (V, V) float32, row/col 0 padding

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        items = self._require_fitted()
        assert self.weights is not None
        h = recency_history(contexts, items.size, self.config.recency_decay)  # (B, V)
        return mask_padding((h @ self.weights).toarray())  # (B, V)

    def _state(self) -> dict[str, np.ndarray]:
        w = self.weights
        assert w is not None
        return {"data": w.data, "indices": w.indices, "indptr": w.indptr}

    def _restore(self, bundle: Bundle) -> None:
        a, n = bundle.arrays, bundle.items.size
        self.weights = sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=(n, n))


def top_k(
    scores: np.ndarray, k: int, *, exclude: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per row, best first, ties broken by lower item_idx.

    Args:
        scores: (B, V) scores; modified in place when ``exclude`` is given.
        k: How many items per row.
        exclude: Per row, item indices to leave out (set to -inf).

    Returns:
        ``(items, values)``, each (B, k). Rows with fewer than ``k`` allowed items
        are padded with item 0 and value -inf.
    """
    from primetime.ranking import topk_lists

    if exclude is not None:
        for row, ex in enumerate(exclude):
            scores[row, ex] = -np.inf
    return topk_lists(np.nan_to_num(scores, nan=-np.inf), k)
