"""Fixtures of the web tests: the world dataset, a model registry and a running app
(helpers live in ``web_support.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from web_support import WebClient, make_web_app, world_catalog, world_log

from primetime.data import Dataset
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.lifecycle import build_model
from primetime.registry import ModelRegistry


@pytest.fixture(scope="session")
def web_dataset() -> Dataset:
    return Dataset.from_frames(
        "web-world", interactions=world_log(), catalog=world_catalog(), source="tests/web"
    )


@pytest.fixture(scope="session")
def web_registry(web_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """itemknn (promoted, serving) and popularity, with made-up offline metrics."""
    reg = ModelRegistry(tmp_path_factory.mktemp("web-registry"))
    train = leave_one_out(web_dataset.interactions).train
    for name, ndcg in (("itemknn", 0.31), ("popularity", 0.12)):
        m = build_model(name)
        m.fit(train, side=SideData.build(catalog=web_dataset.catalog))
        reg.register(m, metrics={"NDCG@10": ndcg, "HR@10": 2 * ndcg}, dataset=web_dataset)
    reg.promote("itemknn", "v1")
    return reg


@pytest.fixture(scope="module")
def web_app_client(
    web_dataset: Dataset, web_registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One running app per test module (a fresh SQLite file); tests use distinct users."""
    app = make_web_app(tmp_path_factory.mktemp("web-db") / "service.db", web_dataset, web_registry)
    with WebClient(app, follow_redirects=False) as c:
        yield c


@pytest.fixture
def client(web_app_client: TestClient) -> TestClient:
    """The module's client with no cookies (signed out)."""
    web_app_client.cookies.clear()
    return web_app_client
