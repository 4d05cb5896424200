"""Users of a synthetic world and their events: tastes, schedules, multi-process sampling."""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import polars as pl

from primetime.data.events import EventType
from primetime.data.synthetic.catalog import _Catalog, _unit
from primetime.data.synthetic.config import DAY, WorldConfig
from primetime.data.synthetic.truth import _AFF_MID, _RATING_MID, _RATING_SLOPE, TrueModel
from primetime.data.synthetic.vocab import NETWORKS, leaf_genres

log = logging.getLogger(__name__)

# weekly / daily / yearly rhythm of sessions (Monday = 0)
_WEEKDAY_W = np.array([0.8, 0.8, 0.85, 0.9, 1.2, 1.6, 1.5])
_MONTH_W = np.array([1.15, 1.05, 1.0, 0.95, 0.9, 0.85, 0.85, 0.85, 0.95, 1.0, 1.1, 1.3])
_HOUR_W = np.array(
    [
        0.6,
        0.35,
        0.2,
        0.1,
        0.05,
        0.05,
        0.1,
        0.2,
        0.3,
        0.35,
        0.4,
        0.45,
        0.55,
        0.55,
        0.55,
        0.6,
        0.7,
        0.9,
        1.2,
        1.6,
        2.0,
        2.1,
        1.8,
        1.1,
    ]
)
_HOUR_P = _HOUR_W / _HOUR_W.sum()
_SESSION_GAP_S = 2_700.0  # mean gap between two events of one session (45 min)


def _day_month(days: np.ndarray) -> np.ndarray:
    """Calendar month 1..12 of day numbers (days since 1970-01-01)."""
    return (
        np.asarray(days, dtype=np.int64)
        .astype("datetime64[D]")
        .astype("datetime64[M]")
        .astype(np.int64)
        % 12
        + 1
    )


# -------------------------------------------------------------------- users
def _make_users(
    cfg: WorldConfig, cat: _Catalog, rng: np.random.Generator
) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """Users in a random order: tastes, subscriptions, activity and active windows."""
    U, K, d = cfg.n_users, cfg.n_genres, cfg.dim
    n_items = cat.arrays["release_ts"].size - 1

    def taste(size: int) -> np.ndarray:
        return 0.95 * rng.dirichlet(np.full(K, cfg.taste_concentration), size=size) + 0.05 / K

    theta0 = np.zeros((U + 1, K))
    theta0[1:] = taste(U)
    theta1 = np.zeros((U + 1, K))
    theta1[1:] = (1.0 - cfg.drift) * theta0[1:] + cfg.drift * taste(U)
    user_vec = np.zeros((U + 1, d), np.float32)
    user_vec[1:] = _unit(theta0[1:] @ cat.centers + 0.6 * _unit(rng.normal(size=(U, d))))

    share = np.array([x[2] for x in NETWORKS[: cfg.n_networks]])
    subs = np.zeros((U + 1, cfg.n_networks + 1), dtype=bool)
    subs[:, 0] = True  # movies need no subscription
    subs[1:, 1:] = rng.random((U, cfg.n_networks)) < share[None, :]
    none = np.flatnonzero(~subs[1:, 1:].any(axis=1)) + 1
    subs[none, 1 + rng.choice(cfg.n_networks, size=none.size, p=share / share.sum())] = True

    cap = max(cfg.min_events, min(cfg.max_events, int(cfg.max_event_share * n_items)))
    excess = max(cfg.mean_events - cfg.min_events, 1e-3)
    mu = math.log(excess) - cfg.activity_sigma**2 / 2  # E[lognormal] = excess
    activity = np.zeros(U + 1, dtype=np.int64)
    activity[1:] = np.minimum(
        cfg.min_events + np.floor(rng.lognormal(mu, cfg.activity_sigma, size=U)), cap
    )

    # active window: about one session every few days, inside the world
    world_days = cfg.end_day - cfg.start_day
    per_event = rng.lognormal(math.log(2.5), 0.7, size=U)  # days per event
    span = np.clip(activity[1:] * per_event, 14, world_days - 3).astype(np.int64)
    first_day = cfg.start_day + (rng.random(U) * (world_days - 2 - span)).astype(np.int64)
    t_first = np.zeros(U + 1, np.int64)
    t_last = np.zeros(U + 1, np.int64)
    t_first[1:] = first_day * DAY
    t_last[1:] = (first_day + span + 1) * DAY - 1

    leaves = leaf_genres()[:K]
    user_ids = [f"u{k + 1:07d}" for k in range(U)]
    net_names = [x[0] for x in NETWORKS[: cfg.n_networks]]
    top = theta0[1:].argmax(axis=1)
    frame = pl.DataFrame(
        {
            "user_id": user_ids,
            "platforms": [[net_names[j] for j in np.flatnonzero(r)] for r in subs[1:, 1:]],
            "top_genre": [leaves[g][0] for g in top.tolist()],
            "activity": activity[1:],
        },
        schema={
            "user_id": pl.Utf8,
            "platforms": pl.List(pl.Utf8),
            "top_genre": pl.Utf8,
            "activity": pl.Int64,
        },
    )
    arrays = {
        "user_ids": np.array(user_ids, dtype=str),
        "theta_start": theta0,
        "theta_end": theta1,
        "user_vec": user_vec,
        "subscribed": subs,
        "t_first": t_first,
        "t_last": t_last,
        "activity": activity,
    }
    return frame, arrays


