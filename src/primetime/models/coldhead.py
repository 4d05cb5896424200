"""A content head for titles without a training event (new titles, cold-start items).

A model whose item vectors come from who watched what (an id embedding, or a graph
node fed by its viewers) has nothing to put in the row of a title nobody has
watched: that row stays at its initial value, or at whatever the content path
gives when it was never trained to stand alone, and the title scores at random's
level among other new titles. The head learns that row from what the title *is*.

After the model is fitted, its user vectors are fixed: the query of every position
of every training history (exactly what it serves). A small encoder ``f`` maps a
title's content (genre, subgenre, cast and crew tokens, the exact release year, the
other temporal tokens, its knowledge-graph entities, its text vector, and an
optional vector the model already has for the title) to a vector in that user space,
trained so that each position's user vector finds the title that came next among
every title with a training event, all of them built by ``f`` from content alone:
the id is dropped for every title (DropoutNet, Volkovs et al. 2017, "DropoutNet:
Addressing Cold Start in Recommender Systems", NeurIPS, with a dropout rate of 1
on a frozen preference model). So ``f`` learns which content the model's users
want, including what predicts appeal (a year, a known director), and the rows it
gives land in the space the model's user vectors score in.

The exact year is a token of its own (the shared metadata tokens bucket years five
at a time: on ml-100k 1997, the year of most new-title targets, and 1998, a year
with 21 barely watched titles in train, share a bucket).

The user's side (:class:`ProfileHead`, the models' ``head_profile``). DropoutNet feeds
its user tower the user's preference vector *and* the user's content; the head above
had only the first, the model's user vector, which the model trained to tell watched
titles apart. Beside ``f``, two more encoders of the same inputs give every title a
profile vector ``P`` and a new-title vector ``G``; a position's logit of a title is
``user . f(title) + mean(P[history]) . G(title)``, all three trained together, so the
profile learns what the model's user vector misses of the user's content taste. A
never-watched or added title scores both parts (:meth:`ColdHead.add_profile`); a
watched title's score is the model's own.

Ties (:func:`break_ties`). Reading genres only, the head gives every title of one
genre set the same row, and the evaluator counts a tie against the model; a small
share of the model's own row of each title orders the titles the head cannot tell
apart. (The genre-profile baseline breaks its ties by a seeded order,
:mod:`primetime.models.reference`.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from primetime.data.catalog import Catalog
from primetime.data.graph import KnowledgeGraph
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.models.metadata import ItemTokens, extend_tokens, item_tokens, text_matrix
from primetime.models.titlecontext import RequestTerms, TermsConfig, TitleFacts, fit_weights
from primetime.types import UserContext

#: Token fields of the head, in order.
BAGS = ("genres", "subgenres", "cast", "crew", "year", "temporal", "entities")
#: Every input of the head: :func:`content_features`'s token bags and text vector, and
#: ``encoder``, the model's own content vector of a title (the contrastive encoder's).
FEATURES = (*BAGS, "text", "encoder")
#: The models' default inputs of the head (``head_features``).
HEAD_FEATURES = "genres"
T = TypeVar("T")

#: Weight of the model's own row of a title in the row the head gives it
#: (:func:`break_ties`), relative to the two rows' mean norms.
TIE_WEIGHT = 1e-3


@dataclass(frozen=True)
class HeadConfig:
    """Settings of :func:`fit_head`.

    Attributes:
        hidden: Width of the token embeddings and of the MLP.
        epochs: Passes over the training positions.
        batch_size: Positions per step.
        lr, weight_decay: AdamW.
        dropout: Dropout on the pooled content before the MLP.
        user_dropout: With a profile (:class:`ProfileHead`), the share of positions
            whose model user vector is zeroed in a step, so the profile learns to rank
            on its own too (DropoutNet's dropout of the preference input).
        logit_adjust: ``tau``: each candidate's training logit carries ``tau`` times the
            log of its count among the targets (logit adjustment, Menon et al. 2021,
            "Long-tail learning via logit adjustment", ICLR), so the head learns what a
            user wants beyond how popular a title was; 0 turns it off. Where new titles'
            popularity is unrelated to their content (the synthetic worlds draw it at
            random) the watched titles' popularity by genre misleads the head; where the
            genres popular among watched titles are what new titles' viewers want
            (ml-100k) it helps. Models choose it on valid (:func:`adjust_choices`).
        seed: Seed of the initialisation and of the batch order.
    """

    hidden: int = 64
    epochs: int = 4
    batch_size: int = 1024
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    user_dropout: float = 0.0
    logit_adjust: float = 0.0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("hidden, epochs and batch_size must be >= 1")
        if not 0 <= self.user_dropout < 1:
            raise ValueError(f"user_dropout must be in [0, 1), got {self.user_dropout}")


def _pad(rows: list[list[int]], n: int) -> np.ndarray:
    width = max((len(r) for r in rows), default=0) or 1
    out = np.zeros((n, width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def content_features(
    side: SideData,
    n_items: int,
    *,
    entity_item: np.ndarray | None = None,
    entity: np.ndarray | None = None,
    min_count: int = 2,
    max_people: int = 10,
    use_text: bool = True,
) -> dict[str, np.ndarray]:
    """Token tables (V, K) int64 per field of :data:`BAGS` (0 = padding) and ``text``
    (V, E) float32 when the side data has text vectors.

    Args:
        side: Catalog, graph (cast and crew when the catalog has none) and text.
        n_items: items.size (padding included).
        entity_item, entity: (E,) title-entity links (item_idx, entity index 1..) of
            the knowledge graph as the model uses it; None: no entity bag.
        min_count, max_people: Cast / crew tokens (:func:`item_tokens`).
        use_text: Read ``side.text_vectors``.
    """
    tokens = item_tokens(side, n_items, min_count=min_count, max_people=max_people)
    exact = item_tokens(side, n_items, min_count=min_count, max_people=1, year_bucket=1)
    out = _token_bags(tokens, exact)
    if entity_item is not None and entity is not None and len(entity_item):
        rows: list[list[int]] = [[] for _ in range(n_items)]
        for i, e in zip(entity_item.tolist(), entity.tolist(), strict=True):
            rows[i].append(e)
        out["entities"] = _pad(rows, n_items)
    text = text_matrix(side, n_items) if use_text else None
    if text is not None:
        out["text"] = text
    return out


def _token_bags(tokens: ItemTokens, exact: ItemTokens) -> dict[str, np.ndarray]:
    """The token fields of :data:`BAGS` but ``entities`` from the shared metadata tokens
    (``exact``: the same with one-year buckets and one person per title)."""
    out = {
        "genres": tokens.genres,
        "subgenres": tokens.subgenres[:, :4],
        "cast": tokens.cast,
        "crew": tokens.crew,
        "year": exact.temporal[:, :1],  # (V, 1) one id per year
        "temporal": tokens.temporal[:, 1:]
        + np.cumsum(
            np.concatenate([[0], tokens.temporal_sizes[1:-1]])
        ),  # (V, 4) the other temporal columns, in one id space
    }
    out["temporal"][tokens.temporal[:, 1:] == 0] = 0
    return out


class ContentHead(nn.Module):
    """Mean-pooled token bags + projected text (+ an extra vector) -> MLP -> (V, dim)."""

    def __init__(
        self,
        features: dict[str, np.ndarray],
        dim: int,
        cfg: HeadConfig,
        extra: np.ndarray | None = None,
    ) -> None:
        """Args:
        features: :func:`content_features`.
        dim: Size of the user space.
        extra: (V, X) float32 vectors the model already has for every title (a content
            encoder's), fed as one more input; None for none.
        """
        super().__init__()
        h = cfg.hidden
        self.fields = [f for f in BAGS if f in features]
        for f in self.fields:
            self.register_buffer(f"tok_{f}", torch.from_numpy(features[f]).long())
        self.bags = nn.ModuleDict(
            {f: nn.Embedding(int(features[f].max()) + 1, h, padding_idx=0) for f in self.fields}
        )
        dense = [a for a in (features.get("text"), extra) if a is not None]
        self.dense_dims = [a.shape[1] for a in dense]
        if dense:
            self.register_buffer("dense", torch.from_numpy(np.concatenate(dense, 1)).float())
            self.proj = nn.Linear(self.dense.shape[1], h)
        parts = len(self.fields) + bool(dense)
        self.drop = nn.Dropout(cfg.dropout)
        self.mlp = nn.Sequential(
            nn.Linear(parts * h, 2 * h), nn.GELU(), nn.LayerNorm(2 * h), nn.Linear(2 * h, dim)
        )

    dense: torch.Tensor
    tok_entities: torch.Tensor

    def forward(self) -> torch.Tensor:
        """(V, dim) vectors of every title (row 0, padding, included)."""
        tokens = {f: getattr(self, f"tok_{f}") for f in self.fields}
        return self.encode(tokens, self.dense if self.dense_dims else None)

    def encode(self, tokens: dict[str, torch.Tensor], dense: torch.Tensor | None) -> torch.Tensor:
        """(N, dim) vectors of N titles from their token tables (N, K) per field of
        :attr:`fields`, in the learned ids, and their dense inputs (N, sum(dense_dims)),
        None when the head has none: titles the head was not built on (added later)."""
        parts = []
        for f in self.fields:
            tok = tokens[f]  # (N, K)
            w = (tok > 0).float()
            bag = (self.bags[f](tok) * w[:, :, None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1)
            parts.append(bag)  # (N, h)
        if self.dense_dims:
            assert dense is not None, "the head reads dense inputs"
            parts.append(self.proj(dense))
        return self.mlp(self.drop(torch.cat(parts, 1)))


class Positions(NamedTuple):
    """The training histories behind the head's N positions (the profile term).

    Attributes:
        windows: (W, T) int64 the model's training windows, right-padded with 0.
        row: (N,) int64 the window of each position (aligned with the head's ``users``
            and ``targets``).
        col: (N,) int64 its place in that window: the history is ``windows[row, :col+1]``.
        times: (N,) int64 unix seconds of each position's next event (the moment it was
            asked for: the request-time terms, :mod:`primetime.models.titlecontext`), or
            None.
    """

    windows: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    times: torch.Tensor | None = None

    @classmethod
    def of(
        cls,
        inputs: np.ndarray,
        keep: np.ndarray | torch.Tensor,
        times: np.ndarray | None = None,
    ) -> Positions:
        """The positions of ``inputs`` (W, T) where ``keep`` (W, T) bool holds, in the
        row-major order of ``users[keep]``; ``times`` (W, T) the time of each position's
        next event."""
        keep_t = torch.as_tensor(keep, dtype=torch.bool)
        row, col = torch.nonzero(keep_t, as_tuple=True)
        when = None if times is None else torch.as_tensor(times, dtype=torch.int64)[keep_t]
        return cls(torch.as_tensor(inputs, dtype=torch.int64), row, col, when)

    def histories(self, idx: torch.Tensor) -> list[np.ndarray]:
        """The histories (item_idx, padding dropped) of positions ``idx``."""
        win = self.windows[self.row[idx]].numpy()  # (b, T)
        cols = self.col[idx].numpy()
        return [w[: c + 1][w[: c + 1] > 0] for w, c in zip(win, cols, strict=True)]


class ProfileHead(nn.Module):
    """The user's side of the head (DropoutNet's user content, Volkovs et al. 2017): a
    title's *profile* vector ``P`` and its *new-title* vector ``G``, both from content
    (two :class:`ContentHead` encoders of the head's inputs). A user's profile is the
    mean ``P`` over their history (the last ``T`` titles); a title without a training
    event adds ``profile . G`` to the head's score ``user . row``.

    Why: the head alone scores a new title against the model's user vector, which the
    model trained to tell watched titles apart, not to say which content a user likes
    (README "New titles: the user's side of the head": on ml-100k's new titles the
    graph model's head scores 0.058 without this side, 0.089 with it).
    """

    def __init__(self, features: dict[str, np.ndarray], dim: int, cfg: HeadConfig) -> None:
        super().__init__()
        self.users = ContentHead(features, dim, cfg)
        self.titles = ContentHead(features, dim, cfg)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(P, G)``, each (V, dim), of every title the encoders were built on."""
        return self.users(), self.titles()

    @staticmethod
    def profiles(
        profile_rows: torch.Tensor, windows: torch.Tensor, col: torch.Tensor
    ) -> torch.Tensor:
        """(N, dim) the mean of ``profile_rows`` over each history ``windows[n, :col[n]+1]``
        (padding left out); ``windows`` (N, T)."""
        t = torch.arange(windows.shape[1])
        mask = ((windows > 0) & (t[None, :] <= col[:, None])).to(profile_rows.dtype)  # (N, T)
        total = (profile_rows[windows] * mask[:, :, None]).sum(1)  # (N, dim)
        return total / mask.sum(1, keepdim=True).clamp(min=1.0)


def fit_head(
    features: dict[str, np.ndarray],
    users: torch.Tensor,
    targets: torch.Tensor,
    watched: torch.Tensor,
    cfg: HeadConfig,
    *,
    extra: np.ndarray | None = None,
    newest: torch.Tensor | None = None,
) -> torch.Tensor:
    """Train a :class:`ContentHead` against fixed user vectors; its (V, dim) vectors.

    Args:
        features: :func:`content_features` of every title.
        users: (N, dim) the model's user vector at each training position (no grad).
        targets: (N,) the title that came next (item_idx, all with a training event).
        watched: (V,) bool, titles with a training event: the candidates of every
            position (a title nobody watched is never a negative).
        cfg: Training settings.
        extra: See :class:`ContentHead`.
        newest: (V,) bool, the titles that were new late in the training log (the
            newest by first event, :func:`newest_titles`), or None. With it, a second
            term asks each position whose next title is one of them to find it among
            them only: the new-title protocol inside training. Titles that first
            appear late in a log differ from the catalog at large (there, the new
            releases and the obscure old titles that nobody had got to), so what
            predicts interest among all titles (an old year: the classics) can point
            the wrong way among new ones.

    Returns:
        (V, dim) float32 vectors of every title from its content alone, row 0 zero.
    """
    head, _ = train_head(features, users, targets, watched, cfg, extra=extra, newest=newest)
    return _title_rows(head)


def _title_rows(head: ContentHead) -> torch.Tensor:
    """(V, dim) the head's vectors of the titles it was built on, row 0 (padding) zero."""
    with torch.no_grad():
        out = head()
    out[0] = 0.0
    return out


def train_head(
    features: dict[str, np.ndarray],
    users: torch.Tensor,
    targets: torch.Tensor,
    watched: torch.Tensor,
    cfg: HeadConfig,
    *,
    extra: np.ndarray | None = None,
    newest: torch.Tensor | None = None,
    positions: Positions | None = None,
) -> tuple[ContentHead, ProfileHead | None]:
    """The trained :class:`ContentHead` of :func:`fit_head` (same arguments), in eval
    mode: what a model keeps to give titles added later their rows; and with
    ``positions`` (the history of each position) a :class:`ProfileHead` trained with it,
    each position's logit of a title ``user . row + profile . G`` (else None)."""
    if len(users) != len(targets):
        raise ValueError(f"{len(users)} user vectors for {len(targets)} targets")
    if len(targets) and not bool(watched[targets].all()):
        raise ValueError("every target must be a watched title")
    if positions is not None and len(positions.row) != len(targets):
        raise ValueError(f"{len(positions.row)} histories for {len(targets)} targets")
    torch.manual_seed(cfg.seed)
    head = ContentHead(features, users.shape[1], cfg, extra)
    profile = None if positions is None else ProfileHead(features, users.shape[1], cfg)
    params = list(head.parameters()) + ([] if profile is None else list(profile.parameters()))
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    cand = torch.nonzero(watched).squeeze(1)  # (C,) sorted
    local = torch.searchsorted(cand, targets)  # (N,)
    users = users.detach()
    if newest is not None:
        new_cand = torch.nonzero(newest & watched).squeeze(1)  # (M,) sorted
        is_new = newest[targets]  # (N,)
        new_local = torch.searchsorted(new_cand, targets).clamp(max=max(len(new_cand) - 1, 0))
    # logit adjustment (Menon et al. 2021): the training logits carry tau * log(count) of
    # each candidate, so the head learns what a user wants beyond a title's popularity
    counts = torch.bincount(targets, minlength=len(watched))[cand].clamp(min=1).float()
    adjust = cfg.logit_adjust * counts.log()  # (C,)
    head.train()
    if profile is not None:
        profile.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(users), generator=gen).split(cfg.batch_size):
            vecs = head()  # (V, dim)
            u_b = users[idx]  # (b, dim)
            if profile is not None and cfg.user_dropout > 0:  # DropoutNet's input dropout
                u_b = u_b * (torch.rand(len(idx), 1, generator=gen) >= cfg.user_dropout).to(u_b)
            logits = u_b @ vecs[cand].T  # (b, C)
            if profile is not None and positions is not None:
                p_rows, g_rows = profile()  # (V, dim) each
                windows = positions.windows[positions.row[idx]]  # (b, T)
                prof = ProfileHead.profiles(p_rows, windows, positions.col[idx])  # (b, dim)
                logits = logits + prof @ g_rows[cand].T
            loss = F.cross_entropy(logits + adjust[None, :], local[idx])
            if newest is not None:
                sel = idx[is_new[idx]]
                if len(sel):
                    new_logits = users[sel] @ vecs[new_cand].T  # (n, M)
                    loss = loss + F.cross_entropy(new_logits, new_local[sel])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()
    if profile is not None:
        profile.eval()
    return head, profile


def head_rows(
    side: SideData,
    links: tuple[np.ndarray, np.ndarray],
    users: torch.Tensor,
    targets: torch.Tensor,
    watched: torch.Tensor,
    train: Interactions,
    options: Any,
    *,
    base: torch.Tensor,
    extra: np.ndarray | None = None,
    place: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
    positions: Positions | None = None,
    logit_adjust: float = 0.0,
    facts: TitleFacts | None = None,
) -> tuple[torch.Tensor, torch.Tensor, ColdHead]:
    """What a model's ``cold_head`` option runs: :func:`fit_head` on the inputs
    ``options.head_features`` (comma-separated names of :data:`FEATURES`; ``text`` only
    with ``options.use_text``) of :func:`content_features` of ``side`` (``links``:
    (item, entity) the graph's title-entity links as the model reads them), with the
    newest ``options.head_newest`` of ``train``'s titles as its ``newest`` (0: none).

    Args:
        base: (V, dim) the rows the model scores (its item table), against whose
            watched rows the head is placed.
        place: ``(rows, base, watched) -> (weight, bias)``, the map saved with the
            head: :func:`calibrate` (a least-squares fit, the default) or
            :func:`scale_and_shift`.
        logit_adjust: :attr:`HeadConfig.logit_adjust`.
        positions: The history of each position (:class:`Positions`): with
            ``options.head_profile`` the head is trained with a :class:`ProfileHead`,
            kept in the returned head; the model then places it
            (:meth:`ColdHead.place_profile`) and adds :meth:`ColdHead.profile_scores`.
        facts: With ``options.head_context`` and ``positions`` that carry their times,
            the request-time terms of :mod:`primetime.models.titlecontext` are fit on
            the trained head (frozen) and kept in the returned head
            (:meth:`ColdHead.add_terms` adds them).
        options: The model's config: ``head_features``, ``head_newest``, ``head_epochs``,
            ``head_profile``, ``head_user_dropout``, ``head_context``, ``use_text``,
            ``dim``, ``seed``,
            ``min_people_titles``,
            ``max_people``.

    Returns:
        ``(rows, replace, head)``: (V, dim) the head's vectors, (V,) bool the titles
        whose row they replace: never watched, with at least one of the inputs (a title
        the head has nothing to read of keeps the model's own row), and the head with its
        calibration, to save with the model (:meth:`ColdHead.arrays`) and give titles
        added later their rows (:meth:`ColdHead.new_rows`).
    """
    keep = set(options.head_features.split(",")) - (set() if options.use_text else {"text"})
    newest_share = options.head_newest
    cfg = HeadConfig(
        epochs=options.head_epochs,
        hidden=options.dim,
        seed=options.seed,
        user_dropout=options.head_user_dropout,
        logit_adjust=logit_adjust,
    )
    min_count, max_people = options.min_people_titles, options.max_people
    n = len(watched)
    features = content_features(
        side,
        n,
        entity_item=links[0],
        entity=links[1],
        min_count=min_count,
        max_people=max_people,
        use_text="text" in keep,
    )
    features = {k: v for k, v in features.items() if k in keep}
    newest = (
        newest_titles(train.item_idx, train.timestamp, n, newest_share) if newest_share else None
    )
    extra = extra if "encoder" in keep else None
    # Trained with gradients whatever the caller's mode (a model's validation runs
    # without), and the head's seeding of torch's generator undone on the way out, so a
    # head fitted between training epochs (``head_valid``) leaves the training as it was.
    with torch.enable_grad(), torch.random.fork_rng(devices=[]):
        module, profile = train_head(
            features,
            users,
            targets,
            watched,
            cfg,
            extra=extra,
            newest=newest,
            positions=positions if options.head_profile else None,
        )
        terms = None
        if (
            facts is not None
            and options.head_context
            and positions is not None
            and positions.times is not None
            and len(targets)
        ):
            terms = _fit_terms(module, profile, facts, users, targets, watched, positions, cfg)
    rows = _title_rows(module)
    replace = ~watched & torch.from_numpy(has_content(features) | (extra is not None))
    replace[0] = False
    weight, bias = (place or calibrate)(rows, base, watched)
    text = features.get("text")
    head = ColdHead(
        module,
        weight,
        bias,
        text_dim=0 if text is None else int(text.shape[1]),
        extra_dim=0 if extra is None else int(extra.shape[1]),
        profile=profile,
        history_len=0 if positions is None else int(positions.windows.shape[1]),
    )
    if terms is not None:
        assert facts is not None and positions is not None
        weights, alpha = terms
        head.terms = RequestTerms(facts, weights, alpha, int(positions.windows.shape[1]))
    return rows, replace, head


def _fit_terms(
    module: ContentHead,
    profile: ProfileHead | None,
    facts: TitleFacts,
    users: torch.Tensor,
    targets: torch.Tensor,
    watched: torch.Tensor,
    positions: Positions,
    cfg: HeadConfig,
) -> tuple[np.ndarray, float]:
    """:func:`~primetime.models.titlecontext.fit_weights` on the trained head: each
    position's logits as the head trained them (its rows, its profile term, its logit
    adjustment) against every watched title, asked at the time of its next event."""
    assert positions.times is not None
    cand = torch.nonzero(watched).squeeze(1)  # (C,)
    with torch.no_grad():
        vecs = module()[cand]  # (C, dim)
        pg = None if profile is None else profile()
    counts = torch.bincount(targets, minlength=len(watched))[cand].clamp(min=1).float()
    adjust = cfg.logit_adjust * counts.log()  # (C,)

    def head_logits(idx: torch.Tensor) -> torch.Tensor:
        out = users[idx] @ vecs.T  # (b, C)
        if pg is not None:
            windows = positions.windows[positions.row[idx]]
            prof = ProfileHead.profiles(pg[0], windows, positions.col[idx])  # (b, dim)
            out = out + prof @ pg[1][cand].T
        return out

    return fit_weights(
        facts,
        head_logits,
        positions.histories,
        positions.times,
        targets,
        cand,
        adjust,
        TermsConfig(seed=cfg.seed),
    )


def calibrate(
    rows: torch.Tensor, base: torch.Tensor, watched: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)``: the linear map ``h @ weight + bias`` from the head's rows to the
    model's, least squares over the watched titles (both have a row for them).

    The head is trained for the order of titles (a softmax over head rows only), not for
    where its rows land against the model's own. Mapped, a title's row is the model's
    row that titles with its content have on average (a head reading genres only gives
    one row per genre set: mapped, the mean of the watched rows of that set), so for
    every user the mapped watched rows score on average what the watched titles score
    (least squares with a bias leaves residuals summing to zero). A common scale and
    shift (matching each user's mean and the pooled spread) kept the head's order among
    new titles but left the planted service test's new drama (tests/service) at 0.76
    for a drama fan whose unseen watched dramas scored 0.83-0.95 (its encoder vector:
    0.97), out of the served top 15; mapped, 0.92. The map is not a common scale: the
    order among added titles is the map's, not the head's (the cold-items figures
    measure the head's, at fit; ``benchmarks/bench_added_titles.py`` measures the map's:
    on ml-100k the graph model's added titles rank as at fit, the contrastive model's
    at random's level, so the contrastive model places its head's rows by
    :func:`scale_and_shift` instead; README "New titles: the content head").

    Args:
        rows: (V, dim) the head's vectors; base: (V, dim) the model's rows.
        watched: (V,) bool, titles with a training event.

    Returns:
        ``weight`` (dim, dim) and ``bias`` (dim,); the identity and zero when nothing
        is watched.
    """
    if rows.shape != base.shape or rows.shape[0] != len(watched):
        raise ValueError(
            f"rows {tuple(rows.shape)} and base {tuple(base.shape)} for {len(watched)} titles"
        )
    dim = rows.shape[1]
    cand = torch.nonzero(watched).squeeze(1)  # (M,)
    if not len(cand):
        return torch.eye(dim, dtype=rows.dtype), torch.zeros(dim, dtype=rows.dtype)
    h = torch.cat([rows[cand].double(), rows.new_ones(len(cand), 1).double()], 1)  # (M, dim+1)
    # gelsd: a head reading few inputs gives few distinct rows (rank below dim + 1)
    sol = torch.linalg.lstsq(h, base[cand].double(), driver="gelsd").solution  # (dim+1, dim)
    return sol[:dim].to(rows.dtype), sol[dim].to(rows.dtype)


def scale_and_shift(
    rows: torch.Tensor, base: torch.Tensor, watched: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)``: one common scale ``s`` (``weight = s * I``) and shift that put
    the head's rows of the watched titles on the centre and spread (mean distance to
    the centre) of the model's rows of those titles.

    Unlike :func:`calibrate` it keeps each user's order among the mapped titles the
    head's (``u . (s h + b) = s u . h + u . b``), the order the cold-items benchmark
    measures; the contrastive model uses it (its titles added after training ranked at
    random's level under the least-squares map on ml-100k; README "New titles: the
    content head"). The identity and zero when nothing is watched.
    """
    dim = rows.shape[1]
    seen = watched.clone()
    seen[0] = False
    if not bool(seen.any()):
        return torch.eye(dim, dtype=rows.dtype), torch.zeros(dim, dtype=rows.dtype)
    m_b, m_h = base[seen].mean(0), rows[seen].mean(0)
    spread = float((rows[seen] - m_h).norm(dim=1).mean())
    s = float((base[seen] - m_b).norm(dim=1).mean()) / max(spread, 1e-12)
    return torch.eye(dim, dtype=rows.dtype) * s, (m_b - s * m_h).to(rows.dtype)


@dataclass
class ColdHead:
    """A fitted :class:`ContentHead` and its calibration (:func:`calibrate`): what a model
    saves so that titles added after training (``extend_items``) get rows from the head,
    on the scale of its watched titles' rows.

    Attributes:
        module: The head, its ``tok_*`` and ``dense`` buffers those of the titles it was
            built on (the learned token ids, checked again when titles are added).
        weight, bias: A new title's row is ``module(title) @ weight + bias``.
        text_dim, extra_dim: Widths of the text vector and of the model's own vector in
            ``dense`` (0: not read).
        profile: The user's side of the head (:class:`ProfileHead`), or None.
        history_len: Titles of a history its profile reads (the last ones).
        profile_scale: Factor of the profile term (the scale the model put the head's
            rows on, so a title's head score keeps its two parts' balance).
        scored: (S,) item_idx of the titles the profile term scores: those whose row is
            the head's (never watched at fit, or added later).
        terms: The request-time terms (:mod:`primetime.models.titlecontext`), fit beside
            the head's score; None: none. They score :attr:`scored` too, at the
            ``profile_scale`` the head's rows were placed at.
    """

    module: ContentHead
    weight: torch.Tensor  # (dim, dim)
    bias: torch.Tensor  # (dim,)
    text_dim: int = 0
    extra_dim: int = 0
    profile: ProfileHead | None = None
    history_len: int = 0
    profile_scale: float = 1.0
    scored: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    terms: RequestTerms | None = None
    _rows: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def place_profile(self, titles: np.ndarray, scale: float) -> None:
        """Score ``titles`` (item_idx, the ones whose row is the head's) with the profile
        term, times ``scale``."""
        self.scored = np.asarray(titles, dtype=np.int64)
        self.profile_scale = float(scale)
        self._rows = None

    def profile_scores(self, histories: Sequence[np.ndarray]) -> np.ndarray | None:
        """(B, S) what the profile term adds to the scores of :attr:`scored` for B
        histories (oldest first): ``profile_scale`` times the mean profile vector ``P``
        of the last :attr:`history_len` titles against each title's ``G``; an empty
        history adds 0. None without a profile or titles to score."""
        if self.profile is None or not len(self.scored):
            return None
        if self._rows is None:
            with torch.no_grad():
                p_rows, g_rows = self.profile()
            self._rows = (
                p_rows.float().numpy(),
                (g_rows.float().numpy()[self.scored] * self.profile_scale).astype(np.float32),
            )
        p_rows, g_rows = self._rows
        users = np.zeros((len(histories), p_rows.shape[1]), dtype=np.float32)  # (B, dim)
        for b, h in enumerate(histories):
            h = np.asarray(h, dtype=np.int64)[-self.history_len :]
            h = h[(h > 0) & (h < len(p_rows))]
            if len(h):
                users[b] = p_rows[h].mean(0)
        return users @ g_rows.T  # (B, S)

    def term_scores(self, contexts: Sequence[UserContext]) -> np.ndarray | None:
        """(B, S) what the request-time terms add to the scores of :attr:`scored` for B
        requests (the last :attr:`history_len` titles of each history, its ``now``);
        None without terms or titles to score."""
        if self.terms is None or not len(self.scored):
            return None
        return self.terms.scores(contexts, self.scored, self.profile_scale)

    def add_terms(self, scores: np.ndarray, contexts: Sequence[UserContext]) -> None:
        """Add :meth:`profile_scores` and :meth:`term_scores` to the columns
        :attr:`scored` of ``scores`` (B, V), in place (nothing without either)."""
        for extra in (
            self.profile_scores([c.history for c in contexts]),
            self.term_scores(contexts),
        ):
            if extra is not None:
                scores[:, self.scored] += extra

    def arrays(self, prefix: str = "head.") -> dict[str, np.ndarray]:
        """Everything to rebuild the head (:meth:`from_arrays`), as bundle arrays."""
        out = {prefix + k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        out[prefix + "map_weight"] = self.weight.detach().cpu().numpy()
        out[prefix + "map_bias"] = self.bias.detach().cpu().numpy()
        out[prefix + "dims"] = np.array([self.text_dim, self.extra_dim], dtype=np.int64)
        if self.profile is not None:
            for k, v in self.profile.state_dict().items():
                out[f"{prefix}profile.{k}"] = v.detach().cpu().numpy()
            out[prefix + "profile_meta"] = np.array([self.history_len], dtype=np.int64)
        if self.terms is not None:
            out.update(self.terms.arrays(prefix + "terms."))
        if self.profile is not None or self.terms is not None:  # what both score, and how
            out[prefix + "profile_scale"] = np.array([self.profile_scale], dtype=np.float64)
            out[prefix + "profile_scored"] = self.scored
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "head.") -> ColdHead | None:
        """The head saved by :meth:`arrays`; None when ``arrays`` have none (a bundle
        saved before heads were kept, or with ``cold_head`` off)."""
        state = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
        if "mlp.0.weight" not in state:
            return None
        terms = RequestTerms.from_arrays(state, "terms.")
        for k in [k for k in state if k.startswith("terms.")]:
            del state[k]
        text_dim, extra_dim = (int(x) for x in state.pop("dims"))
        weight = torch.from_numpy(state.pop("map_weight"))
        bias = torch.from_numpy(state.pop("map_bias"))
        profile_state = {
            k.removeprefix("profile."): state.pop(k)
            for k in list(state)
            if k.startswith("profile.")
        }
        meta = state.pop("profile_meta", None)
        scale = state.pop("profile_scale", None)
        scored = state.pop("profile_scored", None)
        features: dict[str, np.ndarray] = {
            k.removeprefix("tok_"): v for k, v in state.items() if k.startswith("tok_")
        }
        extra = None
        if "dense" in state:
            dense = state["dense"]
            if text_dim:
                features["text"] = dense[:, :text_dim]
            extra = dense[:, text_dim:] if extra_dim else None
        hidden = int(state["mlp.0.weight"].shape[0]) // 2
        dim = int(state["mlp.3.weight"].shape[0])
        module = ContentHead(features, dim, HeadConfig(hidden=hidden), extra)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        module.eval()
        head = cls(module, weight, bias, text_dim, extra_dim)
        if profile_state and meta is not None:
            p_features = {
                k.removeprefix("users.tok_"): v
                for k, v in profile_state.items()
                if k.startswith("users.tok_")
            }
            if "users.dense" in profile_state:
                p_features["text"] = profile_state["users.dense"]
            p_dim = int(profile_state["users.mlp.3.weight"].shape[0])
            p_hidden = int(profile_state["users.mlp.0.weight"].shape[0]) // 2
            profile = ProfileHead(p_features, p_dim, HeadConfig(hidden=p_hidden))
            profile.load_state_dict({k: torch.from_numpy(v) for k, v in profile_state.items()})
            profile.eval()
            head.profile, head.history_len = profile, int(meta[0])
        head.terms = terms
        if scored is not None:
            head.place_profile(scored, 1.0 if scale is None else float(scale[0]))
        return head

    @property
    def size(self) -> int:
        """Titles the head's buffers hold (padding included)."""
        f = self.module.fields
        return int(getattr(self.module, f"tok_{f[0]}").shape[0]) if f else len(self.module.dense)

    def new_rows(
        self,
        side: SideData,
        n_old: int,
        n_new: int,
        *,
        min_count: int,
        max_people: int,
        links: tuple[np.ndarray, np.ndarray] | None = None,
        extra: np.ndarray | None = None,
    ) -> NewRows | None:
        """Calibrated rows of the titles ``n_old .. n_new - 1`` of ``side`` (added after
        the head's ``n_old - 1``); nothing is changed (:meth:`append` keeps their inputs).

        Args:
            side: Side data of the grown catalog (as the model read it at fit: the
                graph's cast and crew when the catalog has none; ``text_vectors`` of
                every title when the head reads text).
            n_old, n_new: items.size the head was built on, and grown to.
            min_count, max_people: The model's cast / crew options (:func:`content_features`).
            links: (item, entity) the new titles' links to the graph's entities (item_idx
                >= ``n_old``), when the head reads ``entities``.
            extra: (n_new - n_old, X) the model's own vectors of the new titles, when the
                head reads them (``encoder``).

        Returns:
            The rows, which titles have an input, and the inputs (:class:`NewRows`); None
            when a new title's inputs cannot be built in the head's ids: the catalog is
            not the one the head was fitted on, or an input the head reads is missing.
        """
        if self.size != n_old or n_new <= n_old:
            return None
        grown = grow_features(
            self, side, n_old, n_new, min_count=min_count, max_people=max_people, links=links
        )
        if grown is None:
            return None
        dense_parts = []
        if self.text_dim:
            tv = side.text_vectors
            if tv is None or tv.shape != (n_new, self.text_dim):
                return None
            dense_parts.append(np.asarray(tv[n_old:], np.float32))
        if self.extra_dim:
            if extra is None or extra.shape != (n_new - n_old, self.extra_dim):
                return None
            dense_parts.append(np.asarray(extra, np.float32))
        dense = np.concatenate(dense_parts, 1) if dense_parts else None
        head = self.module
        with torch.no_grad():
            raw = head.encode(
                {f: torch.from_numpy(v).long() for f, v in grown.items()},
                None if dense is None else torch.from_numpy(dense),
            )  # (n, dim)
        features: dict[str, np.ndarray] = dict(grown)
        if dense is not None:
            features["text"] = dense  # has_content reads a dense input as text
        rows = raw @ self.weight.to(raw.dtype) + self.bias.to(raw.dtype)  # (n, dim)
        return NewRows(rows, has_content(features), grown, dense)

    def append(
        self,
        new: NewRows,
        scored: np.ndarray | None = None,
        *,
        release_day: np.ndarray | None = None,
        links: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        kg: KnowledgeGraph | None = None,
        items: Vocabulary | None = None,
    ) -> None:
        """Grow the head's buffers by the inputs of :meth:`new_rows` (a later addition
        is checked against, and starts after, them); ``scored``: the new titles (item_idx)
        whose row is the head's, which the profile term scores from now on.

        With request-time terms, ``release_day`` (N,) the new titles' release days (days
        since 1970-01-01, NaN unknown: counted as out) and ``links`` (item_idx, entity,
        relation) their links to the entities the terms know (none: found in ``kg``
        for the entities the terms kept); with ``kg`` and the grown ``items`` their
        links to other titles (:meth:`~primetime.models.titlecontext.TitleFacts.grow`;
        without ``kg``: no shared-entity or season-before counts)."""
        if self.terms is not None:
            n = len(new.has)
            rd = np.full(n, np.nan) if release_day is None else np.asarray(release_day, float)
            if rd.shape != (n,):
                raise ValueError(f"{rd.shape} release days for {n} new titles")
            item, entity, relation = links if links is not None else (None, None, None)
            self.terms.facts.grow(rd, item, entity, relation, kg=kg, items=items)
        _grow(self.module, new.tokens, new.dense)
        if self.profile is not None:
            text = None if new.dense is None or not self.text_dim else new.dense[:, : self.text_dim]
            _grow(self.profile.users, new.tokens, text)
            _grow(self.profile.titles, new.tokens, text)
        if (self.profile is not None or self.terms is not None) and scored is not None:
            self.scored = np.concatenate([self.scored, np.asarray(scored, dtype=np.int64)])
        self._rows = None


def _grow(head: ContentHead, tokens: dict[str, np.ndarray], dense: np.ndarray | None) -> None:
    """Append rows to ``head``'s token buffers and dense inputs."""
    for f, v in tokens.items():
        old = getattr(head, f"tok_{f}")
        setattr(head, f"tok_{f}", torch.cat([old, torch.from_numpy(v).to(old)]))
    if dense is not None and head.dense_dims:
        head.dense = torch.cat([head.dense, torch.from_numpy(dense).to(head.dense)])


class NewRows(NamedTuple):
    """What :meth:`ColdHead.new_rows` returns for N titles added after training."""

    rows: torch.Tensor  # (N, dim) calibrated rows
    has: np.ndarray  # (N,) bool: titles with one of the head's inputs
    tokens: dict[str, np.ndarray]  # (N, K) per token field, in the learned ids
    dense: np.ndarray | None  # (N, text_dim + extra_dim) or None


def grow_features(
    head: ColdHead,
    side: SideData,
    n_old: int,
    n_new: int,
    *,
    min_count: int,
    max_people: int,
    links: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray] | None:
    """Token tables (n_new - n_old, K) of the titles ``n_old .. n_new - 1`` of
    ``side.catalog``, per token field the head reads, in the head's learned ids and
    widths (:func:`~primetime.models.metadata.extend_tokens`: a name the head never
    learned is padding); None when the first ``n_old`` rows do not rebuild the head's
    own tables (another catalog) or an input is missing (no catalog, no ``links`` for
    entities)."""
    cat = side.catalog
    module = head.module
    out: dict[str, np.ndarray] = {}
    bags = [f for f in module.fields if f != "entities"]
    if bags:
        if cat is None or cat.items.size != n_new:
            return None
        old_side = SideData(catalog=Catalog.from_frame(cat.frame.head(n_old - 1)), kg=side.kg)
        grown = []
        for people, bucket in ((max_people, 5), (1, 1)):  # as content_features builds them
            ref = item_tokens(
                old_side, n_old, min_count=min_count, max_people=people, year_bucket=bucket
            )
            g = extend_tokens(
                ref, side, n_old, min_count=min_count, max_people=people, year_bucket=bucket
            )
            if g is None:
                return None
            grown.append(g)
        tables = _token_bags(grown[0], grown[1])
        for f in bags:
            learned = getattr(module, f"tok_{f}").cpu().numpy()  # (n_old, K)
            table = tables[f]
            k = learned.shape[1]
            if table.shape[1] < k:
                table = np.pad(table, ((0, 0), (0, k - table.shape[1])))
            if not np.array_equal(table[:n_old, :k], learned):
                return None  # not the catalog the head was fitted on
            out[f] = np.ascontiguousarray(table[n_old:, :k])
    if "entities" in module.fields:
        if links is None:
            return None
        k = int(module.tok_entities.shape[1])
        rows: list[list[int]] = [[] for _ in range(n_new - n_old)]
        for i, e in zip(links[0].tolist(), links[1].tolist(), strict=True):
            if i >= n_old and len(rows[i - n_old]) < k:
                rows[i - n_old].append(e)
        table = _pad(rows, n_new - n_old)
        out["entities"] = np.pad(table, ((0, 0), (0, k - table.shape[1])))[:, :k]
    return out


def break_ties(rows: torch.Tensor, own: torch.Tensor, weight: float = TIE_WEIGHT) -> torch.Tensor:
    """``rows`` (N, dim), the head's rows of N titles, plus ``weight`` times the model's
    own rows of them ``own`` (N, dim), scaled to the head rows' mean norm.

    A head that reads few inputs gives many titles the same row (reading genres only:
    one row per genre set), and the evaluator counts a tie against the model (each
    title of a tied group ranks last of it). The small share of the model's own row
    orders the titles the head cannot tell apart by what the model knows of them (the
    graph model's messages from a title's entities, the contrastive encoder's vector
    of its text and metadata) and leaves every other order of the head's alone but
    near-ties within ``weight`` of the scores' scale. The genre profile breaks its
    ties too, by a fixed seeded order (:mod:`primetime.models.reference`). A title
    whose own row is zero keeps the head's row."""
    if rows.shape != own.shape:
        raise ValueError(f"rows {tuple(rows.shape)} and own rows {tuple(own.shape)}")
    if not len(rows):
        return rows
    own = own.to(rows.dtype)
    ratio = float(rows.norm(dim=1).mean()) / max(float(own.norm(dim=1).mean()), 1e-12)
    return rows + weight * ratio * own


#: Values of a model's ``head_valid`` (:func:`validates_head`).
HEAD_VALID = ("auto", "true", "false")


def validates_head(option: str, train: Interactions, valid: Interactions | None) -> bool:
    """Whether a model fits its content head at each validation (its ``head_valid``):
    ``"auto"`` does when more than half of ``valid``'s events are of titles without a
    training event, whose rows the head gives (``--split cold-items``); never without
    a valid set."""
    if valid is None:
        return False
    if option != "auto":
        return option == "true"
    watched = np.zeros(train.items.size, dtype=bool)
    watched[train.item_idx] = True
    return bool(len(valid)) and float(np.mean(~watched[valid.item_idx])) > 0.5


def adjust_choices(option: str, can_validate: bool) -> list[float]:
    """The logit adjustments (:attr:`HeadConfig.logit_adjust`) a model fits its head with,
    in order: ``"auto"`` tries 0 then 1 and keeps the better on valid (0 alone without a
    valid set), a number is that one."""
    if option == "auto":
        return [0.0, 1.0] if can_validate else [0.0]
    return [float(option)]


def choose_adjustment(
    option: str,
    score: Callable[[], float] | None,
    fit: Callable[[float], T],
) -> tuple[float, T]:
    """Fit a model's head once per logit adjustment of ``option`` (:func:`adjust_choices`)
    and keep the one ``score`` (the model on valid, higher is better) prefers.

    Args:
        option: The model's ``head_logit_adjust``.
        score: Scores the model as it stands (its last fitted head installed); None
            without a valid set.
        fit: ``fit(tau)`` fits and installs the head with that adjustment and returns
            what the model must put back to install it again.

    Returns:
        ``(tau, state)`` of the head kept; the caller installs ``state``.
    """
    choices = adjust_choices(option, score is not None)
    best: tuple[float, float, T] | None = None
    for tau in choices:
        state = fit(tau)
        metric = score() if score is not None and len(choices) > 1 else 0.0
        if best is None or metric > best[0]:
            best = (metric, tau, state)
    assert best is not None
    return best[1], best[2]


def head_overrides(option: str, notes: dict[str, Any]) -> dict[str, Any]:
    """``{"head_logit_adjust": chosen}`` to pin the adjustment valid chose (a fit's
    ``notes["head_logit_adjust"]``) for a refit without a valid set, when the option was
    ``"auto"``; {} otherwise (a model's ``refit_overrides``)."""
    if option != "auto" or "head_logit_adjust" not in notes:
        return {}
    return {"head_logit_adjust": str(float(notes["head_logit_adjust"]))}


def check_head_options(
    inputs: str,
    newest_share: float,
    user_dropout: float = 0.0,
    logit_adjust: str = "0",
    valid: str = "auto",
) -> None:
    """Raise ValueError for a ``head_features`` name not in :data:`FEATURES`, a
    ``head_newest`` or ``head_user_dropout`` outside [0, 1), a ``head_logit_adjust``
    neither ``"auto"`` nor a number in [0, 1], or a ``head_valid`` not in
    :data:`HEAD_VALID` (the models' config checks)."""
    if valid not in HEAD_VALID:
        raise ValueError(f"head_valid must be one of {HEAD_VALID}, got {valid!r}")
    if logit_adjust != "auto":
        try:
            tau = float(logit_adjust)
        except ValueError:
            tau = -1.0
        if not 0 <= tau <= 1:
            raise ValueError(f"head_logit_adjust must be 'auto' or in [0, 1], got {logit_adjust!r}")
    if not 0 <= newest_share < 1:
        raise ValueError(f"head_newest must be in [0, 1), got {newest_share}")
    if not 0 <= user_dropout < 1:
        raise ValueError(f"head_user_dropout must be in [0, 1), got {user_dropout}")
    stray = set(inputs.split(",")) - set(FEATURES)
    if stray:
        raise ValueError(f"head_features: unknown {sorted(stray)}; known: {FEATURES}")


def has_content(features: dict[str, np.ndarray]) -> np.ndarray:
    """(V,) bool: titles with at least one token or a non-zero text vector in ``features``
    (a title without any has nothing for the head to read)."""
    n = len(next(iter(features.values()))) if features else 0
    out = np.zeros(n, dtype=bool)
    for name, a in features.items():
        out |= (a > 0).any(1) if name in BAGS else np.abs(a).sum(1) > 0
    return out


def newest_titles(
    item_idx: np.ndarray, timestamp: np.ndarray, n_items: int, share: float
) -> torch.Tensor:
    """(V,) bool: the newest ``share`` of the titles of a log by first event.

    Args:
        item_idx, timestamp: (N,) the log's events.
        n_items: items.size.
        share: Fraction of the titles with an event, in (0, 1).
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    first = np.full(n_items, np.inf)
    np.minimum.at(first, item_idx, timestamp.astype(np.float64))
    present = np.flatnonzero(np.isfinite(first))
    n = max(1, int(round(share * len(present))))
    out = np.zeros(n_items, dtype=bool)
    out[present[np.argsort(-first[present], kind="stable")[:n]]] = True
    return torch.from_numpy(out)


__all__ = [
    "BAGS",
    "FEATURES",
    "HEAD_FEATURES",
    "ColdHead",
    "ContentHead",
    "HeadConfig",
    "TIE_WEIGHT",
    "break_ties",
    "NewRows",
    "Positions",
    "ProfileHead",
    "adjust_choices",
    "choose_adjustment",
    "head_overrides",
    "calibrate",
    "content_features",
    "fit_head",
    "grow_features",
    "newest_titles",
    "scale_and_shift",
    "train_head",
]
