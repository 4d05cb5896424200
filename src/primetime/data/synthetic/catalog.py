"""The catalog of a synthetic world: movies and show seasons, their latents and KG triples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from primetime.data.synthetic.config import DAY, WorldConfig
from primetime.data.synthetic.vocab import (
    _ADJ,
    _FIRST,
    _LAST,
    _NOUN,
    _PLACE,
    _ROLE,
    _VERB,
    GENRE_TREE,
    HOLIDAY,
    HOLIDAY_KEYWORDS,
    NETWORKS,
    TONES,
    leaf_genres,
)

#: Release time of the padding item 0: never released.
NEVER = np.iinfo(np.int64).max


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _as_date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(day))


# ------------------------------------------------------------------ catalog
@dataclass
class _Catalog:
    frame: pl.DataFrame
    kg: pl.DataFrame
    arrays: dict[str, np.ndarray]  # item latents, item_idx order (row 0 padding)
    centers: np.ndarray  # (K, d) community centres of the taste space


def _people(
    cfg: WorldConfig, n_titles: int, rng: np.random.Generator
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """A pool of people clustered by genre community.

    Returns:
        names (P,), community (P,), and ``seg`` (K+1,) / ``cum`` (P,) so that the
        people of community k are ``seg[k]:seg[k+1]`` with fame prefix sums ``cum``.
    """
    K = cfg.n_genres
    n = max(4 * K, int(0.7 * n_titles))
    combos = len(_FIRST) * len(_LAST)
    # unique names: "First Last", then "First M. Last", then a number for huge worlds
    reps = max(1, math.ceil(2 * n / (combos * 26)))
    space = combos if n <= combos // 2 else combos * 26 * reps
    names = []
    for c in rng.choice(space, size=n, replace=False).tolist():
        rep, c = divmod(int(c), combos * 26)
        initial, rest = divmod(c, combos)
        first, last = _FIRST[rest % len(_FIRST)], _LAST[rest // len(_FIRST)]
        middle = f" {chr(65 + initial)}." if space > combos else ""
        names.append(f"{first}{middle} {last}" + (f" {rep + 1}" if rep else ""))
    community = np.sort(rng.integers(0, K, size=n))  # people grouped by community
    fame = rng.permutation(np.arange(1, n + 1, dtype=np.float64) ** -0.8)
    seg = np.searchsorted(community, np.arange(K + 1))
    return names, community, seg, np.cumsum(fame)


def _draw_people(
    comm: np.ndarray, count: int, seg: np.ndarray, cum: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``count`` people per row from the community in ``comm`` (fame-weighted), (M, count)."""
    lo_i, hi_i = seg[comm], seg[comm + 1]
    empty = hi_i <= lo_i  # a community without people (tiny worlds): draw from everyone
    lo_i = np.where(empty, 0, lo_i)
    hi_i = np.where(empty, cum.size, hi_i)
    c0 = np.where(lo_i > 0, cum[np.maximum(lo_i - 1, 0)], 0.0)
    c1 = cum[hi_i - 1]
    v = c0[:, None] + rng.random((comm.size, count)) * (c1 - c0)[:, None]  # (M, count)
    idx = np.searchsorted(cum, v, side="right")
    return np.clip(idx, lo_i[:, None], hi_i[:, None] - 1)


