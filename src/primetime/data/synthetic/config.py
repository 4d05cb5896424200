"""What defines a synthetic world: :class:`WorldConfig` and the named :data:`PRESETS`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any

from primetime.data.synthetic.vocab import NETWORKS, leaf_genres

DAY = 86_400


# ------------------------------------------------------------------- config
@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a world; the same config and seed give the same world.

    Attributes:
        name: Preset name, used in the dataset name ``synthetic-<name>``.
        seed: Seed of ``np.random.default_rng``; the only source of randomness.
        n_users: Number of users.
        n_movies: Number of movies.
        n_shows: Number of TV shows (each contributes one title per aired season).
        min_seasons: Fewest seasons a show is planned with.
        max_seasons: Most seasons a show is planned with (seasons airing after
            ``end`` are dropped).
        n_genres: Number of leaf genres (taste communities), at most 35.
        n_networks: Number of TV networks / platforms, at most 12.
        dim: Dimension of the personal taste vectors.
        start: First day of the world (ISO date); the log starts here.
        end: Last day of the world (ISO date).
        back_catalog: Share of titles released before ``start``.
        mean_events: Target mean number of events per user.
        min_events: Fewest events a user has.
        max_events: Most events a user has (also capped by ``max_event_share``).
        max_event_share: Most events a user has, as a share of the catalog.
        activity_sigma: Log-normal sigma of activity (long tail).
        events_per_session: Mean number of events per viewing session.
        popularity_exponent: Zipf exponent of title popularity.
        taste_concentration: Dirichlet concentration of user genre tastes
            (small = users focus on few genres).
        personal_scale: Weight ``σ`` of the personal taste term.
        drift: How far a user's genre taste moves over their active window (0..1).
        binge_prob: Probability that the next event is the next season of the
            show just watched, when that season has aired and is unseen.
        out_of_order: Weight multiplier ``κ`` of a later season whose previous
            season the user has not seen.
        holiday_share: Share of movies that are holiday titles.
        holiday_boost: How much more a holiday title is wanted in December.
        premiere_boost: Weight multiplier of a title in its first ``premiere_days``.
        premiere_days: Length of the premiere window, days.
        summer_share: Share of new (not back-catalogue, not holiday) movies whose
            premiere is moved into June–August of its year (summer releases, so the
            premiere boost plants a summer peak); drawn from a stream of its own,
            so 0 (the default) leaves a world exactly as it was.
        rate_prob: Share of events that are explicit ratings ("rate").
        rating_noise: Standard deviation of rating noise (stars).
        chunk_users: Users generated together (bounds memory; part of the
            world's definition, since each chunk has its own random stream).
        candidates: Rejection-sampling proposals per user in the first round
            (doubled every further round).
        rounds: Rejection rounds before the exact fallback.
    """

    name: str = "custom"
    seed: int = 0
    n_users: int = 200
    n_movies: int = 200
    n_shows: int = 30
    min_seasons: int = 1
    max_seasons: int = 4
    n_genres: int = 8
    n_networks: int = 4
    dim: int = 8
    start: str = "2018-01-01"
    end: str = "2023-12-31"
    back_catalog: float = 0.6
    mean_events: float = 50.0
    min_events: int = 3
    max_events: int = 2_000
    max_event_share: float = 0.5
    activity_sigma: float = 1.1
    events_per_session: float = 2.5
    popularity_exponent: float = 0.9
    taste_concentration: float = 0.1
    personal_scale: float = 3.0
    drift: float = 0.3
    binge_prob: float = 0.6
    out_of_order: float = 0.05
    holiday_share: float = 0.05
    holiday_boost: float = 4.0
    premiere_boost: float = 3.0
    premiere_days: int = 30
    summer_share: float = 0.0
    rate_prob: float = 0.3
    rating_noise: float = 0.7
    chunk_users: int = 2_048
    candidates: int = 8
    rounds: int = 6

    def __post_init__(self) -> None:
        positive = (
            "n_users",
            "n_movies",
            "dim",
            "chunk_users",
            "candidates",
            "n_genres",
            "n_networks",
            "min_seasons",
            "min_events",
            "premiere_days",
            "mean_events",
            "events_per_session",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"WorldConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.n_shows < 0:
            raise ValueError(f"WorldConfig.n_shows must be >= 0, got {self.n_shows}")
        if self.rounds < 0:
            raise ValueError(f"WorldConfig.rounds must be >= 0, got {self.rounds}")
        if self.max_seasons < self.min_seasons:
            raise ValueError(
                f"WorldConfig.max_seasons ({self.max_seasons}) < min_seasons ({self.min_seasons})"
            )
        if self.n_genres > len(leaf_genres()):
            raise ValueError(
                f"WorldConfig.n_genres must be <= {len(leaf_genres())}, got {self.n_genres}"
            )
        if self.n_networks > len(NETWORKS):
            raise ValueError(
                f"WorldConfig.n_networks must be <= {len(NETWORKS)}, got {self.n_networks}"
            )
        for name in (
            "back_catalog",
            "drift",
            "binge_prob",
            "holiday_share",
            "summer_share",
            "rate_prob",
            "max_event_share",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"WorldConfig.{name} must be in [0, 1], got {getattr(self, name)!r}"
                )
        if not 0.0 < self.out_of_order <= 1.0:
            raise ValueError(f"WorldConfig.out_of_order must be in (0, 1], got {self.out_of_order}")
        if self.holiday_boost < 1.0 or self.premiere_boost < 1.0:
            raise ValueError("WorldConfig.holiday_boost and premiere_boost must be >= 1")
        if self.min_events > self.max_events:
            raise ValueError(
                f"WorldConfig.min_events ({self.min_events}) > max_events ({self.max_events})"
            )
        if self.end_day - self.start_day < 60:
            raise ValueError(
                f"WorldConfig.start..end must span at least 60 days, got {self.start}..{self.end}"
            )

    @property
    def start_day(self) -> int:
        """First day, days since 1970-01-01."""
        return (date.fromisoformat(self.start) - date(1970, 1, 1)).days

    @property
    def end_day(self) -> int:
        """Last day, days since 1970-01-01."""
        return (date.fromisoformat(self.end) - date(1970, 1, 1)).days

    @property
    def start_ts(self) -> int:
        """First second of the world, unix seconds."""
        return self.start_day * DAY

    @property
    def end_ts(self) -> int:
        """Last second of the world, unix seconds."""
        return (self.end_day + 1) * DAY - 1

    def spec(self) -> str:
        """A one-line generator spec (the dataset's ``source``)."""
        return "primetime.data.synthetic:" + json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldConfig:
        """Inverse of ``dataclasses.asdict``; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown WorldConfig field(s) {bad}")
        return cls(**d)


PRESETS: dict[str, WorldConfig] = {
    # tests: generated in well under a second
    "tiny": WorldConfig(
        name="tiny",
        n_users=200,
        n_movies=220,
        n_shows=35,
        max_seasons=4,
        n_genres=8,
        n_networks=4,
        dim=8,
        mean_events=62.0,
        max_events=150,
        chunk_users=256,
    ),
    "small": WorldConfig(
        name="small",
        n_users=2_000,
        n_movies=1_500,
        n_shows=180,
        max_seasons=5,
        n_genres=16,
        n_networks=6,
        dim=16,
        mean_events=75.0,
        max_events=1_000,
        start="2016-01-01",
        end="2023-12-31",
    ),
    # the planted-season study (`primetime season`, README "Time-aware: temporal"): a
    # small world with three times the holiday titles and summer premieres
    "seasons": WorldConfig(
        name="seasons",
        n_users=800,
        n_movies=500,
        n_shows=50,
        max_seasons=4,
        n_genres=10,
        n_networks=4,
        dim=16,
        mean_events=50.0,
        max_events=400,
        start="2018-01-01",
        end="2023-12-31",
        holiday_share=0.15,
        summer_share=0.4,
    ),
    "medium": WorldConfig(
        name="medium",
        n_users=20_000,
        n_movies=7_200,
        n_shows=1_000,
        max_seasons=6,
        n_genres=24,
        n_networks=8,
        dim=16,
        mean_events=100.0,
        max_events=3_000,
        start="2014-01-01",
        end="2023-12-31",
    ),
    # The scale preset: it exists to exercise loading, memory and throughput at
    # MovieLens-25M size. Personal taste is kept at the milder sigma = 1, because
    # the rejection sampler's acceptance falls roughly as exp(-sigma): sigma = 3
    # (the default, used by the quality presets) measured ~21 min for this size
    # on 2 cores against ~2 min at sigma = 1.
    "ml-25m": WorldConfig(
        name="ml-25m",
        personal_scale=1.0,
        n_users=162_000,
        n_movies=41_000,
        n_shows=4_500,
        max_seasons=8,
        n_genres=30,
        n_networks=10,
        dim=16,
        mean_events=156.0,
        max_events=8_000,
        max_event_share=0.15,
        start="2010-01-01",
        end="2023-12-31",
    ),
    # The large-catalog preset: over 100,000 titles, for candidate retrieval (FAISS)
    # before exact scoring (benchmarks/bench_retrieval.py). Few events per title
    # keep generation short; the milder personal taste of ml-25m keeps the
    # rejection sampler fast.
    "xl-catalog": WorldConfig(
        name="xl-catalog",
        personal_scale=1.0,
        n_users=20_000,
        n_movies=96_000,
        n_shows=4_000,
        max_seasons=6,
        n_genres=30,
        n_networks=10,
        dim=16,
        mean_events=60.0,
        max_events=3_000,
        max_event_share=0.05,
        start="2010-01-01",
        end="2023-12-31",
    ),
}
