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
