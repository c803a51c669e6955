"""Request and response models: the contract's rules and its error wording live here."""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    model_validator,
)

# Ids are below 2^53 so that every JSON parser reads them exactly.
MAX_ID = 2**53 - 1
RESULTS_PER_PAGE = (10, 25, 50, 100, 250, 500, 1000)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
GOAL_ATTRIBUTES = ("website_id", "type", "name", "path", "key", "is_enabled")
REFERENCE_FIELDS = ("visitor_id", "session_id", "event_id")

IDEMPOTENCY_KEY_RULE = "Idempotency-Key must be 1 to 255 visible ASCII characters"
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
    "page": "page must be a whole number of 1 or more, in digits",
    "Idempotency-Key": IDEMPOTENCY_KEY_RULE,
    "results_per_page": "results_per_page must be one of " + ", ".join(map(str, RESULTS_PER_PAGE)),
}


def goal_attribute_rule(name: str) -> str:
    return f"{name} is an attribute of the goal, not of the conversion: change it on the goal"


def rule_for(location: str, name: str, error_type: str, value: Any = None) -> str:
    """The title of a 400 for parameter `name` found in `location` ('query', 'body', 'path')."""
    if location == "body" and name in GOAL_ATTRIBUTES:
        return goal_attribute_rule(name)
    if error_type == "missing":
        return f"{name} is required"
    if location == "query" and isinstance(value, list):
        return f"{name} was sent more than once"
    return PARAMETER_RULES.get(name, f"{name} is not valid")


# -- integers: one rule for every integer the API reads ---------------------------------------
# In text (path, query, form and multipart fields) an integer is its ASCII digits and nothing
# else; in JSON it is an integer number (not a boolean, a float or a string). Python's int()
# and pydantic's lax mode would also take "1_0", "+1", " 1", "1.0", true and other scripts'
# digits, and act on a record the client did not name.
_ASCII_DIGITS = re.compile(r"[0-9]+")
_LONGEST_ID_DIGITS = len(str(MAX_ID))
# The JSON member that says where a normalised body came from (see conversions_core.bodies).
BODY_SOURCE = "\x00source"
TEXT_SOURCE = "text"


def digits_to_int(text: str) -> int:
    """The value of a string of ASCII digits, however long (int() refuses over 4,300 digits)."""
    value = 0
    for start in range(0, len(text), 4000):
        chunk = text[start : start + 4000]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def int_to_digits(value: int) -> str:
    """The digits of a non-negative integer, however large (str() refuses over 4,300 digits)."""
    if value < 10**4000:
        return int.__repr__(value)
    high, low = divmod(value, 10**4000)
    return int_to_digits(high) + int.__repr__(low).zfill(4000)


class LongInt(int):
    """An int that prints however many digits it has (a page number is any number a client sends)."""

    def __repr__(self) -> str:
        return int_to_digits(self)

    __str__ = __repr__


def _id_from_text(value: Any) -> Any:
    """ASCII digits become the integer they spell; anything else is left for the strict integer
    check to refuse. Digits beyond any id's length are read as a number above every id."""
    if isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        digits = value.lstrip("0") or "0"
        return int(digits) if len(digits) <= _LONGEST_ID_DIGITS else MAX_ID + 1
    return value


def _page_from_text(value: Any) -> Any:
    if isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        return digits_to_int(value)
    return value


def _is_integer_field(annotation: Any) -> bool:
    if annotation is int:
        return True
    return any(_is_integer_field(arg) for arg in typing.get_args(annotation) if arg is not type(None))


class RequestBody(BaseModel):
    """A request body. Bodies arrive as one JSON object whatever the client sent, marked with
    their source: form and multipart fields are text, so their integers are read as digits here
    and an empty field means null; a JSON body's values are taken as they are."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _read_text_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = {name: value for name, value in data.items() if name != BODY_SOURCE}
        if data.get(BODY_SOURCE) != TEXT_SOURCE:
            return fields
        for name, field in cls.model_fields.items():
            value = fields.get(name)
            if isinstance(value, str) and _is_integer_field(field.annotation):
                fields[name] = None if value == "" else _id_from_text(value)
        return fields


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


def _refuse_goal_attribute(value: Any) -> Any:
    raise ValueError("goal attribute")


_ID_SCHEMA = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_ID,
    "description": "ASCII digits only in a path, query or form field; an integer number (not a string) in JSON",
}
PositiveId = Annotated[int, Strict(), Field(gt=0, le=MAX_ID), WithJsonSchema(_ID_SCHEMA)]
# Query parameters are text: digits only.
QueryId = Annotated[PositiveId, BeforeValidator(_id_from_text)]
ResultsPerPage = Annotated[
    int, AfterValidator(_one_of_results_per_page), Field(json_schema_extra={"enum": list(RESULTS_PER_PAGE)})
]
# Any page number is valid: one past the last is an empty page, however large (see list_response).
PageNumber = Annotated[
    int,
    BeforeValidator(_page_from_text),
    Strict(),
    Field(ge=1),
    AfterValidator(LongInt),
    WithJsonSchema({"type": "integer", "minimum": 1}),
]
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
ClearableId = PositiveId | None
ConversionIdPath = Annotated[PositiveId, BeforeValidator(_id_from_text), Path(description="The conversion's id")]
# Documented as accepting no value at all, since any value is refused with a 400.
GoalAttribute = Annotated[
    Any,
    AfterValidator(_refuse_goal_attribute),
    WithJsonSchema({"not": {}, "description": "Not accepted: change it on the goal"}),
]


class ConversionCreate(RequestBody):
    """Body of POST /api/goals-conversions (multipart, urlencoded or JSON)."""

    goal_id: PositiveId
    visitor_id: ClearableId = None
    session_id: ClearableId = None
    event_id: ClearableId = None


class ConversionUpdate(RequestBody):
    """Body of POST /api/goals-conversions/{conversion_id}: only the fields sent are changed."""

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
