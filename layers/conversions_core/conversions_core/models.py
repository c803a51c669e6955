"""Request and response models: the contract's rules and its error wording live here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

MAX_ID = 2**63 - 1
RESULTS_PER_PAGE = (10, 25, 50, 100, 250, 500, 1000)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
GOAL_ATTRIBUTES = ("website_id", "type", "name", "path", "key", "is_enabled")
REFERENCE_FIELDS = ("visitor_id", "session_id", "event_id")

_DATETIME_RULE = "a UTC datetime as YYYY-MM-DD HH:MM:SS or YYYY-MM-DDTHH:MM[:SS]"
PARAMETER_RULES = {
    "conversion_id": "conversion_id must be a positive integer",
    "goal_id": "goal_id must be a positive integer",
    "website_id": "website_id must be a positive integer",
    "visitor_id": "visitor_id must be a positive integer, or empty to clear it",
    "session_id": "session_id must be a positive integer, or empty to clear it",
    "event_id": "event_id must be a positive integer, or empty to clear it",
    "datetime_field": "datetime_field must be datetime",
    "datetime_start": f"datetime_start must be {_DATETIME_RULE}",
    "datetime_end": f"datetime_end must be {_DATETIME_RULE}",
    "order_by": "order_by must be one of conversion_id, datetime",
    "order_type": "order_type must be ASC or DESC",
    "page": "page must be an integer of 1 or more",
    "results_per_page": "results_per_page must be one of " + ", ".join(map(str, RESULTS_PER_PAGE)),
}


def goal_attribute_rule(name: str) -> str:
    return f"{name} is an attribute of the goal, not of the conversion: change it on the goal"


def rule_for(location: str, name: str, error_type: str) -> str:
    """The title of a 400 for parameter `name` found in `location` ('query', 'body', 'path')."""
    if location == "body" and name in GOAL_ATTRIBUTES:
        return goal_attribute_rule(name)
    if error_type == "missing":
        return f"{name} is required"
    return PARAMETER_RULES.get(name, f"{name} is not valid")


def _one_of_results_per_page(value: int) -> int:
    if value not in RESULTS_PER_PAGE:
        raise ValueError("not an allowed page size")
    return value


def parse_datetime(value: str) -> datetime:
    """Parse a query datetime: 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DDTHH:MM[:SS]', UTC."""
    for layout in (DATETIME_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"):
        try:
            return datetime.strptime(value, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError("not a datetime")


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


def _refuse_goal_attribute(value: Any) -> Any:
    raise ValueError("goal attribute")


PositiveId = Annotated[int, Field(gt=0, le=MAX_ID)]
ResultsPerPage = Annotated[
    int, AfterValidator(_one_of_results_per_page), Field(json_schema_extra={"enum": list(RESULTS_PER_PAGE)})
]
PageNumber = Annotated[int, Field(ge=1, le=10**9)]
# The documented pattern is a subset of what parses (real calendar days, leap days left out), so
# that every datetime the OpenAPI document allows is accepted; the validator has the final word.
_DOCUMENTED_DATETIME = (
    r"^[1-9]\d{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))(?: (?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d|T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?)$"
)
QueryDatetime = Annotated[
    str,
    Field(pattern=r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?$", json_schema_extra={"pattern": _DOCUMENTED_DATETIME}),
    AfterValidator(parse_datetime),
]
OrderBy = Literal["conversion_id", "datetime"]
OrderType = Literal["ASC", "DESC"]
DatetimeField = Literal["datetime"]
ClearableId = Annotated[PositiveId | None, BeforeValidator(_blank_to_none)]
ConversionIdPath = Annotated[int, Path(gt=0, le=MAX_ID, description="The conversion's id")]
# Documented as accepting no value at all, since any value is refused with a 400.
GoalAttribute = Annotated[
    Any,
    AfterValidator(_refuse_goal_attribute),
    WithJsonSchema({"not": {}, "description": "Not accepted: change it on the goal"}),
]


class ConversionCreate(BaseModel):
    """Body of POST /api/goals-conversions (multipart, urlencoded or JSON)."""

    model_config = ConfigDict(extra="ignore")

    goal_id: PositiveId
    visitor_id: ClearableId = None
    session_id: ClearableId = None
    event_id: ClearableId = None


class ConversionUpdate(BaseModel):
    """Body of POST /api/goals-conversions/{conversion_id}: only the fields sent are changed."""

    model_config = ConfigDict(extra="ignore")

    # None reaches the repository, which says why a goal cannot be cleared; documented as not nullable.
    goal_id: Annotated[
        PositiveId | None, WithJsonSchema({"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_ID})
    ] = None
    visitor_id: ClearableId = None
    session_id: ClearableId = None
    event_id: ClearableId = None
    website_id: GoalAttribute = None
    type: GoalAttribute = None
    name: GoalAttribute = None
    path: GoalAttribute = None
    key: GoalAttribute = None
    is_enabled: GoalAttribute = None

    def changes(self) -> dict[str, int | None]:
        """The conversion fields the client sent, with None meaning 'clear'."""
        fields = ("goal_id", *REFERENCE_FIELDS)
        return {name: getattr(self, name) for name in fields if name in self.model_fields_set}


class Conversion(BaseModel):
    """A conversion as the API returns it."""

    id: int
    goal_id: int
    website_id: int
    user_id: int
    visitor_id: int | None = None
    session_id: int | None = None
    event_id: int | None = None
    datetime: str


class ConversionBody(BaseModel):
    """Response of get, create and update (documentation of what `http.ok` sends)."""

    data: Conversion


class ListMeta(BaseModel):
    page: int
    results_per_page: int
    total: int
    total_pages: int


class ListLinks(BaseModel):
    first: str
    last: str | None
    next: str | None
    prev: str | None
    self: str


class ConversionListBody(BaseModel):
    """Response of the list endpoint (documentation of what `http.list_response` sends)."""

    data: list[Conversion]
    meta: ListMeta
    links: ListLinks


@dataclass(frozen=True)
class ListRequest:
    """The validated query of GET /api/goals-conversions."""

    goal_id: int | None = None
    website_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    ascending: bool = False
    page: int = 1
    results_per_page: int = 25


@dataclass(frozen=True)
class Page:
    conversions: list[Conversion]
    total: int


@dataclass(frozen=True)
class User:
    user_id: int
    status: str
    rate_limit_per_minute: int | None
    api_key_hash: str


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime(DATETIME_FORMAT)
