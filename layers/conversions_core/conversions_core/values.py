"""The value rules every endpoint shares: integers, datetimes, bodies, page numbers and lists.

One rule for every integer the API reads: in text (path, query, form and multipart fields) an
integer is its ASCII digits and nothing else; in JSON it is an integer number (not a boolean,
a float or a string). Python's int() and pydantic's lax mode would also take "1_0", "+1", " 1",
"1.0", true and other scripts' digits, and act on a record the client did not name.
"""

from __future__ import annotations

import re
import typing
from datetime import UTC, datetime
from typing import Annotated, Any

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
from pydantic_core import PydanticCustomError

__all__ = [
    "BODY_SOURCE",
    "DATETIME_FORMAT",
    "JSON_NUMBER",
    "MAX_ID",
    "RESULTS_PER_PAGE",
    "TEXT_SOURCE",
    "ListBody",
    "ListLinks",
    "ListMeta",
    "PageNumber",
    "PositiveId",
    "QueryDatetime",
    "QueryId",
    "RequestBody",
    "ResultsPerPage",
    "contract_error",
    "format_datetime",
    "int_to_digits",
    "parse_datetime",
    "text_id",
]

# Ids are below 2^53 so that every JSON parser reads them exactly.
MAX_ID = 2**53 - 1
RESULTS_PER_PAGE = (10, 25, 50, 100, 250, 500, 1000)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The JSON member that says where a normalised body came from (see conversions_core.bodies).
BODY_SOURCE = "\x00source"
TEXT_SOURCE = "text"
# How a normalised JSON body carries a number with a point or an exponent: as the text written.
JSON_NUMBER = "\x00number"
_ASCII_DIGITS = re.compile(r"[0-9]+")
_LONGEST_ID_DIGITS = len(str(MAX_ID))
_DIGITS_PER_CHUNK = 4000  # int() and str() refuse numbers of over 4,300 digits
_DATETIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}:[0-9]{2}:[0-9]{2}|T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?)"
)


def contract_error(title: str) -> PydanticCustomError:
    """A validation error whose message is the contract's title for it (see conversions_core.http)."""
    return PydanticCustomError("contract", title)


# -- integers ------------------------------------------------------------------------------------


def digits_to_int(text: str) -> int:
    """The value of a string of ASCII digits, however long."""
    value = 0
    for start in range(0, len(text), _DIGITS_PER_CHUNK):
        chunk = text[start : start + _DIGITS_PER_CHUNK]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def int_to_digits(value: int) -> str:
    """The digits of a non-negative integer, however large."""
    if value < 10**_DIGITS_PER_CHUNK:
        return int.__repr__(value)
    high, low = divmod(value, 10**_DIGITS_PER_CHUNK)
    return int_to_digits(high) + int.__repr__(low).zfill(_DIGITS_PER_CHUNK)


class LongInt(int):
    """An int that prints however many digits it has (a page number is any number a client sends)."""

    def __repr__(self) -> str:
        return int_to_digits(self)

    __str__ = __repr__


def text_id(value: Any) -> Any:
    """ASCII digits become the integer they spell; anything else is left for the strict integer
    check to refuse. Digits beyond any id's length are read as a number above every id."""
    if isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        digits = value.lstrip("0") or "0"
        return int(digits) if len(digits) <= _LONGEST_ID_DIGITS else MAX_ID + 1
    return value


def _text_page(value: Any) -> Any:
    if isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        return digits_to_int(value)
    return value


def _one_of_results_per_page(value: int) -> int:
    if value not in RESULTS_PER_PAGE:
        raise contract_error("results_per_page must be one of " + ", ".join(map(str, RESULTS_PER_PAGE)))
    return value


def _is_a(kind: type, annotation: Any) -> bool:
    """Whether a field's annotation is `kind`, or `kind | None`, however annotated."""
    if annotation is kind:
        return True
    return any(_is_a(kind, arg) for arg in typing.get_args(annotation) if arg is not type(None))


_TEXT_BOOLEANS = {"1": True, "true": True, "0": False, "false": False}


def text_bool(value: Any) -> Any:
    """1/true and 0/false in any letter case, as forms send a boolean (Python's str(True) is
    "True"); anything else is left to be refused."""
    if isinstance(value, str) and value.isascii():
        return _TEXT_BOOLEANS.get(value.lower(), value)
    return value


_ID_SCHEMA = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_ID,
    "description": "ASCII digits only in a path, query or form field; an integer number (not a string) in JSON",
}
PositiveId = Annotated[int, Strict(), Field(gt=0, le=MAX_ID), WithJsonSchema(_ID_SCHEMA)]
QueryId = Annotated[PositiveId, BeforeValidator(text_id)]
ResultsPerPage = Annotated[
    int,
    Strict(),
    AfterValidator(_one_of_results_per_page),
    BeforeValidator(text_id),
    WithJsonSchema({"type": "integer", "enum": list(RESULTS_PER_PAGE)}),
]
# Any page number is valid: one past the last is an empty page, however large.
PageNumber = Annotated[
    int,
    Strict(),
    Field(ge=1),
    AfterValidator(LongInt),
    BeforeValidator(_text_page),
    WithJsonSchema({"type": "integer", "minimum": 1}),
]


# -- datetimes ------------------------------------------------------------------------------------


def parse_datetime(value: Any) -> datetime:
    """A query datetime: 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DDTHH:MM[:SS]', UTC."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATETIME_TEXT.fullmatch(value):
        raise ValueError("not a datetime")
    # The pattern allows only these layouts, which fromisoformat reads (and refuses Feb 30).
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime(DATETIME_FORMAT)


# The documented pattern is a subset of what parses (real calendar days, leap days left out), so
# that every datetime the OpenAPI document allows is accepted; the validator has the final word.
_DOCUMENTED_DATETIME = (
    r"^[1-9]\d{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))(?: (?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d|T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?)$"
)
QueryDatetime = Annotated[
    datetime,
    BeforeValidator(parse_datetime),
    WithJsonSchema({"type": "string", "pattern": _DOCUMENTED_DATETIME}),
]


# -- bodies ---------------------------------------------------------------------------------------


class RequestBody(BaseModel):
    """A request body. Bodies arrive as one JSON object whatever the client sent, marked with
    their source: form and multipart fields are text, so their integers are read as digits and
    their booleans as 1/0 or true/false (in any letter case) here, and an empty field means null;
    a JSON body's values are taken as they are."""

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
            if not isinstance(value, str):
                continue
            if value == "":
                fields[name] = None
            elif _is_a(int, field.annotation):
                fields[name] = text_id(value)
            elif _is_a(bool, field.annotation):
                fields[name] = text_bool(value)
        return fields


# -- lists ----------------------------------------------------------------------------------------


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


class ListBody(BaseModel):
    """A page of a list: subclasses say what `data` holds."""

    data: list[Any]
    meta: ListMeta
    links: ListLinks

    @classmethod
    def render(cls, data: list[Any], meta: dict[str, int], links: dict[str, str | None]) -> str:
        """The JSON of a page (pydantic writes integers of any length, page numbers included)."""
        return cls(data=data, meta=ListMeta(**meta), links=ListLinks(**links)).model_dump_json()
