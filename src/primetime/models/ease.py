"""EASE^R (Steck, 2019): a shallow linear autoencoder over titles, learned in closed form.

The item-item weights ``B`` minimise ``||X - X B||^2 + lambda ||B||^2`` with a zero
diagonal: ``P = (X^T X + lambda I)^-1``, ``B = I - P diag(1 / diag(P))``, diagonal
set to 0. A user's scores are their (recency-weighted) history times ``B``. One of
the strongest classic baselines on MovieLens-style logs. The fit inverts a dense
matrix over the titles (O(V^3) time, V^2 memory), so it is learned over the
``max_items`` most-watched titles (all of them on catalogs that size or smaller;
the others score 0: the rarest titles, which other models rank), and each title
keeps its ``neighbours`` weights largest in size, so a request is a sparse product whatever
the catalog's size.

Written with numpy rather than taken from a library: the model is the three lines
above (``implicit`` has no EASE; RecBole's pulls its whole framework in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.models.base import FitOptions, FitReport, ItemItemRecommender


@dataclass(frozen=True)
class EASEConfig:
    """Attributes:
    l2: The ridge penalty lambda on the weights (larger: smoother, closer to popularity).
    recency_decay: Weight of a history title = ``recency_decay ** (steps from the end)``;
        1.0 treats the history as a set (the paper's model). 500 and 0.9 were chosen
        on valid over :attr:`EASERecommender.tuning_grid` (ml-100k: valid NDCG@10
        0.1250, 0.1240 at 1000 and 0.8, 0.082 as a set; README "Learned fusion").
    max_items: Titles the weights are learned over, the most-watched (the dense
        inverse: 10,000 take 0.8 GB in float64 and about a minute on two cores).
    neighbours: Weights kept per title, the largest in size (negative weights carry
        information too); the rest set to 0; 0 keeps all.
    """

    l2: float = 500.0
    recency_decay: float = 0.9
    max_items: int = 10_000
    neighbours: int = 500

    def __post_init__(self) -> None:
        if self.l2 <= 0:
            raise ValueError(f"l2 must be > 0, got {self.l2}")
        if not 0 < self.recency_decay <= 1:
            raise ValueError(f"recency_decay must be in (0, 1], got {self.recency_decay}")
        if self.max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {self.max_items}")
        if self.neighbours < 0:
            raise ValueError(f"neighbours must be >= 0, got {self.neighbours}")


class EASERecommender(ItemItemRecommender):
    """score(u, j) = sum over history titles i of w_i * B[i, j]."""

    name = "ease"
    config_class = EASEConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"l2": l2, "recency_decay": d}
        for l2 in (250.0, 500.0, 1000.0)
        for d in (0.7, 0.8, 0.9, 1.0)
    ]

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        cfg = self.config
        x = train.matrix().tocsc()  # (U, V) binary, column 0 padding
        n = x.shape[1]
        counts = np.asarray(x.sum(axis=0)).ravel()  # (V,)
        counts[0] = -1  # padding is never learned over
        learned = np.sort(np.argsort(-counts, kind="stable")[: min(cfg.max_items, n - 1)])
        gram = (x[:, learned].T @ x[:, learned]).toarray().astype(np.float64)  # (L, L)
        gram[np.diag_indices(learned.size)] += cfg.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]  # B = I - P diag(1/diag(P)), off the diagonal
        np.fill_diagonal(b, 0.0)
        k = cfg.neighbours
        if 0 < k < learned.size:  # each title (row) keeps its k weights largest in size
            cut = np.argpartition(-np.abs(b), k - 1, axis=1)[:, k:]
            np.put_along_axis(b, cut, 0.0, axis=1)
        small = sp.coo_matrix(b.astype(np.float32))
        self.weights = sp.csr_matrix(
            (small.data, (learned[small.row], learned[small.col])), shape=(n, n)
        )
        return FitReport(
            notes={"titles_learned": int(learned.size), "weights": int(self.weights.nnz)}
        )
