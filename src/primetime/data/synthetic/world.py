"""A generated world (:class:`World`): :func:`generate` it, query its oracle, save and load it."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from primetime.data.dataset import Dataset
from primetime.data.events import EVENT_NAMES
from primetime.data.synthetic.catalog import _Catalog, _make_catalog
from primetime.data.synthetic.config import PRESETS, WorldConfig
from primetime.data.synthetic.truth import TrueModel, WorldLatents
from primetime.data.synthetic.users import _make_users, _run_chunks
from primetime.types import UserContext

log = logging.getLogger(__name__)

#: 2: knowledge graph with subgenre / subgenre_of / creator relations, people by name,
#: series as "series:<id>".
WORLD_FORMAT_VERSION = 2


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
    names = pl.Series("event", list(EVENT_NAMES), dtype=pl.Utf8)
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


def saved_format(directory: str | Path) -> int | None:
    """The format version of the world saved in ``directory``; None if none can be read."""
    f = Path(directory) / "world.json"
    if not f.exists():
        return None
    try:
        version = json.loads(f.read_text()).get("format_version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, int) else None


def load_or_generate(preset: str | WorldConfig, directory: str | Path) -> World:
    """The world saved in ``directory``, generating (and saving) it first if absent or stale."""
    config = PRESETS[preset] if isinstance(preset, str) else preset
    d = Path(directory)
    found = saved_format(d)
    if found == WORLD_FORMAT_VERSION:
        world = World.load(d)
        if world.config == config:
            return world
        log.warning("%s holds a different world config; generating again", d)
    elif (d / "world.json").exists():
        log.warning(
            "%s holds a world of format %s (now %s); generating again",
            d,
            found,
            WORLD_FORMAT_VERSION,
        )
    return generate(config, out_dir=d)
