"""Hostile input through the local server: each gets a clear 4xx in the contract's format and
writes nothing (the data and idempotency tables are compared whole before and after)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
from tables import changed, local_server, own_tables, snapshot

from conftest import FIGURES, Tenant, api_event, invoke, settle
from conversions_core.models import LIST_PARAMETERS as LISTED_PARAMETERS
from conversions_core.repository import Repository

# The server under attack runs on tables of its own, small enough to compare whole after each request.
ENVIRONMENT = own_tables(boto3.client("dynamodb"), "Hostile")
TABLES = (ENVIRONMENT["DATA_TABLE_NAME"], ENVIRONMENT["IDEMPOTENCY_TABLE_NAME"])
PATH = "/api/goals-conversions"
BIG = 2**63
LONG = "A" * 8000  # API Gateway refuses longer URLs and header values itself
LIST_PARAMETERS = (*LISTED_PARAMETERS, "page")  # every parameter the list endpoint reads
tried: list[str] = []


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, {k.lower(): v for k, v in headers.items()}, body

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:200]!r}>"


def send(base: str, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Reply:
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def send_raw(base: str, request: bytes) -> Reply:
    """Bytes as they are on the wire, for what http.client refuses to send."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(request)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines if ": " in line)
    return Reply(int(status_line.split()[1]), headers, body)


class Refused:
    """Checks a reply is a 4xx in the contract's error format and that nothing was written."""

    def __init__(self) -> None:
        self.client = boto3.client("dynamodb")
        self.baseline()

    def baseline(self) -> None:
        """Take the tables as they are now as what must not change (after a test's own setup,
        its counts settled)."""
        settle()
        self.before = snapshot(self.client, *TABLES)

    def __call__(self, reply: Any, label: str, statuses: tuple[int, ...] = (400,)) -> None:
        status = reply.status
        body = reply.body if isinstance(reply, Reply) else reply.text.encode()
        assert status in statuses, f"{label}: {reply!r}"
        assert reply.headers["content-type"] == "application/json", label
        errors = json.loads(body)["errors"]
        assert errors and all(e["status"] == status and e["title"] for e in errors), label
        assert not any("Traceback" in e["title"] or "Exception" in e["title"] for e in errors), label
        settle()
        after = snapshot(self.client, *TABLES)
        assert not changed(self.before, after), f"{label} wrote {changed(self.before, after)}"
        tried.append(label)


@pytest.fixture(scope="module")
def hostile(dynamodb) -> Iterator[SimpleNamespace]:
    with local_server(ENVIRONMENT) as (url, handlers):
        yield SimpleNamespace(url=url, handlers=handlers, repository=Repository.build(dynamodb, TABLES[0]))


@pytest.fixture
def local_api(hostile) -> str:
    return hostile.url


@pytest.fixture
def tenant(hostile) -> Tenant:
    return Tenant(hostile.repository)


@pytest.fixture
def refused(local_api) -> Refused:
    return Refused()


def a_conversion(local_api: str, tenant: Any, refused: Refused) -> int:
    reply = send(local_api, "POST", PATH, *form(tenant, goal_id=tenant.goal_id))
    assert reply.status == 201, reply
    refused.baseline()
    return json.loads(reply.body)["data"]["id"]


@pytest.fixture(scope="module", autouse=True)
def report_tried():
    yield
    FIGURES.append(f"hostile input: {len(tried)} requests refused with a 4xx, nothing written")


def form(tenant, **fields: Any) -> tuple[dict[str, str], bytes]:
    return {**tenant.auth, "Content-Type": "application/x-www-form-urlencoded"}, "&".join(
        f"{quote(str(k))}={quote(str(v))}" for k, v in fields.items()
    ).encode()


