"""HTTP/1.1 on the wire of the local server (`goals-conversions serve`): raw bytes over sockets."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from conftest import ROOT

PATH = "/api/goals-conversions"
MiB = 1024 * 1024


def connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def receive(connection: socket.socket, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One response from a connection that may stay open."""
    response = http.client.HTTPResponse(connection, method=method)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def exchange(base: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes, read until the server closes the connection (a hang fails on the timeout)."""
    with connect(base) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {n.lower(): v for n, v in (line.split(": ", 1) for line in lines)}
    assert len(body) == int(headers["content-length"]), "one response, then the connection is closed"
    return int(status_line.split()[1]), headers, body


def head(method: str, path: str, *lines: str) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: local\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def tenant_auth(tenant) -> list[str]:
    return [f"{n}: {v}" for n, v in tenant.auth.items()]


def create(tenant, *lines: str) -> bytes:
    return head("POST", PATH, *tenant_auth(tenant), "Content-Type: application/x-www-form-urlencoded", *lines)


def assert_refused(reply: tuple[int, dict[str, str], bytes], status: int, title: str | None = None) -> None:
    got, headers, body = reply
    assert got == status, reply
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert "date" in headers and headers.get("server", "goals-conversions-local") == "goals-conversions-local"
    errors = json.loads(body)["errors"]
    assert len(errors) == 1 and errors[0]["status"] == status and errors[0]["title"], errors
    if title:
        assert errors[0]["title"] == title


def total(base: str, tenant) -> int:
    with connect(base) as connection:
        connection.sendall(head("GET", PATH, *tenant_auth(tenant), "Connection: close"))
        status, _, body = receive(connection)
    assert status == 200
    return json.loads(body)["meta"]["total"]


def test_bad_content_length_is_400_closes_and_writes_nothing(local_api, tenant):
    body = f"goal_id={tenant.goal_id}".encode()
    n = len(body)
    cases = {
        "negative": ("Content-Length: -1",),
        "not a number": ("Content-Length: abc",),
        "signed": (f"Content-Length: +{n}",),
        "differing": (f"Content-Length: {n}", f"Content-Length: {n + 1}"),
        "differing in one line": (f"Content-Length: {n}, {n + 1}",),
        "with Transfer-Encoding": (f"Content-Length: {n}", "Transfer-Encoding: chunked"),
    }
    for label, lines in cases.items():
        reply = exchange(local_api, create(tenant, *lines) + body)
        assert_refused(reply, 400)
        title = json.loads(reply[2])["errors"][0]["title"]
        assert "Content-Length" in title, (label, title)
    assert_refused(
        exchange(local_api, create(tenant, "Content-Length: -1") + body),
        400,
        "Content-Length must be a non-negative integer",
    )
    assert total(local_api, tenant) == 0


def test_chunked_bodies_are_decoded_and_the_connection_kept(local_api, tenant):
    body = f"goal_id={tenant.goal_id}".encode()
    chunks = b"3;ext=1\r\n" + body[:3] + b"\r\n" + f"{len(body) - 3:x}\r\n".encode() + body[3:] + b"\r\n"
    with connect(local_api) as connection:
        connection.sendall(create(tenant, "Transfer-Encoding: chunked") + chunks + b"0\r\nX-Trailer: ignored\r\n\r\n")
        status, headers, created = receive(connection, "POST")
        assert status == 201, created
        assert json.loads(created)["data"]["goal_id"] == tenant.goal_id
        assert headers.get("connection") != "close"
        connection.sendall(head("GET", PATH, *tenant_auth(tenant)))
        status, _, listed = receive(connection)
        assert status == 200 and json.loads(listed)["meta"]["total"] == 1


def test_other_transfer_codings_are_501_and_malformed_chunks_400(local_api, tenant):
    body = f"goal_id={tenant.goal_id}".encode()
    assert_refused(
        exchange(local_api, create(tenant, "Transfer-Encoding: gzip") + body),
        501,
        "Transfer-Encoding gzip is not supported; send the body with Content-Length or chunked",
    )
    assert_refused(exchange(local_api, create(tenant, "Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n"), 501)
    for label, chunks in {
        "size not hex": b"zz\r\n" + body + b"\r\n0\r\n\r\n",
        "negative size": b"-1\r\n" + body + b"\r\n0\r\n\r\n",
        "data longer than its size": b"2\r\n" + body + b"\r\n0\r\n\r\n",
    }.items():
        reply = exchange(local_api, create(tenant, "Transfer-Encoding: chunked") + chunks)
        assert_refused(reply, 400)
        assert "chunked" in json.loads(reply[2])["errors"][0]["title"], label
    assert total(local_api, tenant) == 0


def test_request_line_and_header_limits_answer_json(local_api, tenant):
    assert_refused(
        exchange(local_api, head("GET", "/" + "a" * 9000)), 414, "The request line is longer than 8192 bytes"
    )
    assert_refused(
        exchange(local_api, head("GET", PATH, *(f"X-Pad-{i}: {'a' * 8000}" for i in range(10)))),
        431,
        "The request headers are too large",
    )
    assert_refused(exchange(local_api, head("GET", PATH, *(f"X-Many-{i}: 1" for i in range(150)))), 431)
    for line in (b"GARBAGE\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n", b"GET / FTP/1.0\r\n\r\n"):
        assert_refused(exchange(local_api, line), 400)
    assert_refused(exchange(local_api, b"GET / HTTP/2.0\r\n\r\n"), 505)
    assert_refused(exchange(local_api, head("GET", PATH, "Bad Header: 1")), 400)
    # A long but acceptable request still works.
    reply = exchange(local_api, head("GET", f"{PATH}?x={'a' * 8000}", *tenant_auth(tenant), "Connection: close"))
    assert reply[0] != 414 and reply[1]["content-type"] == "application/json"


def test_a_body_over_the_limit_is_read_then_answered_413(local_api, tenant):
    body = b"goal_id=" + b"1" * (11 * MiB)
    reply = exchange(local_api, create(tenant, f"Content-Length: {len(body)}") + body)
    assert_refused(reply, 413, "The body must be at most 10 MB")
    chunked = b"".join(b"100000\r\n" + b"1" * MiB + b"\r\n" for _ in range(11)) + b"0\r\n\r\n"
    reply = exchange(local_api, create(tenant, "Transfer-Encoding: chunked") + chunked)
    assert_refused(reply, 413, "The body must be at most 10 MB")
    assert total(local_api, tenant) == 0


def test_no_version_banner_and_a_date(local_api, tenant):
    for reply in (
        exchange(local_api, head("GET", PATH, *tenant_auth(tenant), "Connection: close")),
        exchange(local_api, head("GET", "/nowhere", "Connection: close")),
        exchange(local_api, b"NONSENSE\r\n\r\n"),
    ):
        _, headers, _ = reply
        assert "date" in headers
        assert headers.get("server", "goals-conversions-local") == "goals-conversions-local"
        assert b"Python" not in reply[2] and b"BaseHTTP" not in reply[2]


def test_serve_on_a_taken_port_says_so_in_one_line_and_exits_2():
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "goals-conversions"),
                "serve",
                "--port",
                str(port),
                "--seed",
                str(ROOT / "seeds" / "demo.json"),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"goals-conversions serve: cannot listen on 127.0.0.1:{port}: address already in use (set PORT or --port)\n"
    )
    assert "Traceback" not in result.stderr and "Seeded" not in result.stderr
    assert elapsed < 10, elapsed