# ---------------------------------------------------------------- schedule
def _user_schedule(
    cfg: WorldConfig,
    n: np.ndarray,
    t_first: np.ndarray,
    t_last: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Event times for a block of users, padded matrix (B, max n), strictly increasing per row.

    Sessions fall on days weighted by weekday and month, start at evening-heavy
    hours, and hold a few events about 45 minutes apart. Entries beyond ``n[b]``
    are 0.
    """
    B = n.size
    E = int(n.sum())
    L = int(n.max()) if B else 0
    d0 = t_first // DAY
    d1 = np.maximum(t_last // DAY - 2, d0)  # a margin so that sessions end inside the window
    m = np.maximum(1, np.rint(n / cfg.events_per_session)).astype(np.int64)  # sessions per user
    S = int(m.sum())
    srow = np.repeat(np.arange(B), m)  # (S,)
    # days: 4 uniform candidates, first one accepted by weekday x month weight
    cand = d0[srow, None] + (rng.random((S, 4)) * (d1 - d0 + 1)[srow, None]).astype(np.int64)
    w = _WEEKDAY_W[(cand + 3) % 7] * _MONTH_W[_day_month(cand) - 1]  # (S, 4)
    hit = rng.random((S, 4)) < w / (_WEEKDAY_W.max() * _MONTH_W.max())
    day = cand[np.arange(S), np.where(hit.any(axis=1), hit.argmax(axis=1), 3)]
    start = day * DAY + rng.choice(24, size=S, p=_HOUR_P) * 3600 + rng.integers(0, 3600, size=S)
    # events -> sessions
    erow = np.repeat(np.arange(B), n)  # (E,)
    soff = np.concatenate([[0], np.cumsum(m)[:-1]])
    sess = soff[erow] + (rng.random(E) * m[erow]).astype(np.int64)  # (E,) global session
    by_sess = np.argsort(sess, kind="stable")
    gap = rng.exponential(_SESSION_GAP_S, size=E) + 120.0
    csum = np.cumsum(gap[by_sess])
    first_in = np.r_[True, sess[by_sess][1:] != sess[by_sess][:-1]]
    seg_start = np.maximum.accumulate(np.where(first_in, np.arange(E), 0))
    offset = csum - csum[seg_start]  # 0 for a session's first event
    ts = np.empty(E, np.int64)
    ts[by_sess] = start[sess[by_sess]] + offset.astype(np.int64)
    ts = np.minimum(ts, t_last[erow])
    # per user, time order, then strictly increasing (ties pushed by one second)
    order = np.lexsort((ts, erow))
    ts = ts[order]
    estart = np.concatenate([[0], np.cumsum(n)[:-1]])
    pos = np.arange(E) - estart[erow]  # erow is already sorted
    big = np.int64(1) << 40
    key = ts - pos + erow * big
    ts = np.maximum.accumulate(key) - erow * big + pos
    out = np.zeros((B, L), np.int64)  # (B, L)
    out[erow, pos] = ts
    return out


# --------------------------------------------------------------- generation
def _generate_chunk(
    model: TrueModel, users: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Events of a block of users (sorted by activity, most active first), flat arrays."""
    cfg, lat = model.cfg, model.lat
    B = users.size
    n = lat.activity[users]
    T = _user_schedule(cfg, n, lat.t_first[users], lat.t_last[users], rng)  # (B, L)
    L = T.shape[1]
    H = np.zeros((B, L), np.int32)  # (B, L) items in time order, 0 = no event
    seen = np.zeros((B, model.N + 1), dtype=bool)  # (B, N+1)
    last = np.zeros(B, np.int64)  # each user's last watched title
    # users are sorted by activity, so those still going at step j are a prefix
    n_active = B - np.searchsorted(np.sort(n), np.arange(L), side="right")  # (L,)
    for j in range(L):
        act = np.arange(n_active[j])
        items = model.sample(users[act], act, T[act, j], seen, last[act], rng)
        # a user with nothing left to watch at this time skips the event (new titles
        # may come out before their next one)
        act, items = act[items > 0], items[items > 0]
        H[act, j] = items
        seen[act, items] = True
        last[act] = items
    keep = H > 0  # (B, L)
    if keep.sum() < n.sum():
        log.debug("%d event(s) skipped: nothing left to watch", int(n.sum() - keep.sum()))
    u = np.broadcast_to(users[:, None], (B, L))[keep]  # row-major: per user, time order
    items, ts = H[keep], T[keep]
    # ratings and event types from the same latent affinity
    E = items.size
    step = 1 << 18  # blocks bound the (E, K) temporaries of heavy chunks
    aff = (
        np.concatenate(
            [
                model.affinity(u[a : a + step], items[a : a + step], ts[a : a + step])
                for a in range(0, E, step)
            ]
        )
        if E
        else np.zeros(0)
    )  # (E,)
    mu = _RATING_MID + _RATING_SLOPE * (aff - _AFF_MID)
    rating = np.clip(np.rint(mu + rng.normal(0.0, cfg.rating_noise, E)), 1, 5).astype(np.float32)
    is_rate = rng.random(E) < cfg.rate_prob
    complete = rng.random(E) < 1.0 / (1.0 + np.exp(-(1.5 * (aff - _AFF_MID) + 0.8)))
    event = np.where(
        is_rate,
        EventType.RATE.code,
        np.where(complete, EventType.COMPLETE.code, EventType.PLAY.code),
    )
    return {
        "user_idx": u.astype(np.int32),
        "item_idx": items.astype(np.int32),
        "timestamp": ts,
        "rating": np.where(is_rate, rating, np.float32(np.nan)).astype(np.float32),
        "event": event.astype(np.int8),
    }


_WORKER_MODEL: TrueModel | None = None


def _init_worker(model: TrueModel) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = model


def _worker_chunk(users: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    assert _WORKER_MODEL is not None, "worker not initialised"
    return _generate_chunk(_WORKER_MODEL, users, rng)


def _run_chunks(
    model: TrueModel, blocks: list[np.ndarray], rngs: list[np.random.Generator], workers: int
) -> Iterator[dict[str, np.ndarray]]:
    """Events of every block of users, in block order, on ``workers`` processes."""
    if workers == 1 or len(blocks) == 1:
        for users, rng in zip(blocks, rngs, strict=True):
            yield _generate_chunk(model, users, rng)
        return
    # spawn, not fork: the parent may hold polars / BLAS thread pools
    ctx = multiprocessing.get_context("spawn")
    jobs = iter(zip(blocks, rngs, strict=True))
    with ProcessPoolExecutor(
        min(workers, len(blocks)), mp_context=ctx, initializer=_init_worker, initargs=(model,)
    ) as pool:
        # a bounded window of chunks in flight keeps finished results from piling up
        pending = deque(
            pool.submit(_worker_chunk, u, r) for u, r in itertools.islice(jobs, 2 * workers)
        )
        while pending:
            done = pending.popleft().result()
            nxt = next(jobs, None)
            if nxt is not None:
                pending.append(pool.submit(_worker_chunk, *nxt))
            yield done
