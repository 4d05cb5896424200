"""Settings of the HTTP service, read from `PRIMETIME_*` environment variables and `.env`.

`create_app(settings)` receives one `Settings` and keeps it in `app.state.settings`; nothing
here is built at import time, so tests construct `Settings(...)` directly with the values they
need (pass `_env_file=None` to ignore a developer's `.env`).

Every field `x` is read from `PRIMETIME_X` (case-insensitive). List fields take either JSON
(`PRIMETIME_MODELS='["sasrec", "popularity"]'`) or a comma-separated string
(`PRIMETIME_MODELS=sasrec,popularity`).

Outside `development` and `test` the service refuses to start with placeholder secrets: see
`Settings.refuse_placeholder_secrets`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from primetime import paths

ENV_PREFIX = "PRIMETIME_"
PLACEHOLDER_MARKER = "change-me"
"""A secret containing this text is a placeholder (the shipped defaults contain it)."""
MIN_SECRET_LENGTH = 32
"""Shortest `secret_key` / `admin_token` accepted in production (`secrets.token_urlsafe(32)`
gives 43 characters)."""
DEV_ENVIRONMENTS = frozenset({"development", "test"})
"""Environments where placeholder secrets are tolerated."""

Environment = Literal["development", "test", "production"]


def default_database_url() -> str:
    """SQLite file `service.db` under `primetime.paths.home()` (honours `PRIMETIME_HOME`)."""
    return f"sqlite:///{paths.home() / 'service.db'}"


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list fields read from the env."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


def is_placeholder_secret(value: str) -> bool:
    """True when `value` must not guard a production service: it contains
    `PLACEHOLDER_MARKER` or is shorter than `MIN_SECRET_LENGTH` characters."""
    return PLACEHOLDER_MARKER in value.lower() or len(value) < MIN_SECRET_LENGTH


class Settings(BaseSettings):
    """Configuration of one service process. Field `x` comes from `PRIMETIME_X`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    environment: Environment = Field(
        default="development",
        description="development | test | production. Outside development and test, "
        "placeholder secrets are refused at start-up.",
    )
    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL of the event store: sqlite:///path or "
        "postgresql+psycopg://user:pass@host/db. Default: sqlite file "
        "<PRIMETIME_HOME>/service.db.",
    )
    db_statement_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="PostgreSQL: longest a single query may run before the server cancels "
        "it and the request gets 503 with Retry-After (a slow or locked database must not "
        "hold requests for ever). SQLite waits at most its busy timeout (10 s) for a lock.",
    )
    cache_url: str | None = Field(
        default=None,
        description="Response cache: unset or 'memory' = in-process LRU (one per worker); "
        "redis://host:port/db = Redis shared by all workers.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr("dev-secret-change-me"),
        description="Signs session tokens. Production: a random string of at least "
        f"{MIN_SECRET_LENGTH} characters. Changing it signs everybody out.",
    )
    admin_token: SecretStr = Field(
        default=SecretStr("dev-admin-change-me"),
        description="Value of the X-Admin-Token header that opens the admin routes. "
        f"Production: a random string of at least {MIN_SECRET_LENGTH} characters.",
    )
    registry_dir: Path | None = Field(
        default=None,
        description="Folder of trained model bundles (<dir>/<name>/). Unset = "
        "primetime.paths.models_dir().",
    )
    data: str = Field(
        default="ml-100k",
        description="Dataset the catalog (titles) comes from, as named by the data CLI.",
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["sasrec", "itemknn", "popularity"],
        description="Model names in preference order: the first one found in the registry "
        "serves by default.",
    )
    prefer: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["ensemble", "temporal"],
        description="Models that serve ahead of `models`, in this order, when the registry "
        "holds a version of them; unlike `models`, `primetime serve` and the retrain loop "
        "never train them themselves (the fusion fits `temporal` twice: 5-40 minutes on 2 "
        "CPU cores; `primetime train --suite full`). The default order is the measured "
        "one: see the README's served-pipeline table. Empty: `models` only.",
    )
    model_blend: bool = Field(
        default=True,
        description="Serve each model version with the blend chosen for it on valid when it "
        "was trained (`served_blend` in the registry's meta.json: blend weights and MMR "
        "strength, the best valid NDCG@10 at or above the bare model's diversity); a "
        "version without one, or false here, gets the default blend.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed by CORS (e.g. https://app.example.com); empty = CORS off.",
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses (IPs or CIDR networks) of the reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto headers `primetime serve` trusts for the "
        "client address (which the per-IP rate limit keys on); empty = trust none, "
        "'*' = trust everybody (only when nothing else can reach the port).",
    )
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="Sustained requests per minute per client (user, else IP); 0 = no limit.",
    )
    rate_limit_burst: int = Field(
        default=100,
        ge=1,
        description="Requests a client may send at once before the per-minute rate applies.",
    )
    max_body_bytes: int = Field(
        default=1_000_000,
        ge=1,
        description="Largest request body accepted, in bytes; larger ones get 413.",
    )
    token_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="Lifetime of a session token in seconds (default 7 days).",
    )
    impressions: Literal["experiments", "all"] = Field(
        default="experiments",
        description=(
            "Which recommendation responses log their titles as impressions: those of users "
            "in an active A/B experiment (what the experiment reports read), or every "
            "response (exposure logs for offline analysis: ten rows per response, written "
            "in batches off the request path, at a measured cost in tail latency)."
        ),
    )
    promotion_poll_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How often each worker looks for a promotion (the promotions history and "
        "the registry's PROMOTED files) and swaps the new version in; 0 = never (reload by "
        "POST /api/v1/admin/reload).",
    )
    cache_ttl_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a cached recommendation list is served, in seconds.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Server worker processes (`primetime serve`). Above 1, use Redis for the "
        "cache so workers share it.",
    )
    login_throttle: bool = Field(
        default=True,
        description="Back off sign-ins after failures, per account and per client address "
        "(see login_throttle_*). Off only for load tests.",
    )
    login_throttle_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins of one account before its sign-ins are backed off.",
    )
    login_throttle_address_failures: int = Field(
        default=20,
        ge=1,
        description="Failed sign-ins from one client address (any accounts) before its "
        "sign-ins are backed off.",
    )
    login_throttle_base_seconds: float = Field(
        default=1.0,
        gt=0,
        description="First back-off, in seconds; it doubles with each further failure.",
    )
    login_throttle_max_seconds: float = Field(
        default=900.0,
        gt=0,
        description="Longest back-off, in seconds (default 15 minutes).",
    )
    event_max_future_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How far ahead of the server clock an event's `ts` may be, in seconds "
        "(client clocks drift); later ones are refused with 422.",
    )
    group_commit: bool = Field(
        default=True,
        description="Write the events of concurrent requests of a worker in one transaction "
        "(each still answered only once it has committed); off: one transaction per request.",
    )
    group_commit_window_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="How long an idle group commit waits after a request for others to join "
        "its transaction, in milliseconds (while one is being written, the next gathers anyway).",
    )
    group_commit_max_events: int = Field(
        default=500,
        ge=1,
        description="Most events in one group-commit transaction.",
    )
    events_fast_lane: bool = Field(
        default=True,
        description="Serve single well-formed event POSTs (with group commit) by a lean ASGI "
        "layer instead of FastAPI's routing; the answers are the route's "
        "(primetime.service.fastlane). Off: every request takes the route.",
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the session cookie Secure (sent over HTTPS only). Turn on behind HTTPS.",
    )
    redis_prefix: str = Field(
        default="primetime:",
        min_length=1,
        description="Namespace of every Redis key the service and its jobs write (cache "
        "entries, the impression queue).",
    )
    broker_url: str | None = Field(
        default=None,
        description="Broker of the job system (`primetime worker`): redis://host:port/db or "
        "amqp://user:pass@host:5672//. Unset (the embedded default) = no job system: run "
        "`primetime retrain` from cron; impressions are written by an in-process buffer.",
    )
    result_backend: str | None = Field(
        default=None,
        description="Where job results are kept (e.g. redis://…); unset = not kept.",
    )
    job_queue: str = Field(
        default="primetime",
        min_length=1,
        description="The broker queue the job system's tasks go to and its workers read.",
    )
    retrain_at: str = Field(
        default="03:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Time of day (HH:MM, UTC) of the nightly retrain job.",
    )
    retrain_margin: float = Field(
        default=0.0,
        ge=0,
        description="The retrain job's gate margin (as `primetime retrain --margin`).",
    )
    export_dir: Path | None = Field(
        default=None,
        description="Export folder of the retrain job (`primetime data export --out`). "
        "Unset = <PRIMETIME_HOME>/export.",
    )
    carousel_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often the job system precomputes the home rows of active users.",
    )
    active_user_hours: float = Field(
        default=24.0,
        gt=0,
        description="Users with an event in the last this many hours are active (their "
        "home rows are precomputed).",
    )
    impression_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the job system writes the queued impressions to the database.",
    )

    @field_validator("models", "prefer", "cors_origins", "forwarded_allow_ips", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("models")
    @classmethod
    def _models_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("models must name at least one model, e.g. 'popularity'")
        return value

    @field_validator("cache_url")
    @classmethod
    def _check_cache_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value in ("memory", "memory://") or value.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            return value
        raise ValueError(f"cache_url must be unset, 'memory' or a redis:// URL, got {value!r}")

    @model_validator(mode="after")
    def refuse_placeholder_secrets(self) -> Settings:
        """Outside development/test, `secret_key` and `admin_token` must be real secrets:
        not containing "change-me", at least `MIN_SECRET_LENGTH` characters, and not equal to
        each other (leaking the admin token must not let anyone forge sessions)."""
        if self.environment in DEV_ENVIRONMENTS:
            return self
        problems = []
        for name in ("secret_key", "admin_token"):
            secret: SecretStr = getattr(self, name)
            if is_placeholder_secret(secret.get_secret_value()):
                var = f"{ENV_PREFIX}{name.upper()}"
                problems.append(
                    f"{var} is a placeholder or shorter than {MIN_SECRET_LENGTH} characters; "
                    f"set {var} to a random value, e.g. "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
        if (
            not problems
            and self.secret_key.get_secret_value() == self.admin_token.get_secret_value()
        ):
            problems.append(f"{ENV_PREFIX}SECRET_KEY and {ENV_PREFIX}ADMIN_TOKEN must differ")
        if problems:
            raise ValueError(
                f"refusing to start with environment={self.environment!r}: " + "; ".join(problems)
            )
        return self

    @field_validator("broker_url", "result_backend")
    @classmethod
    def _check_broker_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value.startswith(("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")):
            return value
        raise ValueError(f"expected a redis:// or amqp:// URL, got {value!r}")

    @property
    def impression_queue_url(self) -> str | None:
        """The Redis holding the impression queue: with a job system (``broker_url``), the
        broker when it is Redis, else a Redis cache; None = the in-process buffer (no job
        system, or one on RabbitMQ without a Redis cache)."""
        if self.broker_url is None:
            return None
        for url in (self.broker_url, self.cache_url):
            if url is not None and url.startswith(("redis://", "rediss://")):
                return url
        return None

    def export_folder(self) -> Path:
        """`export_dir`, or `<PRIMETIME_HOME>/export` when unset."""
        return self.export_dir if self.export_dir is not None else paths.home() / "export"

    @property
    def is_production(self) -> bool:
        """True outside development and test."""
        return self.environment not in DEV_ENVIRONMENTS

    @property
    def cache_backend(self) -> Literal["memory", "redis"]:
        """Which cache `cache_url` selects."""
        return "memory" if self.cache_url in (None, "memory", "memory://") else "redis"

    def uvicorn_proxy_options(self) -> dict[str, Any]:
        """uvicorn's proxy-header options for `forwarded_allow_ips`: none trusted when it is
        empty (uvicorn's own default trusts 127.0.0.1, so that anybody on the machine, or
        behind a local proxy that does not overwrite the header, could pick the address
        the rate limit sees by sending X-Forwarded-For)."""
        if not self.forwarded_allow_ips:
            return {"proxy_headers": False, "forwarded_allow_ips": ""}
        return {"proxy_headers": True, "forwarded_allow_ips": ",".join(self.forwarded_allow_ips)}

    @property
    def served_models(self) -> list[str]:
        """`prefer`, then `models`: the order in which the first one found serves."""
        return list(dict.fromkeys([*self.prefer, *self.models]))

    def retrained_models(self, registered: Iterable[str]) -> list[str]:
        """What the learning loop retrains by default: the `prefer` models the registry
        holds (``registered``: its names; one of them is what users are served), then
        `models`. A preferred model that was never trained is not trained by the loop,
        as `serve` does not train it either."""
        held = set(registered)
        return list(dict.fromkeys([*(n for n in self.prefer if n in held), *self.models]))

    def model_registry_dir(self) -> Path:
        """`registry_dir`, or `primetime.paths.models_dir()` when unset."""
        return self.registry_dir if self.registry_dir is not None else paths.models_dir()


def get_settings(**overrides: Any) -> Settings:
    """A fresh `Settings` from the environment and `.env`, with `overrides` on top.

    Not cached: each call reads the environment again, so tests and `create_app` callers get
    exactly what they ask for.
    """
    return Settings(**overrides)
