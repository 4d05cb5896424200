"""Request and response bodies of the HTTP API (pydantic), with OpenAPI examples."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from primetime.data.events import EventType as _EventType
from primetime.service.auth import Password, Username
from primetime.service.db import REQUEST_ID_MAX

#: The values of :class:`primetime.data.events.EventType`, spelled out as a Literal so
#: that the OpenAPI schema lists them inline and in this order (checked below).
EventType = Literal[
    "view",
    "click",
    "play",
    "complete",
    "rate",
    "like",
    "dislike",
    "add-to-list",
    "remove-from-list",
]
if set(get_args(EventType)) != set(_EventType):
    raise RuntimeError("schemas.EventType must list exactly the values of data.events.EventType")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Demographics(_Strict):
    age: int | None = Field(None, ge=1, le=120, description="Age in years.")
    gender: str | None = Field(None, min_length=1, max_length=32, pattern=r"\S")
    occupation: str | None = Field(None, min_length=1, max_length=64, pattern=r"\S")


class SignUp(_Strict):
    """A new account; genres and titles picked during onboarding are optional here."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "username": "ada",
                    "password": "correct horse battery",
                    "genres": ["Sci-Fi", "Drama"],
                }
            ]
        },
    )
    username: Username
    password: Password
    genres: list[str] = Field(default_factory=list, max_length=20)
    titles: list[str] = Field(default_factory=list, max_length=50, description="item ids")
    demographics: Demographics | None = None


class Login(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"username": "ada", "password": "correct horse battery"}]},
    )
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)


class Session(BaseModel):
    user_id: int
    username: str
    is_admin: bool
    token: str = Field(description="Send as 'Authorization: Bearer <token>'.")


class Me(BaseModel):
    user_id: int
    username: str
    is_admin: bool
    onboarding_genres: list[str]
    onboarding_titles: list[str]
    events: int


class Onboarding(_Strict):
    """Genres and titles a new user picks; the home page reflects them at once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"genres": ["Comedy"], "titles": ["1", "50"]}]},
    )
    genres: list[str] = Field(default_factory=list, max_length=20)
    titles: list[str] = Field(default_factory=list, max_length=50)


class EventIn(_Strict):
    """One thing a user did with a title."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"item_id": "50", "event_type": "like", "device": "tv", "position": 2},
                {"item_id": "181", "event_type": "rate", "rating": 5},
            ]
        },
    )
    item_id: str = Field(min_length=1, max_length=128, description="Catalog title id.")
    event_type: EventType
    rating: float | None = Field(None, ge=1, le=5, description="1-5; required for 'rate'.")
    ts: float | None = Field(
        None, ge=0, le=4102444800, description="When it happened, unix seconds (default: now)."
    )
    device: str | None = Field(None, max_length=64)
    position: int | None = Field(None, ge=0, le=10_000, description="0-based rank on screen.")
    context: dict[str, str | int | float | bool] | None = Field(None, max_length=20)
    request_id: str | None = Field(
        None,
        max_length=REQUEST_ID_MAX,
        description="The recommendation response the title came from.",
    )
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Your key for this event (e.g. a UUID), unique per user: sending it again "
        "(a retry) stores nothing and answers with the first one's id.",
    )


class EventBatch(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"events": [{"item_id": "50", "event_type": "play"}]}],
        },
    )
    events: list[EventIn] = Field(min_length=1, max_length=500)


class EventsAccepted(BaseModel):
    accepted: int
    ids: list[int] = Field(description="In the order sent; a retried event has its first id.")


class ChangePassword(_Strict):
    """A new password; every session of the account ends, and a new one starts here."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "current_password": "correct horse battery",
                    "new_password": "staple gun orbit lantern",
                }
            ]
        },
    )
    current_password: str = Field(min_length=1, max_length=128)
    new_password: Password


class ReasonOut(BaseModel):
    code: str
    text: str
    source_item_id: str | None = None


class TitleOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    item_id: str
    title: str
    kind: str
    year: int | None = None
    genres: list[str]


class ItemOut(TitleOut):
    score: float
    reason: ReasonOut


class Recommendations(BaseModel):
    user_id: int
    request_id: str
    model_version: str
    experiment_id: str | None = None
    arm: str | None = None
    cold_start: bool
    items: list[ItemOut]


class CarouselOut(BaseModel):
    key: str
    title: str
    items: list[ItemOut]


class Carousels(BaseModel):
    user_id: int
    request_id: str
    model_version: str
    rows: list[CarouselOut]


class Similar(BaseModel):
    item_id: str
    items: list[ItemOut]


class SearchResults(BaseModel):
    query: str
    items: list[TitleOut]


class Insights(BaseModel):
    model_config = ConfigDict(extra="allow")
    user_id: int
    events: int
    counts: dict[str, int]
    genre_weights: dict[str, float]
    timeline: list[dict[str, Any]]
    diversity: float


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: bool
    cache: str
    model_version: str
    titles: int


class ModelVersionOut(BaseModel):
    name: str
    version: str
    promoted: bool
    created_at: str = Field(description="ISO 8601, UTC.")
    metrics: dict[str, Any]
    loaded: bool
    blend: dict[str, Any] = Field(
        description="Blend weights and MMR strength this version is served with."
    )
    blend_source: Literal["valid", "default"] = Field(
        description="`valid`: chosen for this version on valid when it was trained "
        "(`served_blend` in the registry); `default`: the service's default blend."
    )


class Promote(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"version": "v2", "note": "better NDCG@10 offline"}]},
    )
    version: str = Field(min_length=1, max_length=32)
    note: str | None = Field(
        default=None, max_length=500, description="Kept with the promotion in the history."
    )


class PromotionOut(BaseModel):
    name: str
    version: str
    previous_version: str | None = Field(description="Promoted before; null when none was.")
    promoted_at: float = Field(description="Unix seconds.")
    actor: str | None = Field(description="Admin username, or 'admin token'; null if unknown.")
    note: str | None


class ArmIn(_Strict):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    model_version: str = Field(
        min_length=3, max_length=80, description="'<model>:<version>', e.g. 'sasrec:v2'."
    )
    weight: float = Field(1.0, gt=0, le=1000)


class ExperimentIn(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "sasrec-vs-itemknn",
                    "name": "SASRec against ItemKNN",
                    "arms": [
                        {"name": "control", "model_version": "itemknn:v1"},
                        {"name": "treatment", "model_version": "sasrec:v1"},
                    ],
                }
            ]
        },
    )
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=200)
    arms: list[ArmIn] = Field(min_length=2, max_length=10)


class ArmReport(BaseModel):
    arm: str
    model_version: str
    users: int
    impressions: int
    clicks: int
    completions: int
    ctr: float
    ctr_ci: tuple[float, float]
    completion_rate: float
    completion_ci: tuple[float, float]


class ExperimentReport(BaseModel):
    id: str
    name: str
    active: bool
    arms: list[ArmReport]
