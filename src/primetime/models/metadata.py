"""Title metadata as integer tokens, for the content models (``multimodal``, ``contrastive``).

Every title becomes a few padded rows of token ids (0 = padding / unknown):

* ``genres`` (V, G): the catalog's genres;
* ``subgenres`` (V, S): finer genres from the knowledge graph (a title's tails of a
  relation named ``…genre``, e.g. Freebase ``film.film.genre`` on ml-100k: 226
  genres against the catalog's 19), when they differ from the catalog's, most
  frequent first;
* ``cast`` (V, C) and ``crew`` (V, W): the catalog's cast / crew lists, or, for a
  title without them, the graph's people of the title (``…actor`` / ``…starring``
  for cast; director, writer, producer, cinematographer for crew; ml-100k has no
  cast column, its graph has 40k actor triples). People on fewer than
  ``min_count`` titles are dropped (a person seen once links nothing), and each
  title keeps its ``max_people`` most frequent;
* ``temporal`` (V, 5): year bucket, first-air-date year bucket, season number
  (capped), network, kind; column j has its own ids (sizes in ``temporal_sizes``).

Row 0 (padding) is all zero. Only the catalog and graph are read, never
interactions, so a title nobody has watched has the same tokens as any other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl

from primetime.data.catalog import Catalog
from primetime.data.side import SideData

#: Last segment of a graph relation (head = title) -> token field.
CAST_RELATIONS = frozenset({"actor", "cast", "starring", "acted_in", "stars"})
CREW_RELATIONS = frozenset(
    {
        "director",
        "directed_by",
        "writer",
        "written_by",
        "producer",
        "produced_by",
        "cinematography",
        "creator",
        "created_by",
    }
)
FIELDS = ("genres", "subgenres", "cast", "crew", "temporal")
TEMPORAL = ("year", "air_year", "season", "network", "kind")


@dataclass(frozen=True)
class ItemTokens:
    """Token ids per item_idx (row 0 padding); see the module docstring."""

    genres: np.ndarray  # (V, G) int64
    subgenres: np.ndarray  # (V, S) int64
    cast: np.ndarray  # (V, C) int64
    crew: np.ndarray  # (V, W) int64
    temporal: np.ndarray  # (V, 5) int64
    temporal_sizes: np.ndarray  # (5,) int64: ids per temporal column, padding included

    @property
    def sizes(self) -> dict[str, int]:
        """Vocabulary size (padding included) of every token field but ``temporal``."""
        return {f: int(getattr(self, f).max(initial=0)) + 1 for f in FIELDS[:4]}

    def arrays(self, prefix: str = "tok_") -> dict[str, np.ndarray]:
        """The arrays to save with a model (``prefix`` + field name)."""
        out = {prefix + f: getattr(self, f) for f in FIELDS}
        out[prefix + "temporal_sizes"] = self.temporal_sizes
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "tok_") -> ItemTokens:
        return cls(**{f: arrays[prefix + f] for f in (*FIELDS, "temporal_sizes")})

    @classmethod
    def empty(cls, n_items: int) -> ItemTokens:
        """No metadata (no catalog given): every field one all-padding column."""
        z = np.zeros((n_items, 1), dtype=np.int64)
        return cls(z, z, z, z, np.zeros((n_items, 5), np.int64), np.ones(5, np.int64))


def _pad(rows: list[list[int]], width: int | None = None) -> np.ndarray:
    """(len(rows), width) int64, each row left-aligned and zero-padded."""
    width = max(1, max((len(r) for r in rows), default=0) if width is None else width)
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : min(len(r), width)] = r[:width]
    return out


def _ids(values: list[list[str]]) -> list[list[int]]:
    """Per-row string lists -> 1-based ids (sorted names, so ids are reproducible)."""
    names = sorted({v for row in values for v in row})
    index = {v: i + 1 for i, v in enumerate(names)}
    return [[index[v] for v in dict.fromkeys(row)] for row in values]


def _people(rows: list[list[str]], min_count: int, max_people: int) -> list[list[int]]:
    """Keep people on >= ``min_count`` titles, the ``max_people`` most frequent per title."""
    return _ids(_kept_people(rows, min_count, max_people))


def _bucket(years: list[int | None], width: int) -> list[int]:
    """Year -> bucket id (1-based, ``width`` years wide); None -> 0."""
    known = [y for y in years if y is not None]
    if not known:
        return [0] * len(years)
    lo = min(known)
    return [0 if y is None else (y - lo) // width + 1 for y in years]


@dataclass
class _Names:
    """What :func:`item_tokens` reads of every catalog title, as names (row k = item_idx k+1)."""

    genres: list[list[str]]
    sub: list[list[str]]  # graph genres, unfiltered
    cast: list[list[str]]  # the catalog's, else the graph's
    crew: list[list[str]]
    years: list[int | None]
    air: list[int | None]
    season: list[int]
    network: list[str | None]
    kind: list[int]  # 1 movie, 2 show


def _names(side: SideData, max_season: int) -> _Names:
    cat = side.catalog
    assert cat is not None
    frame = cat.frame
    ids = frame["item_id"].to_list()
    row_of = {iid: k for k, iid in enumerate(ids)}
    genres = [list(g or ()) for g in frame["genres"].to_list()]
    cast = [list(c or ()) for c in frame["cast"].to_list()]
    crew = [list(c or ()) for c in frame["crew"].to_list()]
    sub: list[list[str]] = [[] for _ in ids]
    kg_cast: list[list[str]] = [[] for _ in ids]
    kg_crew: list[list[str]] = [[] for _ in ids]
    if side.kg is not None:
        t = side.kg.triples.filter(pl.col("head").is_in(ids))
        for head, rel, tail in t.iter_rows():
            last = rel.rsplit(".", 1)[-1].lower()
            k = row_of[head]
            if last.endswith("genre"):
                sub[k].append(tail)
            elif last in CAST_RELATIONS:
                kg_cast[k].append(tail)
            elif last in CREW_RELATIONS:
                kg_crew[k].append(tail)
    return _Names(
        genres=genres,
        sub=sub,
        cast=[c if c else kc for c, kc in zip(cast, kg_cast, strict=True)],
        crew=[c if c else kc for c, kc in zip(crew, kg_crew, strict=True)],
        years=[None if y is None else int(y) for y in frame["year"].to_list()],
        air=[None if d is None else d.year for d in frame["first_air_date"].to_list()],
        season=[0 if s is None else min(int(s), max_season) for s in frame["season_number"]],
        network=[n or None for n in frame["network"].to_list()],
        kind=[1 + int(k == "show") for k in frame["kind"].to_list()],
    )


def _subgenres(
    sub: list[list[str]], genres: list[list[str]]
) -> tuple[list[list[str]], Counter[str]]:
    """Graph genres that do not restate a catalog genre ("genre:Drama"), most frequent
    first, and their frequencies."""
    known = {g.lower() for row in genres for g in row}
    sub = [[s for s in row if s.split(":", 1)[-1].lower() not in known] for row in sub]
    freq = Counter(s for row in sub for s in set(row))
    return [sorted(dict.fromkeys(row), key=lambda s: (-freq[s], s)) for row in sub], freq


def _kept_people(rows: list[list[str]], min_count: int, max_people: int) -> list[list[str]]:
    freq = Counter(p for row in rows for p in set(row))
    return [
        sorted((p for p in dict.fromkeys(row) if freq[p] >= min_count), key=lambda p: -freq[p])[
            :max_people
        ]
        for row in rows
    ]


def _index(rows: list[list[str]]) -> dict[str, int]:
    """Name -> 1-based id, by sorted name (the ids of :func:`_ids`)."""
    return {v: i + 1 for i, v in enumerate(sorted({v for row in rows for v in row}))}


def item_tokens(
    side: SideData,
    n_items: int,
    *,
    min_count: int = 2,
    max_people: int = 10,
    year_bucket: int = 5,
    max_season: int = 10,
) -> ItemTokens:
    """The tokens of every title of ``side.catalog`` (:class:`ItemTokens`).

    Args:
        side: Catalog (required for anything but empty tokens) and graph (optional).
        n_items: items.size of the model (padding included).
        min_count: Fewest titles a person must appear on to become a token.
        max_people: Most cast (and most crew) tokens per title.
        year_bucket: Width of a year bucket.
        max_season: Season numbers above this share one token.
    """
    if side.catalog is None:
        return ItemTokens.empty(n_items)
    names = _names(side, max_season)
    n = len(names.genres)
    sub, _ = _subgenres(names.sub, names.genres)
    network = _ids([[x] if x else [] for x in names.network])
    temporal_rows = np.array(
        [
            _bucket(names.years, year_bucket),
            _bucket(names.air, year_bucket),
            names.season,
            [r[0] if r else 0 for r in network],
            names.kind,
        ],
        dtype=np.int64,
    ).T  # (V - 1, 5)
    temporal = np.zeros((n_items, 5), dtype=np.int64)
    temporal[1 : n + 1] = temporal_rows

    def table(rows: list[list[int]]) -> np.ndarray:
        out = np.zeros((n_items, _pad(rows).shape[1]), dtype=np.int64)
        out[1 : n + 1] = _pad(rows)
        return out

    return ItemTokens(
        genres=table(_ids(names.genres)),
        subgenres=table(_ids(sub)),
        cast=table(_people(names.cast, min_count, max_people)),
        crew=table(_people(names.crew, min_count, max_people)),
        temporal=temporal,
        temporal_sizes=temporal.max(0) + 1,
    )


def extend_tokens(
    tokens: ItemTokens,
    side: SideData,
    n_old: int,
    *,
    min_count: int = 2,
    max_people: int = 10,
    year_bucket: int = 5,
    max_season: int = 10,
) -> ItemTokens | None:
    """``tokens`` of a model trained on the first ``n_old - 1`` titles of ``side.catalog``,
    grown by rows for the titles after them, in the token ids the model learned.

    The training catalog's names -> ids are rebuilt from ``side`` (the old rows) and
    checked against ``tokens`` (None when they differ: the catalog is not the one the
    model was trained on). A new title's names the model never learned (a genre, a
    person on fewer than ``min_count`` old titles, a network) become padding; its
    year falls in the nearest learned bucket; rows keep the tables' widths. The old
    rows are returned unchanged.
    """
    cat = side.catalog
    if cat is None:
        return None
    n_new = cat.items.size
    old_side = SideData(catalog=Catalog.from_frame(cat.frame.head(n_old - 1)), kg=side.kg)
    ref = item_tokens(
        old_side,
        n_old,
        min_count=min_count,
        max_people=max_people,
        year_bucket=year_bucket,
        max_season=max_season,
    )
    for f in FIELDS:
        have, want = getattr(tokens, f), getattr(ref, f)
        if have.shape[0] != n_old or not np.array_equal(have, want[:, : have.shape[1]]):
            return None
    old = _names(old_side, max_season)
    new = _names(
        SideData(catalog=Catalog.from_frame(cat.frame.slice(n_old - 1)), kg=side.kg), max_season
    )
    old_sub, sub_freq = _subgenres(old.sub, old.genres)
    known = {g.lower() for row in old.genres for g in row}
    genre_ix, sub_ix = _index(old.genres), _index(old_sub)
    kept_cast = _kept_people(old.cast, min_count, max_people)
    kept_crew = _kept_people(old.crew, min_count, max_people)
    cast_freq = Counter(p for row in old.cast for p in set(row))
    crew_freq = Counter(p for row in old.crew for p in set(row))
    cast_ix, crew_ix = _index(kept_cast), _index(kept_crew)
    network_ix = _index([[x] if x else [] for x in old.network])

    def grow(table: np.ndarray, rows: list[list[int]]) -> np.ndarray:
        out = np.zeros((n_new, table.shape[1]), dtype=np.int64)
        out[:n_old] = table
        out[n_old:] = _pad(rows, table.shape[1])
        return out

    def people(rows: list[list[str]], ix: dict[str, int], freq: Counter[str]) -> list[list[int]]:
        return [
            [
                ix[p]
                for p in sorted((p for p in dict.fromkeys(r) if p in ix), key=lambda p: -freq[p])
            ][:max_people]
            for r in rows
        ]

    subs = [
        sorted(
            (
                s
                for s in dict.fromkeys(r)
                if s in sub_ix and s.split(":", 1)[-1].lower() not in known
            ),
            key=lambda s: (-sub_freq[s], s),
        )
        for r in new.sub
    ]
    sizes = tokens.temporal_sizes

    def bucket(values: list[int | None], learned: list[int | None], col: int) -> list[int]:
        known_years = [y for y in learned if y is not None]
        if not known_years:
            return [0] * len(values)
        lo = min(known_years)
        top = max(int(sizes[col]) - 1, 0)
        return [0 if y is None else min(max((y - lo) // year_bucket + 1, 1), top) for y in values]

    def capped(values: list[int], col: int) -> list[int]:
        return [v if 0 <= v < int(sizes[col]) else 0 for v in values]

    temporal = np.zeros((n_new, 5), dtype=np.int64)
    temporal[:n_old] = tokens.temporal
    temporal[n_old:] = np.array(
        [
            bucket(new.years, old.years, 0),
            bucket(new.air, old.air, 1),
            capped(new.season, 2),
            capped([network_ix.get(x, 0) if x else 0 for x in new.network], 3),
            capped(new.kind, 4),
        ],
        dtype=np.int64,
    ).T.reshape(n_new - n_old, 5)
    return ItemTokens(
        genres=grow(
            tokens.genres,
            [[genre_ix[g] for g in dict.fromkeys(r) if g in genre_ix] for r in new.genres],
        ),
        subgenres=grow(tokens.subgenres, [[sub_ix[s] for s in r] for r in subs]),
        cast=grow(tokens.cast, people(new.cast, cast_ix, cast_freq)),
        crew=grow(tokens.crew, people(new.crew, crew_ix, crew_freq)),
        temporal=temporal,
        temporal_sizes=sizes.copy(),
    )


def text_matrix(side: SideData, n_items: int) -> np.ndarray | None:
    """``side.text_vectors`` checked against the vocabulary, or None when absent."""
    tv = side.text_vectors
    if tv is None:
        return None
    if tv.shape[0] != n_items:
        raise ValueError(f"text_vectors has {tv.shape[0]} rows, the model {n_items} items")
    return np.asarray(tv, dtype=np.float32)
