"""Caches: in-memory LRU with TTL and generations; Redis for real, and Redis failing (refused,
silent, gone and back) without ever raising or hanging."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from fakes import FakeClock

from primetime.service.cache import (
    UNKNOWN_GENERATION,
    Cache,
    CacheStats,
    MemoryCache,
    RedisCache,
    make_cache,
    rec_key,
)

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


# ---------------------------------------------------------------------------- keys


def test_rec_key_is_stable_and_parameter_sensitive() -> None:
    a = rec_key("sasrec@3", 7, {"k": 10, "genres": ["Drama"]})
    assert a == rec_key("sasrec@3", 7, {"genres": ["Drama"], "k": 10})  # key order ignored
    assert a.startswith("rec:sasrec@3:7:") and len(a.rsplit(":", 1)[1]) == 16
    assert a != rec_key("sasrec@3", 7, {"k": 20, "genres": ["Drama"]})
    assert a != rec_key("sasrec@3", 8, {"k": 10, "genres": ["Drama"]})
    assert a != rec_key("sasrec@4", 7, {"k": 10, "genres": ["Drama"]})
    # Fixed value: the hash must not depend on the process (unlike Python's hash()).
    assert rec_key("m", 1, {}) == "rec:m:1:44136fa355b3678a"


def check_fetch_put_generations(cache: Cache, other_process: Cache) -> None:
    """The contract of fetch/put, for any cache (`other_process` shares its backend, or is
    the same object for an in-process cache)."""
    key7, key8 = rec_key("m", 7, {"k": 10}), rec_key("m", 8, {"k": 10})
    value, slot = cache.fetch(7, key7)
    assert value is None and slot.generation == 0
    cache.put(slot, b"first")
    _, slot8 = cache.fetch(8, key8)
    cache.put(slot8, b"kept")
    assert other_process.fetch(7, key7)[0] == b"first"  # a hit, also for another process
    # The user acts: their entries are stale at once, other users' are not.
    g1 = other_process.bump_user(7)
    value, slot = cache.fetch(7, key7)
    assert value is None and slot.generation == g1
    assert cache.fetch(8, key8)[0] == b"kept"
    # A value computed while another event arrives is stored, but never served.
    cache.bump_user(7)
    cache.put(slot, b"computed before the second event")
    value, slot = cache.fetch(7, key7)
    assert value is None and slot.generation > g1
    cache.put(slot, b"fresh")
    assert cache.fetch(7, key7)[0] == b"fresh"
    # Values are bytes as given, whatever they hold (the generation stamp is not confused).
    cache.put(cache.fetch(8, key8)[1], b"12:\x00:")
    assert cache.fetch(8, key8)[0] == b"12:\x00:"


# ---------------------------------------------------------------------------- memory


def test_memory_lru_evicts_least_recently_used() -> None:
    cache = MemoryCache(maxsize=2, ttl=None)
    cache.set("a", b"1")
    cache.set("b", b"2")
    assert cache.get("a") == b"1"  # a is now the most recently used
    cache.set("c", b"3")
    assert cache.get("b") is None
    assert cache.get("a") == b"1" and cache.get("c") == b"3"
    assert len(cache) == 2
    cache.set("a", b"new")  # overwrite keeps the size
    assert cache.get("a") == b"new" and len(cache) == 2


def test_memory_ttl_expiry_with_injected_clock() -> None:
    clock = FakeClock()
    cache = MemoryCache(maxsize=10, ttl=10, clock=clock)
    cache.set("default", b"x")
    cache.set("short", b"y", ttl=1)
    clock.now += 0.5
    assert cache.get("short") == b"y"
    clock.now += 1.0
    assert cache.get("short") is None
    clock.now += 8.4  # 9.9 s after set
    assert cache.get("default") == b"x"
    clock.now += 0.2
    assert cache.get("default") is None
    assert len(cache) == 0  # expired entries are dropped when met

    forever = MemoryCache(ttl=None, clock=clock)
    forever.set("k", b"v")
    clock.now += 1e9
    assert forever.get("k") == b"v"


def test_memory_generation_bump_invalidates_user() -> None:
    cache = MemoryCache()
    assert cache.user_generation(7) == 0
    check_fetch_put_generations(cache, cache)
    assert cache.bump_user(7) == 3 and cache.user_generation(7) == 3


def test_memory_generations_never_go_back_after_eviction() -> None:
    cache = MemoryCache(maxsize=2)
    for _ in range(3):
        cache.bump_user(1)
    assert cache.user_generation(1) == 3
    cache.bump_user(2)
    cache.bump_user(3)  # user 1 falls out of the bounded table
    assert cache.user_generation(1) >= 3  # never back to a generation with stale entries
    assert cache.bump_user(1) > 3


def test_memory_stats_and_thread_safety() -> None:
    cache = MemoryCache(maxsize=50)
    cache.set("a", b"1")
    cache.get("a")
    cache.get("missing")
    assert cache.stats() == CacheStats(hits=1, misses=1, errors=0, backend="memory")
    assert cache.stats().hit_rate == 0.5

    def hammer(t: int) -> None:
        for i in range(2000):
            cache.set(f"{t}:{i % 100}", b"v")
            cache.get(f"{(t + 1) % 4}:{i % 100}")
            if i % 50 == 0:
                cache.bump_user(t)

    threads = [threading.Thread(target=hammer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cache.stats()
    assert stats.hits + stats.misses == 2 + 4 * 2000
    assert len(cache) == 50
    assert cache.user_generation(0) == 40


def test_memory_cache_checks_arguments() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        MemoryCache(maxsize=0)
    with pytest.raises(ValueError, match="ttl"):
        MemoryCache(ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        MemoryCache().set("k", b"v", ttl=-1)


def test_make_cache() -> None:
    assert isinstance(make_cache(None), MemoryCache)
    assert isinstance(make_cache("memory", maxsize=3, ttl=5), MemoryCache)
    cache = make_cache(CLOSED_PORT_URL, ttl=5)  # connects lazily: nothing fails here
    assert isinstance(cache, RedisCache)
    cache.close()
    with pytest.raises(ValueError, match="url: unknown cache 'memcached://x'"):
        make_cache("memcached://x")


# ---------------------------------------------------------------------------- redis: real


@pytest.fixture
def redis_cache(redis_url: str, redis_prefix: str) -> Iterator[RedisCache]:
    cache = RedisCache(redis_url, ttl=60, prefix=redis_prefix)
    yield cache
    cache.close()


@pytest.mark.integration
def test_redis_set_get_and_ttl(redis_cache: RedisCache, redis_url: str, redis_prefix: str) -> None:
    assert redis_cache.get("k") is None
    redis_cache.set("k", b"\x00value")
    redis_cache.set("short", b"v", ttl=2.5)
    assert redis_cache.get("k") == b"\x00value"
    raw = redis.Redis.from_url(redis_url)
    try:
        assert 0 < raw.pttl(f"{redis_prefix}c:short") <= 2500
        assert 2500 < raw.pttl(f"{redis_prefix}c:k") <= 60_000
        # Nothing is written outside the prefix.
        assert all(k.startswith(redis_prefix.encode()) for k in raw.scan_iter(f"{redis_prefix}*"))
        raw.delete(f"{redis_prefix}c:short")
    finally:
        raw.close()
    assert redis_cache.get("short") is None
    assert redis_cache.stats() == CacheStats(hits=1, misses=2, errors=0, backend="redis")


@pytest.mark.integration
def test_redis_bump_users_moves_each_generation_once(redis_cache: RedisCache) -> None:
    before = [redis_cache.user_generation(u) for u in (1, 2, 3)]
    redis_cache.bump_users([1, 2, 1])
    after = [redis_cache.user_generation(u) for u in (1, 2, 3)]
    assert after[0] > before[0] and after[1] > before[1] and after[2] == before[2]
    assert after[0] != after[1]  # one global clock: never the same generation twice
    redis_cache.bump_users([])


@pytest.fixture
def other_process(redis_url: str, redis_prefix: str) -> Iterator[RedisCache]:
    """A second client on the same Redis and prefix, as another app process would have."""
    cache = RedisCache(redis_url, prefix=redis_prefix)
    yield cache
    cache.close()


@pytest.mark.integration
def test_redis_generations_are_shared_and_increase(
    redis_cache: RedisCache, other_process: RedisCache
) -> None:
    assert redis_cache.user_generation(7) == 0
    g1 = redis_cache.bump_user(7)
    assert g1 > 0 and other_process.user_generation(7) == g1
    g2 = other_process.bump_user(7)
    assert g2 > g1 and redis_cache.user_generation(7) == g2
    assert redis_cache.user_generation(8) == 0  # other users untouched


@pytest.mark.integration
def test_redis_fetch_is_one_round_trip_and_respects_generations(
    redis_cache: RedisCache, other_process: RedisCache, redis_url: str, redis_prefix: str
) -> None:
    check_fetch_put_generations(redis_cache, other_process)
    calls: list[str] = []
    client = redis_cache._client
    real = client.execute_command

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(str(args[0]))
        return real(*args, **kwargs)

    client.execute_command = counting  # type: ignore[method-assign]
    try:
        assert redis_cache.fetch(7, rec_key("m", 7, {"k": 10}))[0] == b"fresh"
    finally:
        client.execute_command = real  # type: ignore[method-assign]
    assert calls == ["MGET"]
    raw = redis.Redis.from_url(redis_url)
    try:
        assert 0 < raw.pttl(f"{redis_prefix}u:{rec_key('m', 7, {'k': 10})}") <= 60_000
    finally:
        raw.close()


# ---------------------------------------------------------------------------- redis: failing


def test_redis_on_closed_port_degrades_fast(caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisCache(CLOSED_PORT_URL, retry_after=0.0)  # try Redis on every call
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="primetime.service.cache"):
        for i in range(20):
            assert cache.get(f"k{i}") is None
            cache.set(f"k{i}", b"v")
            assert cache.user_generation(i) == UNKNOWN_GENERATION
            assert cache.bump_user(i) == UNKNOWN_GENERATION
            value, slot = cache.fetch(i, f"r{i}")
            assert value is None and slot.generation == UNKNOWN_GENERATION
            cache.put(slot, b"v")  # nothing to stamp it with: not written, not an error
    elapsed = time.perf_counter() - start
    stats = cache.stats()
    assert stats == CacheStats(hits=0, misses=40, errors=100, backend="redis")
    assert elapsed < 2.0, f"120 calls to a dead Redis took {elapsed:.2f} s"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    cache.close()


def test_redis_that_never_answers_times_out_quickly() -> None:
    # Accepts TCP connections (kernel backlog) but never replies: only timeouts save us.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        cache = RedisCache(f"redis://127.0.0.1:{port}/0", timeout=0.1, retry_after=5.0)
        start = time.perf_counter()
        assert cache.get("k") is None  # one read timeout
        for _ in range(50):  # then skipped until retry_after
            assert cache.get("k") is None
            cache.set("k", b"v")
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0, f"silent Redis held us {elapsed:.2f} s"
        assert cache.stats().errors == 1 and cache.stats().misses == 51
        cache.close()
    finally:
        silent.close()


class TcpProxy:
    """Forwards a local port to Redis; `stop` drops every connection, `start` serves again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._server is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the
            # listening socket alive (Linux) and keep accepting.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        for s in self._conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._conns.clear()


@pytest.mark.integration
def test_redis_recovers_when_it_comes_back(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    target = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    proxy = TcpProxy((target["host"], target["port"]))
    proxy.start()
    db = target.get("db", 0)
    cache = RedisCache(
        f"redis://127.0.0.1:{proxy.port}/{db}", prefix=redis_prefix, retry_after=0.05
    )
    try:
        with caplog.at_level(logging.INFO, logger="primetime.service.cache"):
            cache.set("k", b"v")
            assert cache.get("k") == b"v"

            proxy.stop()  # Redis "goes away"
            assert cache.get("k") is None
            cache.set("k2", b"lost")
            assert cache.stats().errors >= 1

            proxy.start()  # and comes back on the same port
            time.sleep(0.1)  # past retry_after
            deadline = time.monotonic() + 5
            while cache.get("k") != b"v" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert cache.get("k") == b"v"
        messages = [r.getMessage() for r in caplog.records]
        assert sum("unavailable" in m for m in messages) == 1
        assert any("reachable again" in m for m in messages)
    finally:
        cache.close()
        proxy.stop()
