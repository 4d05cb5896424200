"""Caches for recommendation responses: in-process LRU (one app process) or Redis (several).

Values are opaque bytes with a time to live. Invalidation is per user by *generation*: a
user's response is stored with the generation it was computed under (`fetch` returns the
`CacheSlot` to `put` it in), `bump_user` (called when the user acts) moves the generation on,
and an entry of an older generation is never served again and simply ages out. No key scan,
no delete-by-pattern. In Redis, `fetch` reads the generation and the entry in one round trip
(`MGET`): the entry carries its generation in front of the value.

A cache is an optimisation, never a dependency: `RedisCache` turns every Redis failure into a
miss or a no-op (counted in `stats().errors`), logs one warning per outage, and retries Redis
on its own after a short pause.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

UNKNOWN_GENERATION: Final = -1
"""What `RedisCache.user_generation` answers while Redis is unreachable. Stored generations
are >= 0, so keys built with it never match an entry written while Redis was healthy."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the cache was made. `errors` are backend failures (each also a miss or a
    dropped write); `backend` is "memory" or "redis"."""

    hits: int
    misses: int
    errors: int
    backend: str

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def rec_key(model_version: str, user_id: int, params: Mapping[str, Any]) -> str:
    """Cache key of one recommendation response (the generation travels in the `CacheSlot`).

    Args:
        model_version: what produced the response (a new model never reads old entries).
        user_id: whose response it is.
        params: request parameters that change the response (k, filters …); JSON-able.

    Returns:
        `rec:{model_version}:{user_id}:{hash}`, where the hash of `params` is stable across
        processes and key order.
    """
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return f"rec:{model_version}:{user_id}:{digest}"


@dataclass(frozen=True, slots=True)
class CacheSlot:
    """Where `Cache.put` stores a response that `Cache.fetch` missed: the key and the user's
    generation read at that fetch. A value computed after an event the fetch did not see is
    stored under the older generation, so it is never served."""

    key: str
    generation: int


def _check_ttl(name: str, ttl: float | None) -> float | None:
    if ttl is not None and not ttl > 0:
        raise ValueError(f"{name}: expected seconds > 0 or None (no expiry), got {ttl!r}")
    return ttl


class Cache(ABC):
    """Bytes cache with per-user generations; implementations are thread-safe and never raise
    on backend failures."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value under `key`, or None (absent, expired or backend down)."""

    @abstractmethod
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` for `ttl` seconds (None: the cache's default)."""

    @abstractmethod
    def user_generation(self, user_id: int) -> int:
        """The user's current generation, to put in keys (0 for a user never bumped)."""

    @abstractmethod
    def bump_user(self, user_id: int) -> int:
        """Invalidate every entry keyed with the user's current generation; returns the new,
        larger generation."""

    def bump_users(self, user_ids: Iterable[int]) -> None:
        """`bump_user` for each user (a group commit's users: Redis does them in one round
        trip)."""
        for user_id in user_ids:
            self.bump_user(user_id)

    def fetch(self, user_id: int, key: str) -> tuple[bytes | None, CacheSlot]:
        """The user's entry under `key` if it was stored at their current generation (else
        None), and the slot to `put` a recomputed value in."""
        gen = self.user_generation(user_id)
        slot = CacheSlot(f"{key}:g{gen}", gen)
        return self.get(slot.key), slot

    def put(self, slot: CacheSlot, value: bytes, ttl: float | None = None) -> None:
        """Store a value computed after `fetch` returned `slot`."""
        self.set(slot.key, value, ttl)

    @abstractmethod
    def stats(self) -> CacheStats:
        """Hit, miss and error counters."""

    def close(self) -> None:  # noqa: B027 — optional hook, nothing to release by default
        """Release connections."""


class MemoryCache(Cache):
    """Thread-safe LRU with a time to live, for one app process.

    Args:
        maxsize: most entries kept; the least recently used go first. Also bounds the table of
            user generations.
        ttl: default seconds an entry lives; None = until evicted.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        maxsize: int = 10_000,
        ttl: float | None = 300,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize: expected an int >= 1, got {maxsize!r}")
        self._maxsize = maxsize
        self._ttl = _check_ttl("ttl", ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # key → (expiry, v)
        self._gens: OrderedDict[int, int] = OrderedDict()
        # Generation of every user not in `_gens`: the largest one ever evicted. A user's
        # generation therefore never goes down, even after eviction, so an entry written before
        # a bump can never be read again.
        self._gen_floor = 0
        self._hits = self._misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > self._clock():
                self._entries.move_to_end(key)
                self._hits += 1
                return found[1]
            if found is not None:
                del self._entries[key]
            self._misses += 1
            return None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = _check_ttl("ttl", ttl) or self._ttl
        expiry = self._clock() + ttl if ttl is not None else float("inf")
        with self._lock:
            self._entries[key] = (expiry, bytes(value))
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def user_generation(self, user_id: int) -> int:
        with self._lock:
            return self._gens.get(user_id, self._gen_floor)

    def bump_user(self, user_id: int) -> int:
        with self._lock:
            gen = self._gens.pop(user_id, self._gen_floor) + 1
            self._gens[user_id] = gen
            while len(self._gens) > self._maxsize:
                _, evicted = self._gens.popitem(last=False)
                self._gen_floor = max(self._gen_floor, evicted)
            return gen

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, 0, "memory")

    def clear(self) -> None:
        """Drop every entry (generations are kept, so they never go back)."""
        with self._lock:
            self._entries.clear()


# Atomic "next generation": one global counter, so a generation value is never reused even if
# a user's key expired (a reused value could match an entry from before an earlier bump).
# KEYS[1] is the clock, KEYS[2..] the users' generation keys; returns the last generation.
# One script call for any number of users: a pipeline of one call per user cost a
# `SCRIPT EXISTS` round trip before the pipeline's own (redis-py loads a pipeline's scripts
# first), and the group commit's writer bumps every transaction's users.
_BUMP_SCRIPT: Final = """
local gen = 0
for i = 2, #KEYS do
  gen = redis.call('INCR', KEYS[1])
  redis.call('SET', KEYS[i], gen, 'EX', ARGV[1])
end
return gen
"""


class RedisCache(Cache):
    """Cache in Redis, shared by every app process; degrades to misses when Redis is down.

    Keys: `{prefix}c:{key}` (`get`/`set` entries), `{prefix}u:{key}` (`fetch`/`put` entries:
    `b"{generation}:" + value`), `{prefix}gen:{user_id}` (generations, kept `generation_ttl`
    seconds after the last bump), `{prefix}gen-clock` (global counter).

    Args:
        url: `redis://host:port/db` (also `rediss://`, `unix://`).
        ttl: default seconds an entry lives; None = no expiry (capped at `generation_ttl`).
        prefix: namespace of every key this cache touches.
        timeout: socket connect and read timeout in seconds; a slow Redis costs at most this.
        retry_after: seconds to skip Redis after a failure before trying again.
        generation_ttl: seconds a user's generation is remembered; must exceed entry TTLs.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float | None = 300,
        prefix: str = "primetime:",
        timeout: float = 0.1,
        retry_after: float = 1.0,
        generation_ttl: float = 7 * 24 * 3600,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"url: expected redis://, rediss:// or unix://, got {url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout: expected seconds > 0, got {timeout!r}")
        self._ttl = _check_ttl("ttl", ttl)
        self._generation_ttl = int(generation_ttl)
        if self._ttl is not None and self._ttl >= generation_ttl:
            raise ValueError(f"ttl: must be shorter than generation_ttl ({generation_ttl} s)")
        self._prefix = prefix
        self._retry_after = retry_after
        # No client-side retries: a retry multiplies the latency of a dead Redis, and the next
        # call tries again anyway.
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self._bump = self._client.register_script(_BUMP_SCRIPT)
        self._lock = threading.Lock()
        self._hits = self._misses = self._errors = 0
        self._down_until = 0.0  # monotonic time before which Redis is not tried
        self._down = False
        self._url_for_logs = url.split("@")[-1]  # no credentials in logs

    # -- failure handling

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, err: Exception) -> None:
        with self._lock:
            self._errors += 1
            self._down_until = time.monotonic() + self._retry_after
            first = not self._down
            self._down = True
        if first:
            log.warning(
                "Redis cache at %s unavailable (%s: %s); serving without cache, retrying every "
                "%.1f s",
                self._url_for_logs,
                type(err).__name__,
                err,
                self._retry_after,
            )

    def _succeeded(self) -> None:
        if self._down:
            with self._lock:
                recovered, self._down = self._down, False
            if recovered:
                log.info("Redis cache at %s reachable again", self._url_for_logs)

    def _count(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self._hits += 1
            else:
                self._misses += 1

    # -- Cache

    def get(self, key: str) -> bytes | None:
        value: Any = None
        if self._available():
            try:
                value = self._client.get(self._prefix + "c:" + key)
                self._succeeded()
            except (redis.RedisError, OSError) as err:
                self._failed(err)
        self._count(value is not None)
        return bytes(value) if value is not None else None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._write(self._prefix + "c:" + key, value, ttl)

    def _write(self, name: str, value: bytes, ttl: float | None) -> None:
        ttl = _check_ttl("ttl", ttl) or self._ttl
        ttl_ms = int(
            min(ttl if ttl is not None else self._generation_ttl, self._generation_ttl) * 1000
        )
        if not self._available():
            return
        try:
            self._client.set(name, value, px=max(ttl_ms, 1))
            self._succeeded()
        except (redis.RedisError, OSError) as err:
            self._failed(err)

    def fetch(self, user_id: int, key: str) -> tuple[bytes | None, CacheSlot]:
        """One round trip: `MGET` of the user's generation and the entry, which is served
        only when the generation written in front of it is the current one."""
        value: bytes | None = None
        gen = UNKNOWN_GENERATION
        if self._available():
            try:
                found: Any = self._client.mget(
                    f"{self._prefix}gen:{user_id}", f"{self._prefix}u:{key}"
                )
                raw_gen, entry = found
                self._succeeded()
                gen = int(raw_gen) if raw_gen is not None else 0
                if entry is not None:
                    stamp, _, body = bytes(entry).partition(b":")
                    if stamp == str(gen).encode():
                        value = body
            except (redis.RedisError, OSError) as err:
                self._failed(err)
        self._count(value is not None)
        return value, CacheSlot(key, gen)

    def put(self, slot: CacheSlot, value: bytes, ttl: float | None = None) -> None:
        if slot.generation == UNKNOWN_GENERATION:
            return  # read while Redis was down: the generation to stamp is unknown
        self._write(f"{self._prefix}u:{slot.key}", b"%d:" % slot.generation + value, ttl)

    def user_generation(self, user_id: int) -> int:
        if not self._available():
            return UNKNOWN_GENERATION
        try:
            raw: Any = self._client.get(f"{self._prefix}gen:{user_id}")
            self._succeeded()
        except (redis.RedisError, OSError) as err:
            self._failed(err)
            return UNKNOWN_GENERATION
        return int(raw) if raw is not None else 0

    def bump_user(self, user_id: int) -> int:
        """Move the user's generation on; while Redis is down this is lost (entries written
        before the outage can then be served until their TTL ends) and returns -1."""
        if not self._available():
            return UNKNOWN_GENERATION
        try:
            gen: Any = self._bump(
                keys=[self._prefix + "gen-clock", f"{self._prefix}gen:{user_id}"],
                args=[self._generation_ttl],
            )
            self._succeeded()
        except (redis.RedisError, OSError) as err:
            self._failed(err)
            return UNKNOWN_GENERATION
        return int(gen)

    def bump_users(self, user_ids: Iterable[int]) -> None:
        """`bump_user` of each, in one script call: one round trip for all."""
        ids = list(dict.fromkeys(user_ids))
        if not ids or not self._available():
            return
        try:
            self._bump(
                keys=[self._prefix + "gen-clock", *(f"{self._prefix}gen:{u}" for u in ids)],
                args=[self._generation_ttl],
            )
            self._succeeded()
        except (redis.RedisError, OSError) as err:
            self._failed(err)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._errors, "redis")

    def close(self) -> None:
        try:
            self._client.close()
        except (redis.RedisError, OSError) as err:  # closing a dead connection
            log.debug("closing Redis client: %s", err)


def make_cache(url: str | None, **kwargs: Any) -> Cache:
    """The cache a settings string asks for.

    Args:
        url: None, "" or "memory" → `MemoryCache`; `redis://…` (or `rediss://`, `unix://`)
            → `RedisCache`.
        **kwargs: passed to the constructor (`ttl` for both; `maxsize` for memory; `prefix`,
            `timeout`, `retry_after` for Redis).

    Raises:
        ValueError: naming `url` when it is neither.
    """
    if url is None or url in ("", "memory", "memory://"):
        return MemoryCache(**kwargs)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url, **kwargs)
    raise ValueError(f"url: unknown cache {url!r}; use 'memory' or redis://host:port/db")