def multipart(tenant, parts: list[tuple[str, bytes]], boundary: str = "XyZ") -> tuple[dict[str, str], bytes]:
    body = b"".join(
        b"--"
        + boundary.encode()
        + b'\r\nContent-Disposition: form-data; name="'
        + name.encode()
        + b'"\r\n\r\n'
        + value
        + b"\r\n"
        for name, value in parts
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    return {**tenant.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}, body


def as_json(tenant, value: Any) -> tuple[dict[str, str], bytes]:
    return {**tenant.auth, "Content-Type": "application/json"}, json.dumps(value).encode()


def test_bodies_over_one_megabyte_are_413(local_api, tenant, refused):
    pad = "x" * (1024 * 1024 + 1)
    for label, (headers, body) in {
        "json": as_json(tenant, {"goal_id": tenant.goal_id, "pad": pad}),
        "form": form(tenant, goal_id=tenant.goal_id, pad=pad),
        "multipart": multipart(tenant, [("goal_id", str(tenant.goal_id).encode()), ("pad", pad.encode())]),
    }.items():
        refused(send(local_api, "POST", PATH, headers, body), f"over 1 MB ({label})", (413,))


def test_invalid_utf8_is_a_400(local_api, tenant, refused):
    json_headers = {**tenant.auth, "Content-Type": "application/json"}
    form_headers = {**tenant.auth, "Content-Type": "application/x-www-form-urlencoded"}
    cases = {
        "json": (json_headers, b'{"goal_id": "\xff\xfe"}'),
        "json key": (json_headers, b'{"goal_id\xc3": 1}'),
        "form": (form_headers, b"goal_id=1&visitor_id=\xff"),
        "form, percent-encoded": (form_headers, f"goal_id={tenant.goal_id}&visitor_id=%ff%fe".encode()),
        "multipart value": multipart(tenant, [("goal_id", b"\xff\xfe")]),
    }
    headers, body = multipart(tenant, [("goal_id", str(tenant.goal_id).encode())])
    cases["multipart name bytes"] = (headers, body.replace(b'name="goal_id"', b'name="goal_\xffid"'))
    for label, (headers, body) in cases.items():
        refused(send(local_api, "POST", PATH, headers, body), f"invalid UTF-8 ({label})")


def test_integers_beyond_two_to_the_63_are_refused(local_api, tenant, refused):
    for value in (BIG, BIG * 2, 10**30, -(BIG + 1), "9" * 5000):
        for name in ("goal_id", "visitor_id", "session_id", "event_id"):
            fields = {"goal_id": tenant.goal_id, name: value}
            refused(send(local_api, "POST", PATH, *form(tenant, **fields)), f"{name}={str(value)[:20]} (form)")
        refused(
            send(local_api, "POST", PATH, *as_json(tenant, {"goal_id": value})), f"goal_id={str(value)[:20]} (json)"
        )
    headers = {**tenant.auth, "Content-Type": "application/json"}
    refused(send(local_api, "POST", PATH, headers, b'{"goal_id": 1e400}'), "goal_id=1e400 (json)")
    refused(send(local_api, "POST", PATH, headers, b'{"goal_id": 9' + b"9" * 5000 + b"}"), "goal_id=9*5001 (json)")
    for name in ("goal_id", "website_id"):  # a page that large is past the last page: an empty 200
        refused(send(local_api, "GET", f"{PATH}?{name}={BIG}", tenant.auth), f"query {name}=2**63")
    for method in ("GET", "POST", "DELETE"):
        refused(send(local_api, method, f"{PATH}/{BIG}", tenant.auth), f"{method} id 2**63", (404,))


def test_negative_and_zero_ids_are_refused(local_api, tenant, refused):
    for value in (0, -1, -BIG):
        for name in ("goal_id", "visitor_id", "session_id", "event_id"):
            refused(
                send(local_api, "POST", PATH, *form(tenant, **{"goal_id": tenant.goal_id, name: value})),
                f"{name}={value}",
            )
        refused(send(local_api, "POST", PATH, *as_json(tenant, {"goal_id": value})), f"goal_id={value} (json)")
        for name in ("goal_id", "website_id", "page"):
            refused(send(local_api, "GET", f"{PATH}?{name}={value}", tenant.auth), f"query {name}={value}")
        for method in ("GET", "POST", "DELETE"):
            refused(send(local_api, method, f"{PATH}/{value}", tenant.auth), f"{method} id {value}", (404,))


def test_duplicate_fields_are_refused(local_api, tenant, refused):
    goal = str(tenant.goal_id)
    cases = {
        "form": (
            {**tenant.auth, "Content-Type": "application/x-www-form-urlencoded"},
            f"goal_id={goal}&goal_id={goal}".encode(),
        ),
        "form, other field": (
            {**tenant.auth, "Content-Type": "application/x-www-form-urlencoded"},
            f"goal_id={goal}&visitor_id={tenant.visitor_id}&visitor_id={tenant.other_visitor_id}".encode(),
        ),
        "multipart": multipart(tenant, [("goal_id", goal.encode()), ("goal_id", goal.encode())]),
        "json": (
            {**tenant.auth, "Content-Type": "application/json"},
            f'{{"goal_id": {goal}, "goal_id": {goal}}}'.encode(),
        ),
    }
    for label, (headers, body) in cases.items():
        refused(send(local_api, "POST", PATH, headers, body), f"duplicate field ({label})")


def test_broken_multipart_is_a_400(local_api, tenant, refused):
    goal = str(tenant.goal_id).encode()
    headers, body = multipart(tenant, [("goal_id", goal)])
    cases = {
        "no boundary": ({**tenant.auth, "Content-Type": "multipart/form-data"}, body),
        "empty boundary": ({**tenant.auth, "Content-Type": "multipart/form-data; boundary="}, body),
        "other boundary": ({**tenant.auth, "Content-Type": "multipart/form-data; boundary=Other"}, body),
        "no closing delimiter": (headers, body.replace(b"--XyZ--\r\n", b"")),
        "no content-disposition": (headers, b"--XyZ\r\nContent-Type: text/plain\r\n\r\n1\r\n--XyZ--\r\n"),
        "no blank line": (headers, b'--XyZ\r\nContent-Disposition: form-data; name="goal_id"\r\n1\r\n--XyZ--\r\n'),
        "not multipart at all": (headers, b"goal_id=1"),
    }
    for label, (headers, body) in cases.items():
        refused(send(local_api, "POST", PATH, headers, body), f"multipart ({label})")


def test_json_that_is_not_an_object_is_a_400(local_api, tenant, refused):
    conversion_id = a_conversion(local_api, tenant, refused)
    for value in ([], [{"goal_id": tenant.goal_id}], "goal_id", 1, None, True):
        for path in (PATH, f"{PATH}/{conversion_id}"):
            refused(send(local_api, "POST", path, *as_json(tenant, value)), f"json {json.dumps(value)} to {path}")
    headers = {**tenant.auth, "Content-Type": "application/json"}
    for body in (b"{", b'{"goal_id": 1,}', b"NaN", b"\x00"):
        refused(send(local_api, "POST", PATH, headers, body), f"malformed json {body!r}")


def test_nul_and_very_long_strings_in_every_parameter_are_refused(local_api, tenant, refused):
    conversion_id = a_conversion(local_api, tenant, refused)
    for bad in ("%00", quote(LONG), "1%00", f"{tenant.goal_id}%00"):
        for name in LIST_PARAMETERS:
            refused(send(local_api, "GET", f"{PATH}?{name}={bad}", tenant.auth), f"query {name}={bad[:12]}")
        for method in ("GET", "POST", "DELETE"):
            refused(send(local_api, method, f"{PATH}/{bad}", tenant.auth), f"{method} id {bad[:12]}", (404,))
    for bad in ("\x00", LONG, f"{tenant.goal_id}\x00", "1" * 100_000):
        for name in ("goal_id", "visitor_id", "session_id", "event_id"):
            fields = {"goal_id": tenant.goal_id, name: bad}
            refused(send(local_api, "POST", PATH, *form(tenant, **fields)), f"body {name}={bad[:12]!r} (form)")
            refused(send(local_api, "POST", PATH, *as_json(tenant, fields)), f"body {name}={bad[:12]!r} (json)")
            update = f"{PATH}/{conversion_id}"
            refused(send(local_api, "POST", update, *as_json(tenant, {name: bad})), f"update {name}={bad[:12]!r}")
        if len(bad) > len(LONG):
            continue  # over API Gateway's header size limit: it answers before any function runs
        headers, body = form(tenant, goal_id=tenant.goal_id)
        refused(
            send(local_api, "POST", PATH, {**headers, "Idempotency-Key": bad}, body), f"Idempotency-Key {bad[:12]!r}"
        )
        refused(send(local_api, "GET", PATH, {"Authorization": f"Bearer {bad}"}), f"API key {bad[:12]!r}", (401,))


def test_header_values_with_cr_or_lf_are_refused(local_api, tenant, refused, hostile):
    # On the wire: a folded header line (obs-fold) keeps its CR LF in the value.
    goal = str(tenant.goal_id).encode()
    body = b"goal_id=" + goal
    head = (
        b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + tenant.api_key.encode() + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    )
    folded = head + b"Idempotency-Key: abc\r\n def\r\n\r\n" + body
    refused(send_raw(local_api, folded), "folded Idempotency-Key")
    # In the event, as a proxy could hand it over.
    for name, value, status in (
        ("Authorization", f"Bearer {tenant.api_key}\r\nX-Injected: 1", 401),
        ("Authorization", f"Bearer {tenant.api_key}\n", 401),
        ("Idempotency-Key", "abc\r\nX-Injected: 1", 400),
        ("Idempotency-Key", "abc\rdef", 400),
        ("Content-Type", "application/json\r\nX-Injected: 1", 415),
    ):
        headers = {**tenant.auth, name: value}
        event = api_event("create_conversion", headers=headers, json_body={"goal_id": tenant.goal_id})
        if name == "Content-Type":
            event["headers"]["content-type"] = value
        refused(invoke(hostile.handlers["create_conversion"], event), f"{name} with CR/LF", (status,))
        update = api_event("update_conversion", headers=headers, conversion_id=1, json_body={})
        if name == "Authorization":
            refused(invoke(hostile.handlers["update_conversion"], update), f"{name} with CR/LF (update)", (status,))
