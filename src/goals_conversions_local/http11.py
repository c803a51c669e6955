"""HTTP/1.1 on the wire for the local server: reading one request, writing one response.

Small on purpose (a development server): bodies come by Content-Length or chunked, keep-alive
is the default, and anything that cannot be read safely raises `HttpError` with a status and a
title for the caller to answer with before it closes the connection.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from io import BufferedIOBase

PROTOCOL = "HTTP/1.1"
SERVER = "goals-conversions-local"
MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_CHUNK_LINE = 4096
DRAIN_FACTOR = 2  # a body over the limit is read and discarded up to twice the limit, so the 413 arrives

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
VERSION = re.compile(r"HTTP/(\d)\.(\d)")
DIGITS = re.compile(r"[0-9]+")
HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HttpError(Exception):
    """A request that cannot be served; the connection is closed after the answer."""

    def __init__(self, status: int, title: str):
        super().__init__(title)
        self.status, self.title = status, title
        self.method, self.target = "-", "-"


class Disconnected(ConnectionError):
    """The client went away in the middle of a request: there is no one to answer."""


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool


def read_request(rfile: BufferedIOBase, wfile: BufferedIOBase, max_body: int) -> Request | None:
    """The next request on the connection, or None when the client closed it between requests."""
    line = rfile.readline(MAX_REQUEST_LINE + 3)
    while line in (b"\r\n", b"\n"):  # stray empty lines between requests are allowed
        line = rfile.readline(MAX_REQUEST_LINE + 3)
    if not line:
        return None
    text = _without_eol(line)
    if len(text) > MAX_REQUEST_LINE:
        raise HttpError(414, f"The request line is longer than {MAX_REQUEST_LINE} bytes")
    if not line.endswith(b"\n"):
        raise Disconnected
    method, target, version = _request_line(text.decode("latin-1"))
    try:
        headers = _read_fields(rfile)
        keep_alive = _keep_alive(version, headers)
        chunked, length = _framing(version, headers)
        if length > max_body:
            if not _expects_continue(version, headers):
                _discard(rfile, min(length, DRAIN_FACTOR * max_body))
            raise HttpError(413, _too_large(max_body))
        if (chunked or length) and _expects_continue(version, headers):
            wfile.write(f"{PROTOCOL} 100 Continue\r\n\r\n".encode())
        if chunked:
            body = _read_chunked(rfile, max_body)
            headers = [(n, v) for n, v in headers if n.lower() != "transfer-encoding"]
            headers.append(("Content-Length", str(len(body))))
        else:
            body = rfile.read(length) if length else b""
            if len(body) < length:
                raise HttpError(400, "The body is shorter than its Content-Length")
    except HttpError as error:
        error.method, error.target = method, target
        raise
    return Request(method, target, version, headers, body, keep_alive)


def _without_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


def _request_line(text: str) -> tuple[str, str, str]:
    parts = text.split(" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1] or not VERSION.fullmatch(parts[2]):
        raise HttpError(400, "The request line must be: METHOD /path HTTP/1.1")
    method, target, version = parts
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        raise HttpError(400, "The request target must not contain spaces or control characters")
    if not version.startswith("HTTP/1."):
        raise HttpError(505, f"{version} is not supported; use HTTP/1.1")
    if target.startswith("//"):  # a path, not a scheme-relative URL
        target = "/" + target.lstrip("/")
    return method, target, version


def _read_fields(rfile: BufferedIOBase) -> list[tuple[str, str]]:
    """Header (or trailer) fields up to the empty line that ends them."""
    fields: list[tuple[str, str]] = []
    size = 0
    while True:
        budget = MAX_HEADER_BYTES - size
        line = rfile.readline(budget + 1)
        size += len(line)
        if len(line) > budget:
            raise HttpError(431, "The request headers are too large")
        if not line.endswith(b"\n"):
            raise Disconnected
        if line in (b"\r\n", b"\n"):
            return fields
        if len(fields) == MAX_HEADERS:
            raise HttpError(431, f"The request has more than {MAX_HEADERS} headers")
        if line[:1] in (b" ", b"\t"):
            raise HttpError(400, "Header lines must not be folded onto the next line")
        name, colon, value = _without_eol(line).decode("latin-1").partition(":")
        if not colon or not TOKEN.fullmatch(name):
            raise HttpError(400, "Each header line must be Name: value")
        fields.append((name, value.strip(" \t")))


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    """Every comma-separated value of a header, over all its lines."""
    return [v.strip() for n, value in headers if n.lower() == name for v in value.split(",")]


def _keep_alive(version: str, headers: list[tuple[str, str]]) -> bool:
    options = {v.lower() for v in _values(headers, "connection")}
    if "close" in options:
        return False
    return "keep-alive" in options if version == "HTTP/1.0" else True


def _expects_continue(version: str, headers: list[tuple[str, str]]) -> bool:
    return version != "HTTP/1.0" and any(v.lower() == "100-continue" for v in _values(headers, "expect"))


def _framing(version: str, headers: list[tuple[str, str]]) -> tuple[bool, int]:
    """(chunked, Content-Length) as RFC 9112 section 6 reads them, refusing what is ambiguous."""
    lengths = _values(headers, "content-length")
    codings = [c.lower() for c in _values(headers, "transfer-encoding")]
    if any(n.lower() == "transfer-encoding" for n, _ in headers):
        if lengths:
            raise HttpError(400, "Send the body with Content-Length or Transfer-Encoding, not both")
        unsupported = [c for c in codings if c and c != "chunked"]
        if unsupported:
            raise HttpError(
                501,
                f"Transfer-Encoding {unsupported[0]} is not supported; send the body with Content-Length or chunked",
            )
        if codings != ["chunked"] or version == "HTTP/1.0":
            raise HttpError(400, "Transfer-Encoding must be chunked, once, on HTTP/1.1")
        return True, 0
    if not lengths:
        return False, 0
    if not all(DIGITS.fullmatch(v) for v in lengths):
        raise HttpError(400, "Content-Length must be a non-negative integer")
    numbers = {v.lstrip("0") or "0" for v in lengths}
    if len(numbers) > 1:
        raise HttpError(400, "Content-Length is given more than once with different values")
    number = numbers.pop()
    return False, int(number) if len(number) <= 18 else 10**18  # past any limit either way


def _read_chunked(rfile: BufferedIOBase, max_body: int) -> bytes:
    """The decoded body; chunk extensions and trailers are read and ignored."""
    body = bytearray()
    total = 0
    while True:
        line = rfile.readline(MAX_CHUNK_LINE + 1)
        if len(line) > MAX_CHUNK_LINE:
            raise HttpError(400, "Malformed chunked body: a chunk size line is too long")
        if not line.endswith(b"\n"):
            raise Disconnected
        size_text = _without_eol(line).split(b";", 1)[0].strip(b" \t")
        if not HEX.fullmatch(size_text):
            raise HttpError(400, "Malformed chunked body: a chunk size must be a hexadecimal number")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > DRAIN_FACTOR * max_body:
            raise HttpError(413, _too_large(max_body))
        if total > max_body:
            _discard(rfile, size)
        else:
            data = rfile.read(size)
            if len(data) < size:
                raise Disconnected
            body += data
        if rfile.read(2) != b"\r\n":
            raise HttpError(400, "Malformed chunked body: chunk data must end with CRLF")
    _read_fields(rfile)  # trailers
    if total > max_body:
        raise HttpError(413, _too_large(max_body))
    return bytes(body)


def _discard(rfile: BufferedIOBase, count: int) -> None:
    while count > 0:
        data = rfile.read(min(count, 64 * 1024))
        if not data:
            raise Disconnected
        count -= len(data)


def _too_large(max_body: int) -> str:
    return f"The body must be at most {max_body // (1024 * 1024)} MB"


def write_response(
    wfile: BufferedIOBase,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    head: bool = False,
    close: bool = False,
    version: str = PROTOCOL,
) -> None:
    """One response; `head` leaves the body out (its Content-Length stays), `close` says Connection: close."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"{PROTOCOL} {status} {reason}", f"Date: {formatdate(usegmt=True)}", f"Server: {SERVER}"]
    skip = {"content-length", "transfer-encoding", "connection", "date", "server"}
    lines += [f"{n}: {v}" for n, v in headers if n.lower() not in skip]
    if status != 204:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    elif version == "HTTP/1.0":
        lines.append("Connection: keep-alive")
    payload = b"" if head or status == 204 else body
    wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)


def linger(sock: socket.socket, seconds: float = 1.0, limit: int = 1024 * 1024) -> None:
    """Half-close, then read what the client still sends for a moment, so that closing does not
    reset the connection (and lose the answer) while its unread bytes are in flight."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(seconds)
        deadline = time.monotonic() + seconds
        while limit > 0 and time.monotonic() < deadline:
            data = sock.recv(64 * 1024)
            if not data:
                return
            limit -= len(data)
    except OSError:
        pass
