"""The local API Gateway: HTTP requests become HTTP API events (payload 2.0) for the handlers."""

from __future__ import annotations

import base64
import json
import socketserver
import sys
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from goals_conversions_local.cors import Cors
from goals_conversions_local.docs import DocsPages
from goals_conversions_local.http11 import HttpError, linger, read_request, write_response
from goals_conversions_local.openapi import build_document, render
from goals_conversions_local.runtime import Functions
from goals_conversions_local.template import FunctionSpec, Route, Template

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class RouteTable:
    """The template's routes, the most specific first (a literal segment before a parameter),
    as an HTTP API chooses among the routes a path matches."""

    def __init__(self, functions: list[FunctionSpec]):
        entries = [(route, route.pattern(), spec) for spec in functions for route in spec.routes]
        self.entries = sorted(entries, key=lambda entry: entry[0].parameters)

    def match(self, method: str, path: str) -> tuple[Route, FunctionSpec, dict[str, str]] | None | str:
        """(route, function, path parameters); 'method' when only the method is wrong; None."""
        wrong_method = False
        for route, pattern, spec in self.entries:
            found = pattern.match(path)
            if found:
                if route.method == method:
                    return route, spec, found.groupdict()
                wrong_method = True
        return "method" if wrong_method else None

    def allowed(self, path: str) -> list[str]:
        return sorted({route.method for route, pattern, _ in self.entries if pattern.match(path)})


def build_event(
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    route: Route,
    path_parameters: dict[str, str],
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An event as API Gateway's HTTP API sends it (payload format 2.0): header names lower-cased
    and a repeated header joined with commas, as are repeated query parameters; cookies apart;
    binary bodies (multipart) base64-encoded."""
    parts = urlsplit(raw_path)
    joined: dict[str, str] = {"x-forwarded-proto": "http"}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        elif name == "x-forwarded-proto":
            joined[name] = value
        else:
            joined[name] = f"{joined[name]},{value}" if name in joined else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    text, is_base64 = _event_body(body, joined.get("content-type", ""))
    host = joined.get("host", "127.0.0.1")
    request_id = str(uuid.uuid4())
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{route.method} {route.path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": f"{route.method} {route.path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if text is not None:
        event["body"] = text
    return event


def _event_body(body: bytes, content_type: str) -> tuple[str | None, bool]:
    if not body:
        return None, False
    if content_type.lower().startswith("multipart/form-data"):
        return base64.b64encode(body).decode("ascii"), True
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _error(status: int, title: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"errors": [{"title": title, "status": status}]}),
    }


class LocalApi:
    """Routes HTTP requests to the template's functions; with `cors_origins`, answers browsers
    from those origins as the deployed API does (goals_conversions_local.cors)."""

    def __init__(self, template: Template, functions: Functions | None = None, cors_origins: tuple[str, ...] = ()):
        self.functions = functions or Functions(template)
        self.routes = RouteTable(template.functions())
        self.docs = DocsPages(lambda: render(build_document(template, self.functions)))
        self.cors = Cors.from_template(template, cors_origins)

    def handle(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
        if self.cors is None:
            return self._route(method, raw_path, headers, body)
        preflight = self.cors.preflight(method, headers)
        if preflight is not None:
            return preflight
        return self.cors.answered(self._route(method, raw_path, headers, body), headers)

    def _route(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
        page = self.docs.handle(method, urlsplit(raw_path).path)
        if page is not None:
            return page
        match = self.routes.match(method, urlsplit(raw_path).path)
        if match is None:
            return _error(404, "No such endpoint")
        if isinstance(match, str):  # "method": only the method is wrong
            allowed = self.routes.allowed(urlsplit(raw_path).path)
            response = _error(405, f"Method {method} is not allowed on this path")
            response["headers"]["Allow"] = ", ".join(allowed)
            return response
        route, spec, parameters = match
        event = build_event(method, raw_path, headers, body, route, parameters)
        try:
            return self.functions.invoke(spec, event)
        except Exception as error:  # an invocation error, as API Gateway reports it
            print(f"invocation error in {spec.name}: {type(error).__name__}", file=sys.stderr)
            return _error(502, "Internal server error")


def _response_headers(response: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [(n, str(v)) for n, v in (response.get("headers") or {}).items()]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        pairs += [(name, str(v)) for v in values]
    return pairs


class LocalServer(socketserver.ThreadingTCPServer):
    """Listening as soon as it is made (see `bind`); `api` is attached before `serve_forever`.

    A thread per connection; the handlers run at once (runtime.Functions). The listen backlog
    holds the connections not yet accepted: socketserver's default of 5 reset some of 20
    clients connecting at once."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128
    api: LocalApi
    access_log: Any = None
    max_body = MAX_REQUEST_BYTES


class Handler(socketserver.StreamRequestHandler):
    """The requests on one connection, one after the other, while the client keeps it alive."""

    server: LocalServer
    timeout = 60  # seconds of silence before a connection (or a body being read) is given up

    def handle(self) -> None:
        try:
            while self._one_request():
                pass
        except OSError:  # gone, reset or timed out: there is no one to answer
            pass

    def _one_request(self) -> bool:
        """Read and answer one request; whether the connection stays open for another."""
        started = time.perf_counter()
        try:
            request = read_request(self.rfile, self.wfile, self.server.max_body)
        except HttpError as error:  # answered in the contract's format, then the connection is closed
            self._answer(error.method, error.target, _error(error.status, error.title), started, "", close=True)
            linger(self.connection)
            return False
        if request is None:
            return False
        response = self.server.api.handle(request.method, request.target, request.headers, request.body)
        self._answer(request.method, request.target, response, started, request.version, not request.keep_alive)
        return request.keep_alive

    def _answer(
        self, method: str, target: str, response: dict[str, Any], started: float, version: str, close: bool
    ) -> None:
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode("utf-8")
        status = response["statusCode"]
        headers = _response_headers(response)
        write_response(self.wfile, status, headers, data, head=method == "HEAD", close=close, version=version)
        if self.server.access_log:
            millis = (time.perf_counter() - started) * 1000
            line = f"{method} {urlsplit(target).path} {status} {millis:.1f}ms"
            print(line, file=self.server.access_log, flush=True)


def bind(host: str, port: int) -> LocalServer:
    """The listening socket, before anything else is prepared; OSError when the port is taken."""
    return LocalServer((host, port), Handler)


def make_server(api: LocalApi, host: str, port: int, access_log: Any = sys.stderr) -> LocalServer:
    server = bind(host, port)
    server.api, server.access_log = api, access_log
    return server
