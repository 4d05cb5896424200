"""Settings: defaults, environment and .env overrides, and the refusal of placeholder secrets
outside development."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from primetime.service.settings import Settings, get_settings

STRONG_SECRET = "s" * 40
STRONG_ADMIN = "a" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PRIMETIME_* variables and no .env from the developer's machine."""
    for name in list(os.environ):
        if name.upper().startswith("PRIMETIME_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_in_development() -> None:
    s = Settings()
    assert s.environment == "development"
    assert s.models == ["sasrec", "itemknn", "popularity"]
    assert s.cors_origins == []
    assert s.rate_limit_per_minute == 600 and s.rate_limit_burst == 100
    assert s.token_ttl_seconds == 7 * 24 * 3600
    assert s.cache_url is None and s.cache_backend == "memory"
    assert "change-me" in s.secret_key.get_secret_value()
    assert not s.is_production


def test_default_database_under_primetime_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))
    assert Settings().database_url == f"sqlite:///{tmp_path / 'home' / 'service.db'}"


def test_secrets_are_hidden_in_repr() -> None:
    s = Settings(secret_key=STRONG_SECRET)
    assert STRONG_SECRET not in repr(s)


@pytest.mark.parametrize("environment", ["development", "test"])
def test_placeholders_accepted_outside_production(environment: str) -> None:
    assert Settings(environment=environment).environment == environment


def test_production_refuses_placeholder_secret_key() -> None:
    with pytest.raises(ValidationError, match="PRIMETIME_SECRET_KEY") as err:
        Settings(environment="production", admin_token=STRONG_ADMIN)
    assert "PRIMETIME_ADMIN_TOKEN" not in str(err.value)


def test_production_refuses_placeholder_admin_token() -> None:
    with pytest.raises(ValidationError, match="PRIMETIME_ADMIN_TOKEN"):
        Settings(environment="production", secret_key=STRONG_SECRET)


def test_production_refuses_short_secret() -> None:
    with pytest.raises(ValidationError, match="PRIMETIME_SECRET_KEY"):
        Settings(environment="production", secret_key="short-but-random", admin_token=STRONG_ADMIN)


def test_production_refuses_long_secret_containing_placeholder() -> None:
    with pytest.raises(ValidationError, match="PRIMETIME_SECRET_KEY"):
        Settings(
            environment="production", secret_key="x" * 40 + "-change-me", admin_token=STRONG_ADMIN
        )


def test_production_refuses_equal_secrets() -> None:
    with pytest.raises(ValidationError, match="must differ"):
        Settings(environment="production", secret_key=STRONG_SECRET, admin_token=STRONG_SECRET)


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMETIME_ENVIRONMENT", "production")
    monkeypatch.setenv("PRIMETIME_SECRET_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("PRIMETIME_ADMIN_TOKEN", secrets.token_urlsafe(32))
    s = get_settings()
    assert s.is_production


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMETIME_RATE_LIMIT_PER_MINUTE", "42")
    monkeypatch.setenv("PRIMETIME_MODELS", "itemknn, popularity")
    monkeypatch.setenv("PRIMETIME_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    monkeypatch.setenv("PRIMETIME_CACHE_URL", "redis://localhost:6379/0")
    monkeypatch.setenv("PRIMETIME_COOKIE_SECURE", "true")
    monkeypatch.setenv("PRIMETIME_REGISTRY_DIR", "/tmp/models")
    s = Settings()
    assert s.rate_limit_per_minute == 42
    assert s.models == ["itemknn", "popularity"]
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.cache_backend == "redis"
    assert s.cookie_secure is True
    assert s.model_registry_dir() == Path("/tmp/models")


def test_get_settings_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMETIME_WORKERS", "2")
    first = get_settings()
    monkeypatch.setenv("PRIMETIME_WORKERS", "3")
    assert (first.workers, get_settings().workers) == (2, 3)
    assert get_settings(workers=5).workers == 5


def test_dotenv_file(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "PRIMETIME_DATA=ml-1m\nPRIMETIME_MAX_BODY_BYTES=2048\nUNRELATED=1\n", encoding="utf-8"
    )
    s = Settings()
    assert (s.data, s.max_body_bytes) == ("ml-1m", 2048)
    assert Settings(_env_file=None).data == "ml-100k"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("environment", "staging"),
        ("rate_limit_per_minute", -1),
        ("rate_limit_burst", 0),
        ("max_body_bytes", 0),
        ("workers", 0),
        ("cache_url", "memcached://x"),
        ("models", []),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_empty_cache_url_means_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMETIME_CACHE_URL", "")
    assert Settings().cache_url is None
    assert Settings(cache_url="memory").cache_backend == "memory"


def test_prefer_orders_serving_and_retrains_only_what_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`prefer` serves ahead of `models`; the loop retrains a preferred model only when the
    registry holds it (nothing trains a `temporal` that was never trained)."""
    s = Settings(environment="test", models=["sasrec", "popularity"])
    assert s.served_models == ["ensemble", "temporal", "sasrec", "popularity"]
    assert s.retrained_models(["sasrec", "popularity"]) == ["sasrec", "popularity"]
    assert s.retrained_models(["temporal", "sasrec"]) == ["temporal", "sasrec", "popularity"]
    monkeypatch.setenv("PRIMETIME_PREFER", "")
    assert Settings(environment="test", models=["sasrec"]).served_models == ["sasrec"]
    monkeypatch.setenv("PRIMETIME_PREFER", "ensemble, sasrec")
    assert Settings(environment="test", models=["sasrec"]).served_models == ["ensemble", "sasrec"]