def _make_catalog(cfg: WorldConfig, rng: np.random.Generator) -> _Catalog:
    """Movies and show seasons, in a random item order, with their latents and KG."""
    K, d = cfg.n_genres, cfg.dim
    leaves = leaf_genres()[:K]
    parent_of = np.array([list(GENRE_TREE).index(p) for _, p in leaves])  # (K,)
    start_day, end_day = cfg.start_day, cfg.end_day
    last_release = end_day - 30  # nothing premieres in the world's last month

    # --- base titles: movies then shows
    M, S = cfg.n_movies, cfg.n_shows
    B = M + S
    genre_share = rng.dirichlet(np.full(K, 3.0))
    primary = rng.choice(K, size=B, p=genre_share)
    has_second = rng.random(B) < 0.35
    second = (primary + 1 + rng.integers(0, max(K - 1, 1), size=B)) % K
    second = np.where(has_second & (K > 1), second, -1)
    base_pop = rng.permutation(np.arange(1, B + 1, dtype=np.float64) ** -cfg.popularity_exponent)
    holiday = np.zeros(B, dtype=bool)
    holiday[:M] = rng.random(M) < cfg.holiday_share

    # movie release days: the back catalogue reaches decades back, the rest spreads evenly
    back = rng.random(B) < cfg.back_catalog
    years_back = np.minimum(rng.exponential(8.0, size=B), 60.0)
    day_back = start_day - 1 - (years_back * 365.25).astype(np.int64)
    day_new = rng.integers(start_day, last_release + 1, size=B)
    rel_day = np.where(back, day_back, day_new)
    # holiday movies premiere between mid-November and mid-December
    hol_idx = np.flatnonzero(holiday)
    if hol_idx.size:
        years = rel_day[hol_idx].astype("datetime64[D]").astype("datetime64[Y]")
        nov15 = (years.astype("datetime64[D]") + np.timedelta64(318, "D")).astype(np.int64)
        hol_day = nov15 + rng.integers(0, 30, size=hol_idx.size)
        rel_day[hol_idx] = np.where(hol_day > last_release, hol_day - 365, hol_day)

    # summer releases: their own random stream, so a world without them is unchanged
    if cfg.summer_share > 0:
        srng = np.random.default_rng([cfg.seed, 0x5C])
        pick = np.flatnonzero(~back[:M] & ~holiday[:M] & (srng.random(M) < cfg.summer_share))
        years = rel_day[pick].astype("datetime64[D]").astype("datetime64[Y]")
        jun1 = (years.astype("datetime64[D]") + np.timedelta64(151, "D")).astype(np.int64)
        summer_day = jun1 + srng.integers(0, 92, size=pick.size)  # about June 1 .. Aug 31
        rel_day[pick] = np.where(summer_day > last_release, summer_day - 365, summer_day)

    # --- seasons
    n_planned = rng.integers(cfg.min_seasons, cfg.max_seasons + 1, size=S)
    show_net = rng.choice(cfg.n_networks, size=S, p=_network_share(cfg.n_networks)) + 1
    show_first = rel_day[M:].copy()
    season_rows: list[tuple[int, int, int, int]] = []  # (show, season, first day, episodes)
    gaps = rng.integers(280, 460, size=(S, max(cfg.max_seasons, 1)))
    eps_stream = rng.integers(6, 11, size=(S, max(cfg.max_seasons, 1)))
    eps_broadcast = rng.integers(10, 23, size=(S, max(cfg.max_seasons, 1)))
    for s in range(S):
        day = int(show_first[s])
        streaming = NETWORKS[show_net[s] - 1][1]
        for n in range(int(n_planned[s])):
            if day > last_release:
                break
            eps = int(eps_stream[s, n] if streaming else eps_broadcast[s, n])
            season_rows.append((s, n + 1, day, eps))
            day += int(gaps[s, n]) + (0 if streaming else 7 * eps)
    n_seasons = (
        np.bincount([r[0] for r in season_rows], minlength=S)
        if season_rows
        else np.zeros(S, dtype=np.int64)
    )

    # --- items: movies, then seasons; then a random item order
    N = M + len(season_rows)
    src = np.concatenate([np.arange(M), M + np.array([r[0] for r in season_rows], dtype=np.int64)])
    season_no = np.concatenate(
        [np.zeros(M, np.int64), np.array([r[1] for r in season_rows], np.int64)]
    )
    item_day = np.concatenate([rel_day[:M], np.array([r[2] for r in season_rows], np.int64)])
    episodes = np.concatenate(
        [np.zeros(M, np.int64), np.array([r[3] for r in season_rows], np.int64)]
    )
    perm = rng.permutation(N)  # perm[k] = the natural item placed at item_idx k+1
    pos = np.empty(N, dtype=np.int64)
    pos[perm] = np.arange(N)  # natural item -> row
    src, season_no, item_day, episodes = src[perm], season_no[perm], item_day[perm], episodes[perm]
    idx_of = pos + 1  # natural item -> item_idx

    prev_season = np.zeros(N + 1, np.int32)
    next_season = np.zeros(N + 1, np.int32)
    k0 = M
    for s in range(S):
        for n in range(int(n_seasons[s]) - 1):
            a, b = idx_of[k0 + n], idx_of[k0 + n + 1]
            next_season[a], prev_season[b] = b, a
        k0 += int(n_seasons[s])

    is_show = src >= M
    show_of = np.where(is_show, src - M, -1)
    network = np.zeros(N + 1, np.int16)
    network[1:] = np.where(is_show, show_net[np.maximum(show_of, 0)], 0)
    pop = np.zeros(N + 1)
    pop[1:] = base_pop[src] * np.where(is_show, 0.85 ** (season_no - 1), 1.0)
    hol = np.zeros(N + 1, bool)
    hol[1:] = holiday[src]
    genre = np.full(N + 1, -1, np.int16)
    genre[1:] = primary[src]
    # community affinity: primary 1, secondary 0.5, siblings of the primary 0.2, others 0.03
    aff = np.full((N + 1, K), 0.03, dtype=np.float32)
    sib = parent_of[None, :] == parent_of[primary[src]][:, None]  # (N, K)
    aff[1:][sib] = 0.2
    rows = np.arange(1, N + 1)
    sec = second[src]
    aff[rows[sec >= 0], sec[sec >= 0]] = 0.5
    aff[rows, primary[src]] = 1.0
    aff[0] = 0.0
    release_ts = np.full(N + 1, NEVER, np.int64)
    release_ts[1:] = item_day * DAY
    centers = _unit(rng.normal(size=(K, d)))  # (K, d)
    item_vec = np.zeros((N + 1, d), np.float32)
    item_vec[1:] = _unit(centers[primary[src]] + 0.9 * _unit(rng.normal(size=(N, d))))

    # --- people
    names, _, seg, cum = _people(cfg, B, rng)
    movie_cast = _draw_people(primary[:M], 5, seg, cum, rng)  # (M, 5)
    movie_star = np.searchsorted(cum, rng.random(M) * cum[-1], side="right")  # (M,)
    movie_dir = _draw_people(primary[:M], 1, seg, cum, rng)[:, 0]
    movie_wri = _draw_people(primary[:M], 2, seg, cum, rng)
    n_wri = rng.integers(1, 3, size=M)
    show_cast = _draw_people(primary[M:], 6, seg, cum, rng)  # (S, 6)
    show_wri = _draw_people(primary[M:], 1, seg, cum, rng)[:, 0]
    n_s = len(season_rows)
    season_keep = rng.random((n_s, 6)) < 0.85
    season_guest = (
        _draw_people(primary[M + np.array([r[0] for r in season_rows], np.int64)], 2, seg, cum, rng)
        if n_s
        else np.zeros((0, 2), np.int64)
    )
    season_dir = (
        _draw_people(
            primary[M + np.array([r[0] for r in season_rows], np.int64)], 1, seg, cum, rng
        )[:, 0]
        if n_s
        else np.zeros(0, np.int64)
    )

    # --- text
    leaf_kw = [GENRE_TREE[p][leaf] for leaf, p in leaves]
    tone_pick = rng.integers(0, 4, size=B)
    title_pick = rng.integers(0, [len(_ADJ), len(_NOUN), 3], size=(B, 3))
    phrase_pick = rng.integers(
        0,
        [len(_ROLE), len(_VERB), len(_PLACE), 5, 5, len(_FIRST), len(HOLIDAY_KEYWORDS)],
        size=(B, 7),
    )
    base_titles = []
    base_desc = []
    for b in range(B):
        a_, n_, form = title_pick[b]
        t_ = (
            f"The {_ADJ[a_]} {_NOUN[n_]}",
            f"{_ADJ[a_]} {_NOUN[n_]}",
            f"{_NOUN[n_]} of {_PLACE[phrase_pick[b, 2]]}",
        )[form]
        base_titles.append(t_)
        g = int(primary[b])
        leaf, parent = leaves[g]
        role, verb, place, kw1, kw2, who, hk = phrase_pick[b]
        kws = leaf_kw[g]
        kind_word = "film" if b < M else "series"
        text = (
            f"A {TONES[parent][tone_pick[b]]} {leaf.lower()} {kind_word}. "
            f"{_FIRST[who]}, {_ROLE[role]}, {_VERB[verb]} {kws[kw1]} and "
            f"{kws[(kw1 + 1 + kw2 % 4) % 5]} in {_PLACE[place]}."
        )
        if second[b] >= 0:
            kw_sec = leaf_kw[int(second[b])]
            text += f" Also: {kw_sec[kw2]}."
        if holiday[b]:
            text += f" A {HOLIDAY_KEYWORDS[hk]} story for the holidays."
        base_desc.append(text)

    item_ids: list[str] = []
    titles: list[str] = []
    descs: list[str] = []
    genres_col: list[list[str]] = []
    cast_col: list[list[str]] = []
    crew_col: list[list[str]] = []
    series_col: list[str | None] = []
    kg_h: list[str] = []
    kg_r: list[str] = []
    kg_t: list[str] = []
    season_index = {(r[0], r[1]): j for j, r in enumerate(season_rows)}
    leaf_names = {leaf for leaf, _ in leaves}

    def add(h: str, r: str, tails: list[str]) -> None:
        kg_h.extend([h] * len(tails))
        kg_r.extend([r] * len(tails))
        kg_t.extend(tails)

    for k in range(N):
        b = int(src[k])
        g = int(primary[b])
        gs = [leaves[g][0], leaves[g][1]]
        if second[b] >= 0:
            gs += [leaves[int(second[b])][0], leaves[int(second[b])][1]]
        if holiday[b]:
            gs.append(HOLIDAY)
        gs = list(dict.fromkeys(gs))
        if b < M:
            iid = f"m{b + 1:06d}"
            title = base_titles[b]
            desc = base_desc[b]
            cast_p = list(dict.fromkeys([*movie_cast[b].tolist(), int(movie_star[b])]))
            dir_p = [int(movie_dir[b])]
            wri_p = list(dict.fromkeys(movie_wri[b, : n_wri[b]].tolist()))
            series_col.append(None)
        else:
            s, n = b - M, int(season_no[k])
            j = season_index[(s, n)]
            iid = f"tv{s + 1:05d}-s{n:02d}"
            title = f"{base_titles[b]} — Season {n}"
            desc = f"Season {n} of {base_titles[b]}. {base_desc[b]}"
            keep = show_cast[s][season_keep[j]].tolist()
            cast_p = list(dict.fromkeys([*keep, *season_guest[j].tolist()]))
            dir_p = [int(season_dir[j])]
            wri_p = [int(show_wri[s])]
            series_col.append(f"tv{s + 1:05d}")
        item_ids.append(iid)
        titles.append(title)
        descs.append(desc)
        genres_col.append(gs)
        cast_col.append([names[p] for p in cast_p])
        crew_col.append([names[p] for p in dir_p + wri_p])
        add(iid, "actor", [f"person:{names[p]}" for p in cast_p])
        add(iid, "director", [f"person:{names[p]}" for p in dir_p])
        # a movie's writers; a show's one writer across its seasons is its creator
        add(iid, "writer" if b < M else "creator", [f"person:{names[p]}" for p in wri_p])
        add(iid, "genre", [f"genre:{x}" for x in gs if x not in leaf_names])
        add(iid, "subgenre", [f"genre:{x}" for x in gs if x in leaf_names])
        if b >= M:
            add(iid, "network", [f"network:{NETWORKS[int(network[k + 1]) - 1][0]}"])
            add(iid, "season_of", [f"series:{series_col[-1]}"])
    for k in range(N):
        if next_season[k + 1]:
            add(item_ids[k], "next_season", [item_ids[int(next_season[k + 1]) - 1]])
    # the genre tree: each leaf genre of this world under its top genre
    for leaf, parent in leaves:
        add(f"genre:{leaf}", "subgenre_of", [f"genre:{parent}"])

    first_air = [None if src[k] < M else _as_date(item_day[k]) for k in range(N)]
    last_air: list[date | None] = []
    for k in range(N):
        if src[k] < M:
            last_air.append(None)
            continue
        streaming = NETWORKS[int(network[k + 1]) - 1][1]
        last_air.append(_as_date(item_day[k] + (0 if streaming else 7 * (int(episodes[k]) - 1))))
    frame = pl.DataFrame(
        {
            "item_id": item_ids,
            "title": titles,
            "year": [_as_date(x).year for x in item_day.tolist()],
            "genres": genres_col,
            "kind": ["show" if x >= M else "movie" for x in src.tolist()],
            "network": [None if x == 0 else NETWORKS[x - 1][0] for x in network[1:].tolist()],
            "series_id": series_col,
            "season_number": [
                None if src[k] < M else int(x) for k, x in enumerate(season_no.tolist())
            ],
            "seasons": [None if x < M else int(n_seasons[x - M]) for x in src.tolist()],
            "episodes": [None if src[k] < M else int(x) for k, x in enumerate(episodes.tolist())],
            "first_air_date": first_air,
            "last_air_date": last_air,
            "release_date": [_as_date(x) for x in item_day.tolist()],
            "cast": cast_col,
            "crew": crew_col,
            "description": descs,
        }
    )
    kg = pl.DataFrame(
        {"head": kg_h, "relation": kg_r, "tail": kg_t},
        schema={"head": pl.Utf8, "relation": pl.Utf8, "tail": pl.Utf8},
    )
    arrays = {
        "item_ids": np.array(item_ids, dtype=str),
        "release_ts": release_ts,
        "network": network,
        "holiday": hol,
        "prev_season": prev_season,
        "next_season": next_season,
        "genre": genre,
        "popularity": pop,
        "affinity": aff,
        "item_vec": item_vec,
    }
    return _Catalog(frame=frame, kg=kg, arrays=arrays, centers=centers)


def _network_share(n: int) -> np.ndarray:
    """How shows spread over the first ``n`` networks (bigger platforms carry more)."""
    w = np.array([x[2] for x in NETWORKS[:n]])
    return w / w.sum()
