"""Request bodies: multipart/form-data, urlencoded or JSON, turned into one JSON object.

API Gateway hands multipart bodies over base64-encoded; Powertools' validation then reads the
normalised JSON, so every route sees the same field names and values whatever the client sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from conversions_core.errors import PayloadTooLargeError, Problem, UnsupportedMediaTypeError, invalid
from conversions_core.values import BODY_SOURCE, JSON_NUMBER, MAX_ID, TEXT_SOURCE

MAX_BODY_BYTES = 1_048_576
MAX_JSON_DEPTH = 32
_LONGEST_JSON_INT = 4000  # characters; Python's int() takes at most 4,300 digits
SUPPORTED = ("multipart/form-data", "application/x-www-form-urlencoded", "application/json")


def parse_body(content_type: str | None, body: str | None, is_base64: bool) -> dict[str, Any]:
    """The body's fields as a dict marked with their source (text or JSON, see
    models.RequestBody); raises the contract's 400/413/415 for what it cannot read."""
    raw = _raw_bytes(body, is_base64)
    media_type, params = _media_type(content_type)
    if not raw.strip() and media_type in ("", *SUPPORTED):
        return {BODY_SOURCE: TEXT_SOURCE}
    if media_type not in SUPPORTED:
        raise UnsupportedMediaTypeError(Problem("Content-Type must be one of " + ", ".join(SUPPORTED)))
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(Problem("The body must be at most 1 MB"))
    if media_type == "application/json":
        return {**_json_object(_text(raw)), BODY_SOURCE: "json"}
    if media_type == "multipart/form-data":
        fields = _multipart(raw, params.get("boundary"))
    else:
        fields = _unique_fields(parse_qsl(_text(raw), keep_blank_values=True))
    return {**fields, BODY_SOURCE: TEXT_SOURCE}


def _raw_bytes(body: str | None, is_base64: bool) -> bytes:
    if not body:
        return b""
    if not is_base64:
        return body.encode("utf-8", "surrogateescape")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(None, "The body is not valid base64") from None


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    media_type, *rest = content_type.split(";")
    params = {}
    for part in rest:
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower(), params


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(None, "The body must be UTF-8 text") from None


class _DuplicateField(ValueError):
    def __init__(self, name: str):
        self.name = name


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            raise _DuplicateField(name)
        fields[name] = value
    return fields


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _nesting_depth(text: str) -> int:
    """How deeply the JSON text's arrays and objects nest (brackets inside strings not counted)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _json_object(text: str) -> dict[str, Any]:
    """A JSON object; a name sent twice is refused as in forms (json.loads would keep the last)."""
    if _nesting_depth(text) > MAX_JSON_DEPTH:
        raise invalid(None, f"The JSON body must not nest arrays and objects more than {MAX_JSON_DEPTH} levels deep")
    try:
        value = json.loads(text, object_pairs_hook=_refuse_duplicates, parse_int=_json_int, parse_float=JsonNumber)
    except _DuplicateField as duplicate:
        raise invalid(duplicate.name, f"{duplicate.name} was sent more than once") from None
    except ValueError:
        raise invalid(None, "The body is not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid(None, "The JSON body must be an object")
    return value


def _json_int(text: str) -> int:
    """A JSON integer. json.loads, like int(), refuses one of over 4,300 digits, which would make a
    well-formed body 'not valid JSON'; no field takes a number that long, so it is read as one
    just past every id, its sign kept, for the field's own rule to refuse by name."""
    if len(text) <= _LONGEST_JSON_INT:
        return int(text)
    return -(MAX_ID + 1) if text.startswith("-") else MAX_ID + 1


class JsonNumber:
    """A JSON number with a point or an exponent, as written: never read through a binary float.
    Only a value takes one (conversions_core.money); every other field refuses it."""

    def __init__(self, text: str):
        self.text = text


def normalised_json(fields: dict[str, Any]) -> str:
    """The JSON of a parsed body, a JsonNumber written as {JSON_NUMBER: its text}."""
    return json.dumps(fields, default=_tagged)


def _tagged(value: Any) -> Any:
    if isinstance(value, JsonNumber):
        return {JSON_NUMBER: value.text}
    raise TypeError(type(value).__name__)


def _unique_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            raise invalid(name, f"{name} was sent more than once")
        fields[name] = value
    return fields


def _multipart(raw: bytes, boundary: str | None) -> dict[str, Any]:
    if not boundary:
        raise invalid(None, "A multipart/form-data body needs a boundary in its Content-Type")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    sections = raw.split(delimiter)
    # A form with no fields is just the closing delimiter (what clients send for an empty form).
    if len(sections) < 2 or not sections[-1].startswith(b"--"):
        raise invalid(None, "The multipart/form-data body is malformed")
    pairs = []
    for section in sections[1:-1]:
        head, separator, value = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = _disposition_name(_text(head)) if separator else None
        if name is None:
            raise invalid(None, "The multipart/form-data body is malformed")
        pairs.append((name, _text(value.removesuffix(b"\r\n"))))
    return _unique_fields(pairs)


def _disposition_name(head: str) -> str | None:
    for line in head.split("\r\n"):
        header, _, value = line.partition(":")
        if header.strip().lower() == "content-disposition":
            _, params = _media_type(value)
            return params.get("name")
    return None
