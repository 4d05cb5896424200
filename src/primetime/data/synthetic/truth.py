"""The planted truth: the latents of a world and the exact next-item model over them."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.special import ndtr

from primetime.data.synthetic.config import DAY, WorldConfig

# rating = clip(round(_RATING_MID + _RATING_SLOPE (affinity - _AFF_MID) + noise), 1, 5):
# about MovieLens' mean 3.5 and spread 1.05 stars
_AFF_MID = -0.6
_RATING_MID = 3.5
_RATING_SLOPE = 0.9


# ------------------------------------------------------------------ latents
@dataclass(frozen=True, eq=False)
class WorldLatents:
    """The planted truth, indexed like the dataset (row 0 of each array is padding).

    Item arrays have ``N + 1`` rows (``N`` titles, item_idx 1..N); user arrays
    ``U + 1`` rows (user_idx 1..U). ``K`` = ``n_genres``, ``d`` = ``dim``.

    Attributes:
        item_ids: (N,) external item ids, item_idx order (a check on load).
        user_ids: (U,) external user ids, user_idx order.
        release_ts: (N+1,) int64 unix seconds the title becomes watchable.
        network: (N+1,) int16, 1..n_networks for seasons, 0 for movies/padding.
        holiday: (N+1,) bool, holiday titles.
        prev_season: (N+1,) int32 item_idx of the previous season, 0 if none.
        next_season: (N+1,) int32 item_idx of the next season, 0 if none.
        genre: (N+1,) int16 primary leaf genre (community), -1 for padding.
        popularity: (N+1,) float64 base popularity (Zipf), 0 for padding.
        affinity: (N+1, K) float32 how much each community likes the title.
        item_vec: (N+1, d) float32 unit personal-taste vectors.
        theta_start: (U+1, K) float64 genre taste at the start of the user's window.
        theta_end: (U+1, K) float64 genre taste at its end.
        user_vec: (U+1, d) float32 unit personal-taste vectors.
        subscribed: (U+1, n_networks + 1) bool; column 0 (movies) always True.
        t_first: (U+1,) int64 start of the planned active window, unix seconds.
        t_last: (U+1,) int64 end of the planned active window, unix seconds.
        activity: (U+1,) int64 planned number of events.
    """

    item_ids: np.ndarray
    user_ids: np.ndarray
    release_ts: np.ndarray
    network: np.ndarray
    holiday: np.ndarray
    prev_season: np.ndarray
    next_season: np.ndarray
    genre: np.ndarray
    popularity: np.ndarray
    affinity: np.ndarray
    item_vec: np.ndarray
    theta_start: np.ndarray
    theta_end: np.ndarray
    user_vec: np.ndarray
    subscribed: np.ndarray
    t_first: np.ndarray
    t_last: np.ndarray
    activity: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.release_ts.size - 1)

    @property
    def n_users(self) -> int:
        return int(self.activity.size - 1)

    def arrays(self) -> dict[str, np.ndarray]:
        """Name -> array, for ``np.savez``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -------------------------------------------------------------- the model
