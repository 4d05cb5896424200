"""Synthetic movie + TV worlds with a planted, known preference model.

A *world* is a catalog (movies, and TV shows with one catalog row per season),
a population of users, and an interaction log drawn from a generative model
whose exact next-item distribution is known. It serves three purposes: scale
tests (up to MovieLens-25M size), TV-specific behaviour (seasons, networks,
air dates, holidays, premieres, binge watching) and an *oracle* — the best
ranking any model could reach (EVALUATION.md).

The generative model
--------------------
Every user ``u`` has a schedule of event times (sessions on preferred days and
evening hours, see :func:`_user_schedule`), planned up front and independent of
what is watched. At the time ``t`` of each event, given the history ``H``
(item indices, oldest first), the next item is drawn from::

    p(i) = b · 1[i = ns] + (1 − b) · s(i) / Σ_j s(j)
    s(i) = Σ_k θ_uk(t) q_k(i)                       genre communities (taste mixture)
           · 1[released_i ≤ t] · (1 + ρ · 1[t − W < released_i])   premiere boost
           · exp(σ (x_u · y_i − 1))                 personal taste, unit vectors
           · h(i, t)                                holiday titles: 1 in December, 1/boost else
           · o(i, H)                                later season whose previous one is unseen: κ
           · 1[network_i subscribed by u] · 1[i ∉ H]

where ``ns`` is the next season of the last item of ``H`` and ``b = binge_prob``
when that season exists, has aired by ``t`` and is unseen (``b = 0`` otherwise);
``q_k(i) ∝ popularity_i · affinity_ik · (holiday_boost if i is a holiday title)``;
``θ_u(t)`` moves linearly from ``theta_start`` to ``theta_end`` over the user's
planned active window (taste drift); ``ρ = premiere_boost − 1`` and ``W =
premiere_days``. Items are never repeated. :meth:`World.next_item_probs`
evaluates exactly this formula over the whole catalog.

The generator samples it exactly without touching the whole catalog per event
(a Gumbel-max over 60k logits for each of 25M events would be ~10^12 draws):
candidates are proposed from ``Σ_k θ_k q_k (1 + ρ 1[recent])`` — Walker alias
tables per community plus premiere-window components — and accepted with
probability equal to the remaining factors (all in [0, 1]), which is plain
rejection sampling; the few users still unserved after ``rounds`` rounds
(with doubling candidate counts) are drawn by inverse CDF from the full
``s(i)``. Tests check the sampler against :meth:`World.next_item_probs` with a
chi-square test, and the generated log against the oracle's entropy.

Ratings and event types (``play`` / ``complete`` / ``rate``) come from the
same latent affinity ``σ x_u·y_i + log(Σ_k θ_uk(t) affinity_ik / max_k θ_uk(t))``
plus noise; they never influence what is watched next.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import multiprocessing
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.special import ndtr

from primetime.data.dataset import Dataset
from primetime.data.interactions import EVENT_CODE, EVENT_TYPES
from primetime.types import UserContext

log = logging.getLogger(__name__)

WORLD_FORMAT_VERSION = 1
DAY = 86_400
#: Release time of the padding item 0: never released.
NEVER = np.iinfo(np.int64).max

# ---------------------------------------------------------------- vocabulary
#: Top genre -> leaf genres (subgenres) with keywords that seed descriptions.
GENRE_TREE: dict[str, dict[str, tuple[str, ...]]] = {
    "Drama": {
        "Crime Drama": ("detective", "investigation", "corruption", "precinct", "informant"),
        "Legal Drama": ("courtroom", "trial", "verdict", "attorney", "appeal"),
        "Medical Drama": ("hospital", "surgeon", "diagnosis", "emergency ward", "residency"),
        "Period Drama": ("estate", "inheritance", "aristocracy", "ballroom", "empire"),
        "Family Drama": ("siblings", "reunion", "farmhouse", "family secrets", "grief"),
    },
    "Comedy": {
        "Sitcom": ("apartment", "roommates", "coworkers", "misunderstanding", "neighbors"),
        "Romantic Comedy": ("wedding", "blind date", "matchmaker", "meet-cute", "proposal"),
        "Satire": ("politics", "campaign", "newsroom", "bureaucracy", "scandal"),
        "Dark Comedy": ("funeral", "botched heist", "revenge", "deadpan", "chaos"),
    },
    "Action": {
        "Spy Action": ("espionage", "double agent", "safehouse", "extraction", "cipher"),
        "Superhero": ("superpowers", "villain", "vigilante", "origin story", "secret identity"),
        "Martial Arts": ("dojo", "tournament", "old master", "kung fu", "discipline"),
        "Disaster": ("earthquake", "tsunami", "evacuation", "survival", "collapse"),
    },
    "Thriller": {
        "Psychological Thriller": (
            "obsession",
            "gaslighting",
            "lost memory",
            "stalker",
            "paranoia",
        ),
        "Heist": ("vault", "crew", "casino", "getaway", "blueprint"),
        "Conspiracy": ("cover-up", "whistleblower", "surveillance", "agency", "leak"),
    },
    "Sci-Fi": {
        "Space Opera": ("starship", "galaxy", "fleet", "colony", "wormhole"),
        "Dystopia": ("regime", "rebellion", "rationing", "curfew", "uprising"),
        "Time Travel": ("paradox", "timeline", "time loop", "future self", "time machine"),
        "Cyberpunk": ("hacker", "neural implant", "megacorp", "neon city", "android"),
    },
    "Fantasy": {
        "Epic Fantasy": ("kingdom", "dragon", "prophecy", "enchanted sword", "throne"),
        "Urban Fantasy": ("witch", "vampire", "portal", "spellbook", "underworld"),
        "Fairy Tale": ("enchanted forest", "curse", "princess", "talking animals", "wish"),
    },
    "Horror": {
        "Supernatural Horror": ("haunting", "demon", "exorcism", "seance", "possession"),
        "Slasher": ("masked killer", "summer camp", "final girl", "lake cabin", "bloodbath"),
        "Creature Feature": ("monster", "swamp", "mutation", "secret lab", "hunt"),
    },
    "Documentary": {
        "Nature Documentary": ("wildlife", "ocean", "migration", "rainforest", "predator"),
        "True Crime": ("cold case", "confession", "forensics", "wrongful conviction", "murder"),
        "Music Documentary": ("world tour", "band", "backstage", "debut album", "concert"),
        "Sports Documentary": ("championship", "coach", "rookie season", "rivalry", "comeback"),
    },
    "Animation": {
        "Family Animation": ("adventure", "friendship", "talking animals", "journey", "magic"),
        "Anime": ("mecha", "academy", "spirit world", "rival", "tournament arc"),
    },
    "Romance": {
        "Period Romance": ("courtship", "love letters", "duke", "debutante ball", "scandal"),
        "Contemporary Romance": ("second chance", "small town", "bakery", "summer", "heartbreak"),
    },
    "Western": {
        "Classic Western": ("outlaw", "sheriff", "frontier", "cattle ranch", "showdown"),
    },
}
HOLIDAY = "Holiday"
HOLIDAY_KEYWORDS = (
    "christmas",
    "snowfall",
    "mistletoe",
    "holiday spirit",
    "family gathering",
    "santa",
    "winter lights",
)
TONES: dict[str, tuple[str, ...]] = {
    "Drama": ("gripping", "intimate", "sweeping", "searing"),
    "Comedy": ("witty", "zany", "warm-hearted", "irreverent"),
    "Action": ("explosive", "relentless", "high-octane", "kinetic"),
    "Thriller": ("tense", "twisty", "chilling", "taut"),
    "Sci-Fi": ("mind-bending", "visionary", "cerebral", "sprawling"),
    "Fantasy": ("magical", "epic", "whimsical", "mythic"),
    "Horror": ("terrifying", "eerie", "gory", "unsettling"),
    "Documentary": ("revealing", "illuminating", "candid", "stunning"),
    "Animation": ("colorful", "charming", "heartfelt", "playful"),
    "Romance": ("tender", "swoon-worthy", "bittersweet", "sparkling"),
    "Western": ("dusty", "rugged", "lawless", "sun-baked"),
}
#: (name, streams whole seasons at once, share of users subscribing)
NETWORKS: tuple[tuple[str, bool, float], ...] = (
    ("Northstar+", True, 0.65),
    ("Beacon", False, 0.55),
    ("Orbit", True, 0.5),
    ("Cascade TV", False, 0.4),
    ("Meridian", True, 0.35),
    ("Lantern", True, 0.3),
    ("Harbor One", False, 0.28),
    ("Summit", True, 0.25),
    ("Atlas TV", False, 0.22),
    ("Prism", True, 0.2),
    ("Kestrel", True, 0.18),
    ("Vista", False, 0.15),
)
_ADJ = (
    "Silent",
    "Broken",
    "Golden",
    "Hidden",
    "Last",
    "Crimson",
    "Frozen",
    "Wild",
    "Distant",
    "Hollow",
    "Bright",
    "Burning",
    "Quiet",
    "Lost",
    "Iron",
    "Velvet",
    "Midnight",
    "Paper",
    "Glass",
    "Electric",
    "Northern",
    "Savage",
    "Tender",
    "Secret",
    "Endless",
    "Final",
    "Little",
    "Black",
    "Silver",
    "Falling",
)
_NOUN = (
    "Harbor",
    "Orchard",
    "Kingdom",
    "River",
    "Signal",
    "Garden",
    "Empire",
    "Storm",
    "Lights",
    "Shadows",
    "Crossing",
    "Tide",
    "Horizon",
    "Echo",
    "Frontier",
    "Mirror",
    "Station",
    "Road",
    "Summer",
    "Winter",
    "Hearts",
    "Wolves",
    "Bridge",
    "Island",
    "Letters",
    "Machine",
    "Protocol",
    "Season",
    "Compass",
    "Circus",
)
_PLACE = (
    "Brooklyn",
    "Lagos",
    "Oslo",
    "Montreal",
    "a mining town",
    "Marseille",
    "Seoul",
    "the Outback",
    "Lisbon",
    "a lighthouse",
    "Mumbai",
    "New Orleans",
    "a border town",
    "Reykjavik",
    "Buenos Aires",
    "a space station",
    "Kyoto",
    "the Highlands",
    "Nairobi",
    "a coastal village",
)
_ROLE = (
    "a retired teacher",
    "a young pilot",
    "a disgraced chef",
    "a rookie cop",
    "an ambitious lawyer",
    "a single father",
    "a runaway heiress",
    "a burned-out nurse",
    "a small-time crook",
    "a grieving widow",
    "a teenage prodigy",
    "a washed-up boxer",
    "a reclusive writer",
    "an undercover agent",
    "a stubborn farmer",
    "a street musician",
)
_VERB = (
    "uncovers",
    "confronts",
    "stumbles into",
    "races against",
    "falls for",
    "is haunted by",
    "must survive",
    "takes on",
    "hides from",
    "chases",
)
_FIRST = (
    "Maya",
    "Leo",
    "Ava",
    "Noah",
    "Iris",
    "Omar",
    "Zoe",
    "Ethan",
    "Lena",
    "Ravi",
    "Nora",
    "Felix",
    "Ines",
    "Kofi",
    "Mila",
    "Jonah",
    "Sara",
    "Diego",
    "Hana",
    "Theo",
    "Amara",
    "Luca",
    "Freya",
    "Malik",
    "Elena",
    "Sam",
    "Yuki",
    "Jude",
    "Priya",
    "Owen",
    "Aisha",
    "Marco",
    "Clara",
    "Tariq",
    "Greta",
    "Kai",
    "Lucia",
    "Abel",
    "Rosa",
    "Ivan",
)
_LAST = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Alvarez",
    "Brennan",
    "Kowalski",
    "Haddad",
    "Nakamura",
    "Osei",
    "Petrov",
    "Castillo",
    "Fischer",
    "Mensah",
    "Rossi",
    "Sato",
    "Novak",
    "Quinn",
    "Dubois",
    "Ferreira",
    "Kaur",
    "Larsen",
    "Mwangi",
    "O'Neill",
    "Park",
    "Reyes",
    "Schmidt",
    "Varga",
    "Weller",
    "Yilmaz",
    "Abara",
    "Bianchi",
    "Cohen",
    "Dahl",
    "Eze",
    "Gallo",
    "Hale",
    "Ibsen",
    "Jansen",
    "Keller",
)

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
# rating = clip(round(_RATING_MID + _RATING_SLOPE (affinity - _AFF_MID) + noise), 1, 5):
# about MovieLens' mean 3.5 and spread 1.05 stars
_AFF_MID = -0.6
_RATING_MID = 3.5
_RATING_SLOPE = 0.9


def leaf_genres() -> list[tuple[str, str]]:
    """All ``(leaf, parent)`` genres in the order presets take them.

    Two leaves of every top genre first, then the rest, so that a small
    ``n_genres`` still has sibling subgenres (the hierarchy matters).
    """
    out: list[tuple[str, str]] = []
    for rank in ((0, 1), range(2, 10)):
        for parent, leaves in GENRE_TREE.items():
            names = list(leaves)
            out.extend((names[r], parent) for r in rank if r < len(names))
    return out


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
}


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
        add(iid, "actor", [f"person:{p:06d}" for p in cast_p])
        add(iid, "director", [f"person:{p:06d}" for p in dir_p])
        add(iid, "writer", [f"person:{p:06d}" for p in wri_p])
        add(iid, "genre", [f"genre:{x}" for x in gs])
        if b >= M:
            add(iid, "network", [f"network:{NETWORKS[int(network[k + 1]) - 1][0]}"])
            add(iid, "season_of", [series_col[-1] or ""])
    for k in range(N):
        if next_season[k + 1]:
            add(item_ids[k], "next_season", [item_ids[int(next_season[k + 1]) - 1]])

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
        is_rate, EVENT_CODE["rate"], np.where(complete, EVENT_CODE["complete"], EVENT_CODE["play"])
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


def generate(
    config: WorldConfig,
    *,
    out_dir: Path | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> World:
    """Generate a world: catalog, users, knowledge graph and an interaction log.

    Users are generated in chunks of ``config.chunk_users`` (grouped by
    activity), each with its own random stream spawned from
    ``np.random.default_rng(config.seed)``, vectorised over the users of the
    chunk; memory stays bounded by the chunk (plus the final dataset).

    Args:
        config: The world's definition (see :data:`PRESETS`).
        out_dir: If given, chunks are written as Parquet parts under
            ``out_dir/parts`` while generating, the dataset is built from a lazy
            scan of them, and the world is saved to ``out_dir`` (parts removed).
        progress: Called as ``progress(users_done, users_total)`` after each chunk.
        workers: Processes generating chunks in parallel. The world does not
            depend on it: each chunk has its own random stream.

    Returns:
        The :class:`World`; its dataset's item_idx / user_idx index the latents.
    """
    if not isinstance(config, WorldConfig):
        raise TypeError(f"config must be a WorldConfig, got {type(config).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    cat = _make_catalog(config, rng)
    users_frame, user_arrays = _make_users(config, cat, rng)
    lat = WorldLatents(**cat.arrays, **user_arrays)
    model = TrueModel(config, lat)
    _ = model.alias
    t1 = time.perf_counter()
    log.info(
        "synthetic-%s: catalog (%d titles, %d KG triples) and %d users in %.1f s",
        config.name,
        lat.n_items,
        cat.kg.height,
        config.n_users,
        t1 - t0,
    )

    U = config.n_users
    by_activity = np.argsort(-lat.activity[1:], kind="stable") + 1  # (U,) user_idx
    n_chunks = -(-U // config.chunk_users)
    chunk_rngs = rng.spawn(n_chunks)
    parts: list[pl.DataFrame] = []
    part_dir = Path(out_dir) / "parts" if out_dir is not None else None
    if part_dir is not None:
        if part_dir.exists():
            shutil.rmtree(part_dir)
        part_dir.mkdir(parents=True)
    blocks = [
        by_activity[c * config.chunk_users : (c + 1) * config.chunk_users] for c in range(n_chunks)
    ]
    done = 0
    for c, arrays in enumerate(_run_chunks(model, blocks, chunk_rngs, workers)):
        chunk = pl.DataFrame(arrays)
        if part_dir is not None:
            chunk.write_parquet(part_dir / f"part-{c:05d}.parquet")
        else:
            parts.append(chunk)
        done += blocks[c].size
        log.debug("chunk %d/%d: %d users, %d events", c + 1, n_chunks, blocks[c].size, chunk.height)
        if progress is not None:
            progress(done, U)

    t2 = time.perf_counter()
    log.info("synthetic-%s: %d chunks of events in %.1f s", config.name, n_chunks, t2 - t1)
    if part_dir is not None:
        log_idx = pl.scan_parquet(part_dir / "*.parquet").sort(["timestamp", "user_idx"]).collect()
    else:
        log_idx = pl.concat(parts).sort(["timestamp", "user_idx"])
        parts.clear()
    dataset = _build_dataset(config, log_idx, cat, users_frame, lat)
    del log_idx
    world = World(config=config, dataset=dataset, latents=lat)
    object.__setattr__(world, "_model", model)  # reuse the alias tables already built
    t3 = time.perf_counter()
    log.info("synthetic-%s: dataset built in %.1f s", config.name, t3 - t2)
    if out_dir is not None:
        world.save(out_dir)
        shutil.rmtree(part_dir)  # type: ignore[arg-type]
        log.info(
            "synthetic-%s: saved to %s in %.1f s", config.name, out_dir, time.perf_counter() - t3
        )
    log.info(
        "synthetic-%s: %d users, %d titles, %d events in %.1f s",
        config.name,
        U,
        lat.n_items,
        len(dataset.interactions),
        time.perf_counter() - t0,
    )
    return world


def _build_dataset(
    cfg: WorldConfig,
    log_idx: pl.DataFrame,
    cat: _Catalog,
    users_frame: pl.DataFrame,
    lat: WorldLatents,
) -> Dataset:
    """The interaction log in id space, handed to :meth:`Dataset.from_frames`."""
    uid = pl.Series("user_id", lat.user_ids.tolist(), dtype=pl.Utf8)
    iid = pl.Series("item_id", lat.item_ids.tolist(), dtype=pl.Utf8)
    names = pl.Series("event", list(EVENT_TYPES), dtype=pl.Utf8)
    inter = pl.DataFrame(
        [
            uid.gather(log_idx["user_idx"].cast(pl.Int64) - 1),
            iid.gather(log_idx["item_idx"].cast(pl.Int64) - 1),
            log_idx["rating"],
            log_idx["timestamp"],
            names.gather(log_idx["event"].cast(pl.Int64)),
        ]
    )
    return Dataset.from_frames(
        f"synthetic-{cfg.name}",
        interactions=inter,
        catalog=cat.frame,
        users=users_frame,
        kg=cat.kg,
        source=cfg.spec(),
        drop_duplicates=False,  # the generator never repeats (user, item)
    )


# -------------------------------------------------------------------- world
@dataclass(frozen=True, eq=False)
class World:
    """A generated world: the dataset plus the planted truth that produced it.

    Attributes:
        config: The generator's config.
        dataset: The prepared dataset (catalog, interactions, users, KG).
        latents: The planted preference model, indexed like ``dataset``.
    """

    config: WorldConfig
    dataset: Dataset
    latents: WorldLatents
    _model: TrueModel | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.latents.n_items != len(self.dataset.items):
            raise ValueError(
                f"latents hold {self.latents.n_items} items, the dataset {len(self.dataset.items)}"
            )
        if self.latents.n_users != len(self.dataset.users):
            raise ValueError(
                f"latents hold {self.latents.n_users} users, the dataset {len(self.dataset.users)}"
            )

    @property
    def model(self) -> TrueModel:
        """The planted model (built on first use) behind the oracle and the sampler."""
        if self._model is None:
            object.__setattr__(self, "_model", TrueModel(self.config, self.latents))
        assert self._model is not None
        return self._model

    def _batch(
        self, contexts: Sequence[UserContext]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(users, now, seen (B, N+1), last) from contexts, checking them."""
        B, N, U = len(contexts), self.latents.n_items, self.latents.n_users
        users = np.zeros(B, np.int64)
        now = np.zeros(B, np.int64)
        last = np.zeros(B, np.int64)
        seen = np.zeros((B, N + 1), dtype=bool)
        for b, ctx in enumerate(contexts):
            if ctx.user_idx is None or not 1 <= ctx.user_idx <= U:
                raise ValueError(
                    f"contexts[{b}].user_idx must be a user of this world "
                    f"(1..{U}), got {ctx.user_idx!r}"
                )
            if ctx.now is None:
                raise ValueError(f"contexts[{b}].now must be set (unix seconds of the event)")
            h = ctx.history
            if h.size and h.max() > N:
                raise ValueError(f"contexts[{b}].history holds item_idx {h.max()} > {N}")
            users[b], now[b] = ctx.user_idx, ctx.now
            seen[b, h] = True
            last[b] = h[-1] if h.size else 0
        return users, now, seen, last

    def next_item_probs(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """The exact distribution the generator draws the next event from.

        Args:
            contexts: ``user_idx`` (a user of this world), ``history`` (that
                user's item indices, oldest first) and ``now`` (unix seconds of
                the event to predict).

        Returns:
            (B, items.size) float64, column = item_idx; rows sum to 1 (column 0,
            padding, is 0), or are all 0 when the user has nothing left to watch.
            Seen, unreleased and unsubscribed titles get exactly 0.
        """
        out = np.empty((len(contexts), self.latents.n_items + 1))
        for a, p in self._prob_blocks(contexts):
            out[a : a + p.shape[0]] = p
        return out

    def oracle_scores(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """Log of :meth:`next_item_probs`, shape (B, items.size), float32; ``-inf`` = never."""
        out = np.empty((len(contexts), self.latents.n_items + 1), np.float32)
        with np.errstate(divide="ignore"):
            for a, p in self._prob_blocks(contexts):
                out[a : a + p.shape[0]] = np.log(p)
        return out

    def _prob_blocks(self, contexts: Sequence[UserContext]) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, probabilities) over blocks of contexts: bounded temporaries."""
        users, now, seen, last = self._batch(contexts)
        step = max(1, (1 << 21) // (self.latents.n_items + 1))  # ~2M cells a block
        for a in range(0, users.size, step):
            b = slice(a, a + step)
            yield a, self.model.probs(users[b], now[b], seen[b], last[b])

    def expected_ratings(
        self, user_idx: np.ndarray, item_idx: np.ndarray, timestamp: np.ndarray
    ) -> np.ndarray:
        """The rating oracle: exact expected rating of each (user, item, time), shape (E,).

        Args:
            user_idx: (E,) users of this world.
            item_idx: (E,) titles.
            timestamp: (E,) unix seconds (tastes drift, so time matters).
        """
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        t = np.asarray(timestamp, dtype=np.int64)
        if not u.shape == i.shape == t.shape or u.ndim != 1:
            raise ValueError(
                f"user_idx {u.shape}, item_idx {i.shape} and timestamp {t.shape} "
                "must be 1-D of one length"
            )
        if u.size and not (u.min() >= 1 and u.max() <= self.latents.n_users):
            raise ValueError("user_idx out of range 1..n_users")
        if i.size and not (i.min() >= 1 and i.max() <= self.latents.n_items):
            raise ValueError("item_idx out of range 1..n_items")
        return self.model.expected_rating(u, i, t)

    def sample_next(self, contexts: Sequence[UserContext], rng: np.random.Generator) -> np.ndarray:
        """Draw one next item per context with the generator's own sampler, (B,) item_idx.

        0 where the user has nothing left to watch.
        """
        users, now, seen, last = self._batch(contexts)
        return self.model.sample(users, np.arange(users.size), now, seen, last, rng)

    # --------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write the dataset (Parquet + manifest), ``world.npz`` and ``world.json``."""
        d = self.dataset.save(directory)
        np.savez_compressed(d / "world.npz", **self.latents.arrays())  # type: ignore[arg-type]
        meta = {
            "format_version": WORLD_FORMAT_VERSION,
            "config": asdict(self.config),
            "saved": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        (d / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> World:
        """Read a world written by :meth:`save` (no pickle).

        Raises:
            FileNotFoundError: naming ``world.npz`` / ``world.json`` if missing.
            ValueError: if the latents do not match the dataset's ids.
        """
        d = Path(directory)
        for f in ("world.json", "world.npz"):
            if not (d / f).exists():
                raise FileNotFoundError(f"world directory {d} lacks {f}")
        meta = json.loads((d / "world.json").read_text())
        if meta.get("format_version") != WORLD_FORMAT_VERSION:
            raise ValueError(
                f"{d}: world format {meta.get('format_version')} != "
                f"{WORLD_FORMAT_VERSION}; generate it again"
            )
        config = WorldConfig.from_dict(meta["config"])
        with np.load(d / "world.npz", allow_pickle=False) as z:
            lat = WorldLatents(**{f.name: z[f.name] for f in fields(WorldLatents)})
        dataset = Dataset.load(d)
        if lat.item_ids.tolist() != dataset.items.ids():
            raise ValueError(f"{d}: world.npz item ids do not match catalog.parquet")
        if lat.user_ids.tolist() != dataset.users.users.ids():
            raise ValueError(f"{d}: world.npz user ids do not match users.parquet")
        return cls(config=config, dataset=dataset, latents=lat)


def load_or_generate(preset: str | WorldConfig, directory: str | Path) -> World:
    """The world saved in ``directory``, generating (and saving) it first if absent."""
    config = PRESETS[preset] if isinstance(preset, str) else preset
    d = Path(directory)
    if (d / "world.json").exists():
        world = World.load(d)
        if world.config == config:
            return world
        log.warning("%s holds a different world config; generating again", d)
    return generate(config, out_dir=d)
