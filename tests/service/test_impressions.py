"""The impression buffer: batched writes off the request path, nothing lost on close,
kept while the database refuses writes."""

from __future__ import annotations

from primetime.service.impressions import ImpressionBuffer
from primetime.service.store import EventStore


def test_buffer_writes_in_batches_and_flushes_on_close(store: EventStore) -> None:
    uid = store.create_user("imp", "hash").id
    buf = ImpressionBuffer(store, interval=60.0)  # no timed flush during the test
    for n in range(3):
        buf.add(user_id=uid, request_id=f"r{n}", items=["i1", "i2"], model_version="m:v1")
    assert store.impressions(uid) == [], "queued, not yet written"
    assert buf.flush() == 6
    got = store.impressions(uid)
    assert [(i.request_id, i.item_id, i.position) for i in got][:2] == [
        ("r0", "i1", 0),
        ("r0", "i2", 1),
    ]
    buf.add(user_id=uid, request_id="last", items=["i3"], model_version="m:v1")
    buf.close()
    assert store.impressions(uid, request_id="last")[0].item_id == "i3"


def test_a_stale_entry_does_not_lose_the_others(store: EventStore) -> None:
    uid = store.create_user("imp2", "hash").id
    buf = ImpressionBuffer(store, interval=60.0)
    buf.add(user_id=uid, request_id="ok", items=["i1"], model_version="m:v1")
    buf.add(user_id=987654, request_id="ghost", items=["i1"], model_version="m:v1")
    assert buf.flush() == 1
    assert [i.request_id for i in store.impressions(uid)] == ["ok"]
    buf.close()


def test_database_down_keeps_them_for_the_next_flush(store: EventStore, monkeypatch) -> None:
    uid = store.create_user("imp3", "hash").id
    buf = ImpressionBuffer(store, interval=60.0)
    buf.add(user_id=uid, request_id="r", items=["i1"], model_version="m:v1")

    def down(batches):
        raise ConnectionError("database down")

    monkeypatch.setattr(store, "log_impression_batches", down)
    assert buf.flush() == 0
    monkeypatch.undo()
    assert buf.flush() == 1
    buf.close()


def test_without_a_broker_the_service_keeps_the_in_process_buffer(store: EventStore) -> None:
    from primetime.service.impressions import RedisImpressionQueue, make_impression_sink
    from primetime.service.settings import Settings

    plain = Settings(_env_file=None, cache_url="redis://127.0.0.1:6379/15")  # type: ignore[call-arg]
    assert plain.impression_queue_url is None  # a Redis cache alone starts no queue
    sink = make_impression_sink(store, queue_url=plain.impression_queue_url)
    assert isinstance(sink, ImpressionBuffer)
    sink.close()
    rabbit = Settings(_env_file=None, broker_url="amqp://guest:guest@127.0.0.1:5672//")  # type: ignore[call-arg]
    assert rabbit.impression_queue_url is None  # nowhere to queue: the buffer
    both = rabbit.model_copy(update={"cache_url": "redis://h:1/2"})
    assert both.impression_queue_url == "redis://h:1/2"
    queued = make_impression_sink(store, queue_url="redis://h:1/2")
    assert isinstance(queued, RedisImpressionQueue)
    queued.close()


def test_queue_falls_back_to_the_buffer_when_redis_is_down(store: EventStore) -> None:
    from primetime.service.impressions import RedisImpressionQueue

    uid = store.create_user("imp4", "hash").id
    q = RedisImpressionQueue("redis://127.0.0.1:1/0", store)  # nothing listens there
    q.add(user_id=uid, request_id="r", items=["i1", "i2"], model_version="m:v1")
    assert q.flush() == 2  # the fallback buffer's rows; draining the dead queue fails quietly
    assert [i.item_id for i in store.impressions(uid)] == ["i1", "i2"]
    q.close()


def test_drain_puts_a_refused_batch_back_in_order(
    store: EventStore, redis_url: str, redis_prefix: str, monkeypatch
) -> None:
    import pytest
    import redis

    from primetime.service.impressions import RedisImpressionQueue, drain_impressions

    uid = store.create_user("imp5", "hash").id
    q = RedisImpressionQueue(redis_url, store, prefix=redis_prefix)
    for n in range(5):
        q.add(user_id=uid, request_id=f"r{n}", items=["i1"], model_version="m:v1")
    client = redis.Redis.from_url(redis_url)

    def down(_batches: object) -> int:
        raise ConnectionError("database down")

    monkeypatch.setattr(store, "log_impression_batches", down)
    with pytest.raises(ConnectionError):
        drain_impressions(client, q.key, store, batch=2)
    assert client.llen(q.key) == 5  # nothing lost
    monkeypatch.undo()
    assert drain_impressions(client, q.key, store, batch=2) == 5
    assert [i.request_id for i in store.impressions(uid)] == [f"r{n}" for n in range(5)]
    assert client.llen(q.key) == 0
    client.close()
    q.close()
