"""What a running service holds and the per-request work that joins its parts.

:class:`ServiceState` owns the catalog, the loaded model versions (each wrapped
in a :class:`~primetime.pipeline.RecPipeline`), the event store, the cache and
the metrics. Model versions live in an immutable :class:`ModelSlots` that a
reload replaces in one assignment, so requests in flight finish on the
versions they started with and no request is dropped.

A user is their history: every request brings the user's context up to date
with the event store (the last ``HISTORY_LIMIT`` events; see
:mod:`primetime.service.userview`), so a like is part of the very next
recommendation. The store is the only truth: what a worker keeps per user (the
folded events, the record for a few seconds) is checked against it or expires.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from primetime.data.dataset import Dataset
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.users import Users
from primetime.models.base import Recommender
from primetime.pipeline.blend import BlendWeights, version_blend
from primetime.pipeline.pipeline import RecPipeline, ScoredItem
from primetime.registry import ModelRegistry, ModelVersion
from primetime.service.cache import Cache, rec_key
from primetime.service.impressions import make_impression_sink
from primetime.service.metrics import ServiceMetrics
from primetime.service.newtitles import (
    CONTENT_MODELS,
    TitleIn,
    encode_new_texts,
    grow_catalog,
    grow_model,
    needs_text,
)
from primetime.service.settings import Settings
from primetime.service.store import EventStore, ExperimentRecord, UserRecord
from primetime.service.throttle import LoginThrottle
from primetime.service.userview import HISTORY_LIMIT, UserView, UserViews

if TYPE_CHECKING:
    from primetime.service.ingest import GroupCommit

__all__ = ["HISTORY_LIMIT", "Assignment", "LoadedModel", "ServiceState", "UserView", "stable_arm"]

log = logging.getLogger(__name__)

#: Seconds a worker trusts its copy of the active experiment and of a user record
#: (changes made through this worker apply at once; other workers see them within this).
EXPERIMENT_TTL = 2.0
USER_TTL = 5.0


@dataclass(frozen=True)
class LoadedModel:
    """One servable model version: ``key`` is ``"<name>:<version>"``."""

    name: str
    version: str
    pipeline: RecPipeline
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ModelSlots:
    """The loaded versions at one moment; replaced whole on reload."""

    default: LoadedModel
    by_key: Mapping[str, LoadedModel]
    loaded_at: float


@dataclass(frozen=True)
class Assignment:
    """Which model serves a request, and under which experiment arm."""

    model: LoadedModel
    experiment_id: str | None = None
    arm: str | None = None


def stable_arm(experiment_id: str, user_id: int, arms: Sequence[Mapping[str, Any]]) -> str:
    """The arm a user falls into: sha256 of ``"<experiment>:<user>"`` into weight buckets.

    Stable across processes and restarts (no Python ``hash``), and independent
    between experiments.
    """
    if not arms:
        raise ValueError("an experiment needs at least one arm")
    digest = hashlib.sha256(f"{experiment_id}:{user_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    weights = np.array([float(a.get("weight", 1.0)) for a in arms])
    edges = np.cumsum(weights / weights.sum())
    return str(arms[int(np.searchsorted(edges, u, side="right").clip(0, len(arms) - 1))]["name"])


class ServiceState:
    """Everything the routes need, built once by the app's lifespan.

    Args:
        settings: Service settings.
        dataset: Catalog and interaction log the pipelines are built from.
        store: The event store.
        cache: Recommendation cache.
        metrics: Service metrics.
        registry: Model registry the versions are loaded from.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        dataset: Dataset,
        store: EventStore,
        cache: Cache,
        metrics: ServiceMetrics,
        registry: ModelRegistry,
    ) -> None:
        self.settings, self.dataset, self.store = settings, dataset, store
        self.cache, self.metrics, self.registry = cache, metrics, registry
        self.catalog = dataset.catalog
        self.items = dataset.items
        frame = self.catalog.frame
        self.item_ids: list[str] = frame["item_id"].to_list()
        self.titles: list[str] = frame["title"].to_list()
        self._titles_lower = [t.lower() for t in self.titles]
        self.item_genres: list[list[str]] = [
            [],
            *[list(g or []) for g in frame["genres"].to_list()],
        ]
        self.genres: list[str] = self.catalog.genre_names()
        self._lock = threading.Lock()
        self.impressions = make_impression_sink(
            store, queue_url=settings.impression_queue_url, prefix=settings.redis_prefix
        )
        self.login_throttle = LoginThrottle(store, settings)
        self.views = UserViews(store, self.item_index, self.item_genres)
        self._experiments: tuple[float, ExperimentRecord | None] = (-1.0, None)
        self._users: dict[int, tuple[float, UserRecord]] = {}
        #: The worker's group commit of events (set by the app's lifespan, on its event
        #: loop, when ``settings.group_commit``); None: each request commits alone.
        self.group_commit: GroupCommit | None = None
        #: The knowledge graph, with the people of titles added while running.
        self.kg = dataset.kg if len(dataset.kg) else None
        #: item_id -> unix seconds, of the titles added while running (``add_title``).
        self.added_at: dict[str, float] = {}
        #: Bumped by every added title; part of every cache key.
        self.catalog_generation = 0
        self._text_vectors: np.ndarray | None = None  # (V, D): added titles' rows only
        self._genre_profile: Recommender | None = None
        self._member: Recommender | None = None
        #: The log and users the pipeline's popularity, trending and neighbours come from:
        #: the data set's, joined to the stored events at each reload (see `reload`).
        self._stats: tuple[Interactions, Users] = (dataset.interactions, dataset.users)
        t0 = time.perf_counter()
        self.base = RecPipeline.build(None, self.catalog, dataset.interactions, users=dataset.users)
        log.info("pipeline side data built in %.1fs", time.perf_counter() - t0)
        self.slots = self.load_models()
        restored = self.restore_added_titles()
        if restored:
            log.info("grew the catalog and models to %d stored added title(s)", restored)

    # ------------------------------------------------------------ models
    def load_models(self) -> ModelSlots:
        """Load the promoted (else newest) version of every configured model
        (``Settings.served_models``: ``prefer``, then ``models``).

        The first of them that exists serves by default; without any,
        the content + popularity pipeline serves as ``content:v0``.
        """
        loaded: dict[str, LoadedModel] = {}
        default: LoadedModel | None = None
        for name in self.settings.served_models:
            if name not in self.registry.names():
                continue
            mv = self.registry.promoted(name) or self.registry.latest(name)
            lm = self._load(mv)
            loaded[lm.key] = lm
            default = default or lm
        if default is None:
            log.warning(
                "no trained model among %s in %s: serving content + popularity only "
                "(train one with `primetime serve`, which trains the demo models, or "
                "`primetime train`)",
                self.settings.served_models,
                self.registry.root,
            )
            default = LoadedModel("content", "v0", self.base)
            loaded[default.key] = default
        self._member = member = self._content_member(loaded.values())
        loaded = {
            k: dataclasses.replace(lm, pipeline=lm.pipeline.with_content_model(member))
            for k, lm in loaded.items()
        }
        default = loaded[default.key]
        self.metrics.set_model_version(default.name, default.version)
        return ModelSlots(default=default, by_key=loaded, loaded_at=time.time())

    def _load(self, mv: ModelVersion) -> LoadedModel:
        model = self.registry.load(mv.name, mv.version)
        if self.added_at:  # titles were added since start-up: grow it to them
            model = grow_model(model, self.growth_side()) or model
        pipeline = self.base.with_model(model).with_content_model(self._member)
        pipeline = pipeline.with_weights(self.blend_of(mv)[0])
        return LoadedModel(mv.name, mv.version, pipeline, dict(mv.metrics or {}))

    def blend_of(self, mv: ModelVersion) -> tuple[BlendWeights, str]:
        """The blend ``mv`` is served with and where it comes from: ``"valid"``, the one
        chosen for it on valid when it was trained (registry ``served_blend``), when
        ``settings.model_blend``; else (or when it has none, or an unreadable one:
        logged) ``"default"``, the service's default."""
        if self.settings.model_blend:
            try:
                chosen = version_blend(mv.meta)
            except (TypeError, ValueError) as e:
                log.warning("%s:%s: served_blend ignored (%s)", mv.name, mv.version, e)
                chosen = None
            if chosen is not None:
                return chosen, "valid"
        return self.base.weights, "default"

    # ------------------------------------------------------- new titles
    def growth_side(self) -> SideData:
        """Side data of the current catalog for ``extend_items``: the catalog, the graph
        and the text vectors of the added titles (the others' rows zero)."""
        return SideData(catalog=self.catalog, kg=self.kg, text_vectors=self._text_vectors)

    def _content_member(self, loaded: Iterable[LoadedModel]) -> Recommender:
        """The content member of every pipeline: the first loaded model of
        :data:`CONTENT_MODELS` that scores the whole catalog, else a genre-profile fitted
        on the data set (milliseconds) and grown to the added titles."""
        models = [lm.pipeline.model for lm in loaded]
        for name in CONTENT_MODELS:
            for m in models:
                if m is not None and m.name == name and m.items == self.items:
                    return m
        gp = self._base_genre_profile()
        if gp.items != self.items:
            gp = grow_model(gp, self.growth_side()) or gp
        return gp

    def _base_genre_profile(self) -> Recommender:
        """A genre-profile fitted on the data set's catalog (kept; grown on copies)."""
        if self._genre_profile is None:
            from primetime.models.reference import GenreProfileRecommender

            gp = GenreProfileRecommender()
            gp.fit(self.dataset.interactions, side=SideData(catalog=self.dataset.catalog))
            self._genre_profile = gp
        return self._genre_profile

    def add_title(self, body: TitleIn, *, added_at: float | None = None) -> dict[str, Any]:
        """Append a title to the catalog and grow every loaded model to it; swapped in
        at once (a request sees the old catalog or the new one, see :meth:`add_titles`).

        Returns:
            ``{"item_id", "item_idx", "added_at", "models": {key: grown?},
            "content_model"}``.

        Raises:
            KeyError: the item id is in the catalog already.
        """
        return self.add_titles([body], added_at=[added_at])[0]

    def add_titles(
        self, bodies: Sequence[TitleIn], *, added_at: Sequence[float | None] | None = None
    ) -> list[dict[str, Any]]:
        """Append titles to the catalog and grow every loaded model to them, in one swap.

        Every loaded model is grown on a copy (``extend_items``); one that cannot keeps
        its titles and its pipeline scores the new ones by the content member. The
        pipeline index is rebuilt on the grown catalog (neighbours, genres, dates, the
        ``added`` times) and the cache generation moves on. The swap appends to the
        per-title lists first, then replaces the catalog and vocabulary, then the
        pipelines: a request holding the old pipelines only meets old titles (a
        history with the new one is read without it), one holding the new pipelines
        finds every title it returns in the catalog.

        Args:
            bodies: The titles, in the order they get item indices.
            added_at: When each was added (unix seconds; None: now), e.g. the stored
                times of :meth:`restore_added_titles`.

        Returns:
            One ``{"item_id", "item_idx", "added_at", "models", "content_model"}`` per title.

        Raises:
            KeyError: an item id is in the catalog already, or given twice.
            ValueError: ``added_at`` is not one time per title.
        """
        times = list(added_at) if added_at is not None else [None] * len(bodies)
        if len(times) != len(bodies):
            raise ValueError(f"added_at: {len(times)} times for {len(bodies)} titles")
        if not bodies:
            return []
        with self._lock:
            ids = [b.item_id for b in bodies]
            for iid in ids:
                if iid in self.items or ids.count(iid) > 1:
                    raise KeyError(iid)
            t0 = time.perf_counter()
            n_old = self.items.size
            catalog, kg = grow_catalog(self.catalog, self.kg, list(bodies))
            slots = self.slots
            models = [lm.pipeline.model for lm in slots.by_key.values()] + [self._member]
            text = self._text_vectors
            n_add = len(bodies)
            if any(m is not None and needs_text(m) for m in models):
                text = encode_new_texts(catalog, kg, n_old, self._text_vectors)
            elif text is not None:
                text = np.concatenate([text, np.zeros((n_add, text.shape[1]), np.float32)])
            side = SideData(catalog=catalog, kg=kg, text_vectors=text)
            now = time.time()
            stamps = [now if at is None else float(at) for at in times]
            added_at_map = {**self.added_at, **dict(zip(ids, stamps, strict=True))}
            added = np.full(catalog.items.size, np.nan)
            for iid, at in added_at_map.items():
                added[catalog.items.index(iid)] = at
            log_, users = self._stats
            train = dataclasses.replace(log_, items=catalog.items)
            base = RecPipeline.build(None, catalog, train, users=users, added=added).with_weights(
                self.base.weights
            )
            grown: dict[int, Recommender | None] = {}

            def grow(m: Recommender) -> Recommender | None:
                if id(m) not in grown:
                    grown[id(m)] = grow_model(m, side)
                return grown[id(m)]

            assert self._member is not None
            member = grow(self._member)
            if member is None:  # the content model could not grow: the genre profile can
                member = grow(self._base_genre_profile()) or self._base_genre_profile()
            by_key: dict[str, LoadedModel] = {}
            report: dict[str, bool] = {}
            for key, lm in slots.by_key.items():
                m = lm.pipeline.model
                g = grow(m) if m is not None else None
                report[key] = g is not None
                pipe = base.with_model(g if g is not None else m).with_content_model(member)
                pipe = pipe.with_weights(lm.pipeline.weights)  # the version's own blend
                by_key[key] = dataclasses.replace(lm, pipeline=pipe)
            new_slots = ModelSlots(
                default=by_key[slots.default.key], by_key=by_key, loaded_at=slots.loaded_at
            )
            # the swap: lists (supersets) first, then the catalog, then the pipelines
            for k, body in enumerate(bodies):
                row = catalog.row(n_old + k)
                self.item_ids.append(body.item_id)
                self.titles.append(str(row["title"]))
                self._titles_lower.append(str(row["title"]).lower())
                self.item_genres.append(list(body.genres))
            self.catalog, self.kg, self._text_vectors = catalog, kg, text
            self.added_at = added_at_map
            self.items = catalog.items
            self.base, self._member = base, member
            self.slots = new_slots
            self.catalog_generation += 1
            log.info(
                "added %d title(s) %s (item_idx %d..) in %.2fs; grown: %s; content member %s",
                n_add,
                ids[:5],
                n_old,
                time.perf_counter() - t0,
                report,
                member.name,
            )
            return [
                {
                    "item_id": iid,
                    "item_idx": n_old + k,
                    "added_at": stamps[k],
                    "models": report,
                    "content_model": member.name,
                }
                for k, iid in enumerate(ids)
            ]

    def restore_added_titles(self) -> int:
        """Grow the catalog and models to the titles added to the service before (kept in
        the store's ``titles`` table with their body and time), oldest first, in one
        swap: after a restart, and on every worker, they are scored and listed in "New
        on Primetime" again. Titles already in the catalog (the data set has them now)
        are skipped; a stored body that no longer validates is logged and skipped.

        Returns:
            How many titles were added.
        """
        bodies: list[TitleIn] = []
        times: list[float | None] = []
        for details, at in self.store.added_titles():
            iid = details.get("item_id")
            if iid in self.items or any(b.item_id == iid for b in bodies):
                continue
            try:
                bodies.append(TitleIn.model_validate(details))
            except ValueError as err:
                log.warning("stored title %r no longer validates, skipped: %s", iid, err)
                continue
            times.append(at)
        self.add_titles(bodies, added_at=times)
        return len(bodies)

    def reload(self) -> ModelSlots:
        """Load the promoted versions again and swap them in atomically.

        The pipeline's side statistics (popularity, trending, neighbours) are rebuilt first
        from the data set's log joined to every stored event: a version retrained on the
        exported events (``primetime retrain``) then ranks the titles those events made
        popular without the blend's stale base-log counts holding them back (measured in
        ``benchmarks/bench_loop.py``: new titles in 1 of 15 served top-10s with base-log
        statistics, 9 of 15 with the events joined, same retrained model)."""
        with self._lock:
            self._refresh_stats()
            self.slots = self.load_models()
        return self.slots

    def _refresh_stats(self) -> None:
        """Rebuild ``self.base`` from the data set's log + the stored events (under the lock)."""
        from primetime.data.exported import join_events
        from primetime.service.export import stored_events

        t0 = time.perf_counter()
        events = stored_events(self.store.engine)
        events = events.filter(pl.col("item_id").is_in(self.item_ids))
        if not events.height:
            return
        try:
            joined = join_events(self.dataset, events, self.catalog.frame, source="the event store")
        except ValueError as e:  # e.g. a data set whose user ids look like service users'
            log.warning("reload: pipeline statistics kept (%s)", e)
            return
        if joined.items != self.items:  # cannot happen while titles are only appended
            log.warning("reload: the stored events' catalog differs; statistics kept")
            return
        added = None
        if self.added_at:
            added = np.full(self.items.size, np.nan)
            for iid, at in self.added_at.items():
                added[self.items.index(iid)] = at
        self.base = RecPipeline.build(
            None, self.catalog, joined.interactions, users=joined.users, added=added
        ).with_weights(self.base.weights)
        self._stats = (joined.interactions, joined.users)
        log.info(
            "pipeline statistics rebuilt with %d stored events in %.2fs",
            events.height,
            time.perf_counter() - t0,
        )

    def model(self, key: str) -> LoadedModel:
        """A loaded version by ``"name:version"``, loading it on first use.

        Raises:
            KeyError: if the registry has no such version.
        """
        slots = self.slots
        if key in slots.by_key:
            return slots.by_key[key]
        name, _, version = key.partition(":")
        with self._lock:
            slots = self.slots
            if key not in slots.by_key:
                mv = self.registry.get(name, version)
                lm = self._load(mv)
                self.slots = ModelSlots(
                    default=slots.default,
                    by_key={**slots.by_key, key: lm},
                    loaded_at=slots.loaded_at,
                )
            return self.slots.by_key[key]

    def active_experiment(self) -> ExperimentRecord | None:
        """The running experiment (the oldest active one), re-read at most every
        ``EXPERIMENT_TTL`` seconds and at once after :meth:`experiments_changed`."""
        at, exp = self._experiments
        now = time.monotonic()
        if now - at > EXPERIMENT_TTL:
            active = [e for e in self.store.experiments() if e.active]
            exp = min(active, key=lambda e: e.created_at) if active else None
            self._experiments = (now, exp)
        return exp

    def experiments_changed(self) -> None:
        """Call after creating or stopping an experiment in this process."""
        self._experiments = (-1.0, None)

    def assignment(self, user_id: int) -> Assignment:
        """The model for ``user_id``: the active experiment's arm, else the default."""
        exp = self.active_experiment()
        if exp is None:
            return Assignment(self.slots.default)
        arms = [{"name": a.name, "weight": a.weight} for a in exp.arms]
        arm = self.store.assign(exp.id, user_id, stable_arm(exp.id, user_id, arms))
        version = next(a.model_version for a in exp.arms if a.name == arm)
        try:
            model = self.model(version)
        except KeyError:
            log.error("experiment %s arm %s: model %s not found", exp.id, arm, version)
            model = self.slots.default
        return Assignment(model, exp.id, arm)

    def logs_impressions(self, a: Assignment) -> bool:
        """Whether a response under ``a`` logs its impressions (``settings.impressions``)."""
        return a.experiment_id is not None or self.settings.impressions == "all"

    # ------------------------------------------------------------- users
    def user(self, user_id: int) -> UserRecord | None:
        """A user's record, kept for ``USER_TTL`` seconds (read on every request)."""
        hit = self._users.get(user_id)
        if hit is not None and time.monotonic() - hit[0] < USER_TTL:
            return hit[1]
        user = self.store.user(user_id)
        if user is not None:
            if len(self._users) > 50_000:
                self._users.clear()
            self._users[user_id] = (time.monotonic(), user)
        return user

    def user_changed(self, user_id: int) -> None:
        """Call after changing a user's record (onboarding picks) in this process."""
        self._users.pop(user_id, None)

    def close(self) -> None:
        """Write pending impressions (the store and cache are closed by their owner)."""
        self.impressions.close()

    def item_index(self, item_id: str) -> int | None:
        """item_idx of an external id, or None when the catalog lacks it."""
        idx = self.items.get(item_id, 0)
        return idx or None

    def user_view(self, user: UserRecord, *, now: float | None = None) -> UserView:
        """The user's context and live preferences from their stored events (see
        :class:`~primetime.service.userview.UserViews`: kept per worker, caught up on read)."""
        return self.views.get(user, now=now)

    # ------------------------------------------------------------- rows
    def carousel_rows(
        self, user: UserRecord, a: Assignment, *, n: int, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """The user's home-page rows as JSON, cached per model version and user generation.

        One function for ``GET /api/v1/carousels`` and the web home page, so both
        read and fill the same cache entry.
        """
        key = self.cache_key("rows", a.model.key, user.id, {"n": n, "kind": kind})
        raw, slot = self.cache.fetch(user.id, key)
        if raw is not None:
            rows: list[dict[str, Any]] = json.loads(raw)
        else:
            view = self.user_view(user)
            out = a.model.pipeline.carousels(
                view.context,
                prefs=view.prefs,
                now=time.time(),
                n=n,
                events=view.pref_events,
                dislikes=view.dislikes,
                onboarding_genres=list(user.onboarding_genres),
                demographics=user.demographics,
                kind=kind,
            )
            rows = [
                {"key": c.key, "title": c.title, "items": [self.item_json(s) for s in c.items]}
                for c in out
            ]
            self.cache.put(slot, json.dumps(rows).encode(), self.settings.cache_ttl_seconds)
        return rows

    # ------------------------------------------------------- rendering
    def title_json(self, item_idx: int) -> dict[str, Any]:
        """The public fields of a title."""
        row = self.catalog.row(item_idx)
        out: dict[str, Any] = {
            "item_id": row["item_id"],
            "title": row["title"],
            "kind": row["kind"],
            "year": row.get("year"),
            "genres": list(row.get("genres") or []),  # type: ignore[call-overload]
        }
        for key in ("network", "series_id", "season_number", "seasons", "episodes"):
            if row.get(key) is not None:
                out[key] = row[key]
        added = self.added_at.get(str(row["item_id"]))
        if added is not None:
            out["added_at"] = added
        return out

    def item_json(self, s: ScoredItem) -> dict[str, Any]:
        """A recommended title with its score and reason."""
        source = s.reason.source_item
        return {
            **self.title_json(s.item_idx),
            "score": round(float(s.score), 6),
            "reason": {
                "code": s.reason.code,
                "text": s.reason.text,
                "source_item_id": self.item_ids[source - 1] if source else None,
            },
        }

    def search(self, q: str, limit: int) -> list[int]:
        """item_idx of titles containing ``q`` (case-insensitive), prefix matches first."""
        ql = q.lower().strip()
        hits = sorted(
            (not t.startswith(ql), len(t), i + 1)
            for i, t in enumerate(self._titles_lower)
            if ql in t
        )
        return [h[2] for h in hits[:limit]]

    # ------------------------------------------------------------- cache
    def cache_key(
        self, namespace: str, model_key: str, user_id: int, params: dict[str, Any]
    ) -> str:
        """Key of a cached response: model version, the namespace and the parameters.

        Look it up with ``cache.fetch(user_id, key)`` and store a recomputed value in the
        slot that returns, so an event arriving in between leaves the stored value stale.
        """
        params = {"ns": namespace, **params}
        if self.catalog_generation:  # titles were added: entries of the old catalog expire
            params["catalog"] = self.catalog_generation
        return rec_key(model_key, user_id, params)