class TrueModel:
    """Evaluates and samples the planted next-item distribution.

    All methods work on batches of ``A`` rows: ``users`` (A,) user_idx, ``t``
    (A,) unix seconds, a boolean ``seen`` matrix (rows, N+1) addressed through
    ``rows`` (A,), and ``last`` (A,) the last item_idx of each history (0 if
    empty). Probabilities are exact up to floating-point rounding (the
    personal-taste dot products are float32).
    """

    def __init__(self, config: WorldConfig, lat: WorldLatents) -> None:
        self.cfg = config
        self.lat = lat
        self.N = lat.n_items
        self.K = config.n_genres
        self.rho = config.premiere_boost - 1.0
        self.window = config.premiere_days * DAY
        # off-season weight of each title: 1/holiday_boost for holiday titles
        self.off_season_w = np.where(lat.holiday, 1.0 / config.holiday_boost, 1.0)  # (N+1,)
        # q_k(i) ∝ popularity · affinity · holiday boost, normalised per community
        boost = np.where(lat.holiday, config.holiday_boost, 1.0)
        q = (lat.affinity.astype(np.float64) * (lat.popularity * boost)[:, None]).T  # (K, N+1)
        q[:, 0] = 0.0
        self.q = q / q.sum(axis=1, keepdims=True)  # (K, N+1)
        # titles in release order, with per-community prefix sums for premiere-window draws
        self.order = np.argsort(lat.release_ts[1:], kind="stable").astype(np.int64) + 1  # (N,)
        self.rel_sorted = lat.release_ts[self.order]  # (N,)
        P = np.zeros((self.K, self.N + 1))
        np.cumsum(self.q[:, self.order], axis=1, out=P[:, 1:])  # (K, N+1)
        self.P = P
        self.P_T = np.ascontiguousarray(P.T)  # (N+1, K), row gathers are cheap
        # rows offset by 2k so that one searchsorted serves every community
        self.P_flat = (P + 2.0 * np.arange(self.K)[:, None]).ravel()  # (K*(N+1),)
        self._alias: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def alias(self) -> tuple[np.ndarray, np.ndarray]:
        """Walker alias tables of every ``q_k`` over items 1..N: (K, N) prob and (K, N) alias.

        Built on first use (only sampling needs them).
        """
        if self._alias is None:
            tables = [_alias_table(self.q[k, 1:]) for k in range(self.K)]
            self._alias = (np.stack([t[0] for t in tables]), np.stack([t[1] for t in tables]))
        return self._alias

    # ------------------------------------------------------------ pieces
    def theta(self, users: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Genre taste at time ``t``, shape (A, K): linear drift over the user's window."""
        lat = self.lat
        t0 = lat.t_first[users]
        span = np.maximum(lat.t_last[users] - t0, 1)
        a = np.clip((t - t0) / span, 0.0, 1.0)[:, None]  # (A, 1)
        return (1.0 - a) * lat.theta_start[users] + a * lat.theta_end[users]

    def accept(
        self,
        users: np.ndarray,
        rows: np.ndarray,
        items: np.ndarray,
        t: np.ndarray,
        seen: np.ndarray,
        dots: np.ndarray,
    ) -> np.ndarray:
        """Every factor of ``s(i)`` beyond the community mixture and premiere boost, in [0, 1].

        Args:
            items: (A, C) item indices (C candidates, or all N+1 items).
            dots: (A, C) ``x_u · y_i`` for those items.

        Returns:
            (A, C) float64: release, subscription, unseen, personal, holiday and
            season-order factors multiplied.
        """
        lat = self.lat
        width = seen.shape[1]
        flat_seen = seen.reshape(-1)  # a view: seen is C-contiguous
        base = rows[:, None] * width  # (A, 1)
        n_sub = lat.subscribed.shape[1]
        ok = lat.release_ts[items] <= t[:, None]
        ok &= lat.subscribed.reshape(-1)[users[:, None] * n_sub + lat.network[items]]
        ok &= ~flat_seen[base + items]
        f = np.exp(self.cfg.personal_scale * (dots.astype(np.float64) - 1.0))
        off_season = _month(t) != 12  # (A,)
        f *= np.where(off_season[:, None], self.off_season_w[items], 1.0)
        prev = lat.prev_season[items]
        f *= np.where((prev > 0) & ~flat_seen[base + prev], self.cfg.out_of_order, 1.0)
        return f * ok

    def binge(
        self, users: np.ndarray, rows: np.ndarray, t: np.ndarray, seen: np.ndarray, last: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Next season of the last title and whether it can be binged now, both (A,)."""
        lat = self.lat
        ns = lat.next_season[last].astype(np.int64)
        avail = (ns > 0) & (lat.release_ts[ns] <= t) & ~seen[rows, ns]
        avail &= lat.subscribed[users, lat.network[ns]]
        return ns, avail

    def weights(self, users: np.ndarray, t: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """Unnormalised ``s(i)`` over all items, shape (A, N+1); ``seen`` is (A, N+1)."""
        lat = self.lat
        A = users.size
        base = self.theta(users, t) @ self.q  # (A, K) @ (K, N+1) -> (A, N+1)
        rel = lat.release_ts[None, :] <= t[:, None]  # (A, N+1)
        rec = rel & (lat.release_ts[None, :] > (t - self.window)[:, None])
        prop = base * rel * (1.0 + self.rho * rec)
        items = np.broadcast_to(np.arange(self.N + 1), (A, self.N + 1))  # (A, N+1)
        dots = lat.user_vec[users] @ lat.item_vec.T  # (A, d) @ (d, N+1) -> (A, N+1)
        return prop * self.accept(users, np.arange(A), items, t, np.ascontiguousarray(seen), dots)

    def probs(
        self, users: np.ndarray, t: np.ndarray, seen: np.ndarray, last: np.ndarray
    ) -> np.ndarray:
        """Exact next-item probabilities, shape (A, N+1); a row of zeros if nothing is left."""
        s = self.weights(users, t, seen)
        z = s.sum(axis=1, keepdims=True)  # (A, 1)
        p = np.divide(s, z, out=np.zeros_like(s), where=z > 0)
        A = users.size
        ns, avail = self.binge(users, np.arange(A), t, seen, last)
        b = self.cfg.binge_prob * avail  # (A,)
        p *= (1.0 - b)[:, None]
        rows = np.flatnonzero(avail)
        p[rows, ns[rows]] += b[rows]
        return p

    def affinity(self, users: np.ndarray, items: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Latent liking behind ratings and completions, shape (E,).

        ``σ x_u·y_i + log(Σ_k θ_uk(t) affinity_ik / max_k θ_uk(t))``.
        """
        lat = self.lat
        theta = self.theta(users, t)  # (E, K)
        taste = (theta * lat.affinity[items]).sum(axis=1) / theta.max(axis=1)
        cos = (lat.user_vec[users] * lat.item_vec[items]).sum(axis=1, dtype=np.float64)
        return self.cfg.personal_scale * cos + np.log(np.maximum(taste, 1e-12))

    def expected_rating(self, users: np.ndarray, items: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Exact expectation of the generated 1..5 rating (rounding and clipping included)."""
        mu = _RATING_MID + _RATING_SLOPE * (self.affinity(users, items, t) - _AFF_MID)  # (E,)
        edges = (np.arange(1.5, 5.0, 1.0)[None, :] - mu[:, None]) / self.cfg.rating_noise
        cdf = ndtr(edges)  # (E, 4): P(rating <= 1), ..., P(rating <= 4)
        return 5.0 - cdf.sum(axis=1)  # E[r] = 1 + sum_k P(r > k)

    # ------------------------------------------------------------ sampling
    def _propose(
        self,
        users: np.ndarray,
        rows: np.ndarray,
        t: np.ndarray,
        seen: np.ndarray,
        rng: np.random.Generator,
        C: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One rejection round: (A,) drawn items and (A,) whether one was accepted.

        Proposal: ``Σ_k θ_k q_k(i) (1 + ρ 1[recent_i])`` — components ``q_k``
        (alias tables) and ``q_k`` restricted to the premiere window (inverse
        CDF in release order) with weights ``θ_k`` and ``θ_k ρ q_k(window)``.
        Acceptance: :meth:`accept` (which also rejects unreleased titles), so an
        accepted draw follows ``s(i)``; among several accepted candidates a
        uniformly random one is kept.
        """
        A, K, N = users.size, self.K, self.N
        prob, alias = self.alias
        theta = self.theta(users, t)  # (A, K)
        hi = np.searchsorted(self.rel_sorted, t, side="right")  # (A,) released: order[:hi]
        lo = np.searchsorted(self.rel_sorted, t - self.window, side="right")  # recent: [lo, hi)
        rec_mass = self.P_T[hi] - self.P_T[lo]  # (A, K)
        w = np.concatenate([theta, theta * self.rho * rec_mass], axis=1)  # (A, 2K)
        cw = np.cumsum(w, axis=1)  # (A, 2K)
        off = 2.0 * np.arange(A)[:, None]  # (A, 1) row offsets for one flat searchsorted
        cwn = cw / cw[:, -1:] + off  # theta > 0, so every row has mass
        u = rng.random((A, C)) + off  # (A, C)
        comp = np.searchsorted(cwn.ravel(), u.ravel(), side="right").reshape(A, C)
        comp = np.minimum(comp - 2 * K * np.arange(A)[:, None], 2 * K - 1)  # (A, C)
        k = comp % K
        # community draws: alias tables, one uniform gives both the slot and the coin
        x = rng.random((A, C)) * N
        j = np.minimum(x.astype(np.int64), N - 1)
        items = np.where(x - j < prob[k, j], j, alias[k, j]) + 1  # (A, C)
        ra, rc = np.nonzero(comp >= K)
        if ra.size:  # premiere-window draws: inverse CDF over titles in release order
            kk, l0, h0 = k[ra, rc], lo[ra], hi[ra]
            base = self.P[kk, l0]
            val = base + rng.random(ra.size) * (self.P[kk, h0] - base)
            m = np.searchsorted(self.P_flat, val + 2.0 * kk, side="right") - 1 - kk * (N + 1)
            m = np.clip(m, l0, np.maximum(h0 - 1, l0))
            items[ra, rc] = self.order[np.minimum(m, N - 1)]
        # no BLAS here: tiny products, and BLAS threads thrash on a busy machine
        dots = np.einsum("ad,acd->ac", self.lat.user_vec[users], self.lat.item_vec[items])  # (A, C)
        acc = self.accept(users, rows, items, t, seen, dots)  # (A, C)
        key = np.where(rng.random((A, C)) < acc, rng.random((A, C)), -1.0)
        first = key.argmax(axis=1)  # a uniformly random accepted candidate
        ok = key[np.arange(A), first] >= 0.0
        return items[np.arange(A), first], ok

    def sample(
        self,
        users: np.ndarray,
        rows: np.ndarray,
        t: np.ndarray,
        seen: np.ndarray,
        last: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Draw the next item of each row, shape (A,) int64; 0 where nothing is left."""
        A = users.size
        out = np.zeros(A, dtype=np.int64)
        ns, avail = self.binge(users, rows, t, seen, last)
        pick = avail & (rng.random(A) < self.cfg.binge_prob)
        out[pick] = ns[pick]
        todo = np.flatnonzero(~pick)
        for r in range(self.cfg.rounds):
            if not todo.size:
                break
            # stragglers (low acceptance) get more candidates each round
            C = self.cfg.candidates << r
            items, ok = self._propose(users[todo], rows[todo], t[todo], seen, rng, C)
            out[todo[ok]] = items[ok]
            todo = todo[~ok]
        if todo.size:
            # exact fallback: users the rejection rounds could not serve
            s = self.weights(users[todo], t[todo], seen[rows[todo]])  # (A', N+1)
            cs = np.cumsum(s, axis=1)  # (A', N+1)
            tot = cs[:, -1]
            off = 2.0 * np.arange(todo.size)  # (A',) row offsets for one flat searchsorted
            cs = cs / np.where(tot > 0, tot, 1.0)[:, None] + off[:, None]
            u = rng.random(todo.size) + off
            pos = np.searchsorted(cs.ravel(), u, side="right") - (self.N + 1) * np.arange(todo.size)
            out[todo] = np.where(tot > 0, np.clip(pos, 1, self.N), 0)
        return out


def _alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table of a distribution over ``0..n-1``: (n,) prob, (n,) alias.

    Draw ``j`` uniform, keep it with probability ``prob[j]``, else take ``alias[j]``.
    """
    n = p.size
    w = (p * (n / p.sum())).tolist()
    prob = [1.0] * n
    alias = list(range(n))
    small = [i for i in range(n) if w[i] < 1.0]
    large = [i for i in range(n) if w[i] >= 1.0]
    while small and large:
        s, big = small.pop(), large.pop()
        prob[s], alias[s] = w[s], big
        w[big] += w[s] - 1.0
        (small if w[big] < 1.0 else large).append(big)
    return np.asarray(prob), np.asarray(alias, dtype=np.int64)


def _month(t: np.ndarray) -> np.ndarray:
    """Calendar month 1..12 of unix seconds, same shape."""
    months = np.asarray(t, dtype=np.int64).astype("datetime64[s]").astype("datetime64[M]")
    return months.astype(np.int64) % 12 + 1
