"""Test harness: the DynamoDB engine (moto's server in-process, or DynamoDB Local), tables built
from template.yaml.

TEST_DYNAMODB_ENDPOINT chooses the engine: unset (or `moto`), moto's server in this process;
`dynamodb-local`, AWS's DynamoDB Local started here (installed by `make dynamodb-local`) and
stopped at the end; a URL, a DynamoDB there (DynamoDB Local run by hand). Against an endpoint each
process (each xdist worker) gets a fresh database: a new access key id, which DynamoDB Local
without -sharedDb gives a database of its own. Tests of moto itself are marked `moto_only`.

The environment is set at import, before any handler module is imported, because handler
modules build their DynamoDB client once at module scope (as in a warm Lambda container).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import importlib
import itertools
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from goals_conversions_local.dynamodb_local import DynamoDBLocal, fresh_access_key
from goals_conversions_local.embedded import (
    ensure_event_buses,
    ensure_queues,
    ensure_tables,
    start_embedded_dynamodb,
    use_local_credentials,
)
from goals_conversions_local.runtime import LOCAL_REMAINING_MILLIS, apply_environment
from goals_conversions_local.template import Template

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

_engine = os.environ.get("TEST_DYNAMODB_ENDPOINT", "").strip()
_dynamodb_local = None
if _engine == "dynamodb-local":  # this process starts it; xdist's workers inherit the URL
    _dynamodb_local = DynamoDBLocal()
    _engine = os.environ["TEST_DYNAMODB_ENDPOINT"] = _dynamodb_local.start()
# An endpoint of another engine (not the embedded moto): the tests of moto itself are skipped.
EXTERNAL = _engine not in ("", "moto")
ENGINE = "DynamoDB at " + _engine if EXTERNAL else "moto (embedded)"
use_local_credentials()
if EXTERNAL:
    ENDPOINT = _engine
    os.environ["AWS_ACCESS_KEY_ID"] = fresh_access_key(os.environ.get("PYTEST_XDIST_WORKER", "tests"))
    _, os.environ["AWS_ENDPOINT_URL_SQS"] = start_embedded_dynamodb()  # the failures queue (no SQS there)
else:
    _server, ENDPOINT = start_embedded_dynamodb()
    os.environ["AWS_ENDPOINT_URL_SQS"] = ENDPOINT
os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = ENDPOINT
os.environ["AWS_ENDPOINT_URL_EVENTBRIDGE"] = os.environ["AWS_ENDPOINT_URL_SQS"]  # moto's, on either engine
TEMPLATE = Template()
apply_environment(TEMPLATE)
ensure_tables(TEMPLATE, boto3.client("dynamodb"))
ensure_queues(TEMPLATE)
ensure_event_buses(TEMPLATE)

from conversions_core.http import get_services  # noqa: E402
from conversions_core.repository import Repository, ids  # noqa: E402
from conversions_core.repository.dynamo import dynamodb_client  # noqa: E402
from conversions_core.seed import load_seed  # noqa: E402
from conversions_core.services import Services  # noqa: E402
from conversions_core.settings import Settings  # noqa: E402
from goals_conversions_local.streams import StreamPump  # noqa: E402

# Every test draws fresh ids from here, so tests never share users, goals or websites.
_ids = itertools.count(1000)
# Imported conversions get ids as the service gives them (from their datetime), made unique here.
_conversion_draws = itertools.count(1)
# The counting function on each table set's stream (the tests' own, and those of modules with
# tables of their own): `settle()` runs them dry, as if every write had settled.
PUMPS: list[StreamPump] = []


def settle() -> None:
    """Let the counting function handle every stream record written so far."""
    for pump in PUMPS:
        pump.drain()


def counting_pump(table_name: str) -> StreamPump:
    """A stream pump for a table of a test's own, feeding the counting function's handler code
    (functions/count_conversions) with a counter on that table."""
    from conversions_core.repository.cascade import Cascade
    from conversions_core.repository.counting import Counter
    from conversions_core.repository.dynamo import Table
    from functions.count_conversions.app import count_batch, failures

    table = Table(boto3.client("dynamodb"), table_name)
    pump = StreamPump(TEMPLATE, table_name=table_name, embedded=not EXTERNAL)
    pump.invoke = lambda event: count_batch(event, Counter(table), Cascade(table), failures)
    return pump


def batch_response(outcome: Any) -> dict[str, Any]:
    """The counting function's answer to a batch (a partial batch response)."""
    failures = [{"itemIdentifier": outcome.failed_sequence}] if outcome.failed_sequence else []
    return {"batchItemFailures": failures}


# Every API key a test made: none of them, nor its hash, may appear in the logs of the run.
ISSUED_KEYS: list[str] = []


# Figures the hardening tests report (cases run, faults injected, ...), printed at the end.
class _Figures:
    """Lines the tests report (appended in any xdist worker), printed once at the end of the run."""

    def append(self, line: str) -> None:
        folder = Path(os.environ["GOALS_CONVERSIONS_FIGURES"])
        with (folder / f"{os.getpid()}.txt").open("a") as lines:
            lines.write(line + "\n")

    def lines(self) -> list[str]:
        folder = Path(os.environ["GOALS_CONVERSIONS_FIGURES"])
        return [line for path in sorted(folder.glob("*.txt")) for line in path.read_text().splitlines()]


FIGURES = _Figures()


def pytest_configure(config: Any) -> None:
    if "GOALS_CONVERSIONS_FIGURES" not in os.environ:  # the controller: workers inherit it
        os.environ["GOALS_CONVERSIONS_FIGURES"] = tempfile.mkdtemp(prefix="figures-")


def pytest_unconfigure(config: Any) -> None:
    if _dynamodb_local is not None:
        _dynamodb_local.stop()


def pytest_report_header(config: Any) -> str:
    return f"DynamoDB engine: {ENGINE}"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """On another engine than the embedded moto, the tests of moto itself are skipped, with the
    reason their marker gives."""
    if not EXTERNAL:
        return
    for item in items:
        marker = item.get_closest_marker("moto_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"moto only: {reason}"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = FIGURES.lines()
    if lines:
        terminalreporter.write_sep("-", "figures")
        for line in sorted(lines):
            terminalreporter.write_line(line)


def new_id() -> int:
    return next(_ids)


@pytest.fixture(scope="session", autouse=True)
def no_key_in_the_logs():
    """Captures what the service's Powertools Logger writes during the whole run, then fails
    the run if any API key issued by a test, or its SHA-256 hash, is in it."""
    import io
    import logging

    from conversions_core.auth import hash_api_key
    from conversions_core.http import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.service).addHandler(handler)
    yield
    logging.getLogger(logger.service).removeHandler(handler)
    logs = stream.getvalue()
    leaked = [key for key in ISSUED_KEYS if key in logs or hash_api_key(key) in logs]
    assert not leaked, f"{len(leaked)} API keys or their hashes were logged"


@pytest.fixture(scope="session")
def dynamodb() -> Any:
    return boto3.client("dynamodb")


PUMPS.append(StreamPump(TEMPLATE, embedded=not EXTERNAL))


def use_fresh_database(module: Any) -> None:
    """Move this process to a database of its own on the external engine, with the template's
    tables and the module's own (its ENVIRONMENT), and a pump reading them.

    DynamoDB Local's calls slow down as the stream records of a database pile up (past about
    20,000, 6-20x; deleting the tables does not help), so each test module starts on a fresh one.
    Every client made so far signs with the default session's credentials, which are changed in
    place; processes started later take the key from the environment."""
    key = fresh_access_key(os.environ.get("PYTEST_XDIST_WORKER", "tests"))
    os.environ["AWS_ACCESS_KEY_ID"] = key
    assert boto3.DEFAULT_SESSION is not None  # the clients made at import made it
    boto3.DEFAULT_SESSION.get_credentials().access_key = key
    client = boto3.client("dynamodb")
    ensure_tables(TEMPLATE, client)
    own = getattr(module, "ENVIRONMENT", None)
    if own:
        own_tables(client, own["DATA_TABLE_NAME"].removesuffix("DataTable"))
    PUMPS[0] = StreamPump(TEMPLATE, embedded=False)


@pytest.fixture(scope="module", autouse=True)
def database_of_the_module(request: Any) -> None:
    if EXTERNAL:
        use_fresh_database(request.module)


def own_tables(client: Any, prefix: str) -> dict[str, str]:
    """The template's tables under `prefix` (created if missing), as the environment naming them.

    moto copies a whole table on every transaction and scans it whole, so tests that write a lot
    or compare whole tables run on tables of their own."""
    existing = set(client.list_tables()["TableNames"])
    ttl = TEMPLATE.ttl_attributes()
    for name, arguments in TEMPLATE.tables().items():
        if prefix + name not in existing:
            client.create_table(**{**arguments, "TableName": prefix + name})
            if name in ttl:
                specification = {"Enabled": True, "AttributeName": ttl[name]}
                client.update_time_to_live(TableName=prefix + name, TimeToLiveSpecification=specification)
    return {
        "DATA_TABLE_NAME": f"{prefix}DataTable",
        "RATE_LIMIT_TABLE_NAME": f"{prefix}RateLimitTable",
        "IDEMPOTENCY_TABLE_NAME": f"{prefix}IdempotencyTable",
    }


@contextmanager
def local_server(
    environment: dict[str, str],
    prepare: Callable[[Any, Any], None] | None = None,
    cors_origins: tuple[str, ...] = (),
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The local server (as in conftest's `local_api`) with its handlers loaded under `environment`;
    yields its URL and the handler modules by folder name (each function's first instance)."""
    with serving(environment, prepare, cors_origins) as parts:
        yield parts.url, parts.handlers


@contextmanager
def serving(
    environment: dict[str, str],
    prepare: Callable[[Any, Any], None] | None = None,
    cors_origins: tuple[str, ...] = (),
) -> Iterator[Any]:
    """`local_server`'s parts: url, handlers, functions (runtime.Functions), pump (its stream
    pump, in PUMPS, not started) and server.

    Every handler-module instance the server loads, then or later (requests at once load more),
    gets this server's services, then `prepare(spec, module)`. The counting function reads its
    table at init: its first instance, loaded here, is the one the pump (one batch at a time)
    keeps invoking."""
    from goals_conversions_local.runtime import Functions
    from goals_conversions_local.server import LocalApi, make_server

    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        settings = Settings.from_env()  # this server's tables, not those the process built first

        def with_services(spec: Any, module: Any) -> None:
            if hasattr(module, "app"):  # clients of its own, as each container builds
                services = Services.from_env(settings)
                module.app.dependency_overrides[get_services] = lambda: services
            if prepare is not None:
                prepare(spec, module)

        functions = Functions(TEMPLATE, prepare=with_services)
        api = LocalApi(TEMPLATE, functions, cors_origins)
        handlers = {spec.short_name: functions.module(spec) for spec in TEMPLATE.functions()}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
    pump = StreamPump(TEMPLATE, functions, environment["DATA_TABLE_NAME"], embedded=not EXTERNAL)
    PUMPS.append(pump)
    server = make_server(api, "127.0.0.1", 0, access_log=None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        yield SimpleNamespace(url=url, handlers=handlers, functions=functions, pump=pump, server=server)
    finally:
        server.shutdown()
        server.server_close()
        PUMPS.remove(pump)


def function_modules() -> list[Any]:
    """The API functions' handler modules, as the tests import them."""
    names = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))
    modules = [importlib.import_module(f"functions.{name}.app") for name in names]
    return [module for module in modules if hasattr(module, "app")]


@pytest.fixture(scope="module")
def tables(request: Any, dynamodb: Any) -> Iterator[dict[str, str]]:
    """Tables of the test module's own, which every API function's handler uses meanwhile.

    moto walks a whole table on every query of an index, so a table per test module keeps each
    query small; it also keeps modules apart. Removed at the end of the module."""
    prefix = "".join(part.title() for part in request.module.__name__.split(".")[-1].split("_"))
    environment = own_tables(dynamodb, prefix)
    settings = dataclasses.replace(
        Settings.from_env(),
        data_table_name=environment["DATA_TABLE_NAME"],
        rate_limit_table_name=environment["RATE_LIMIT_TABLE_NAME"],
        idempotency_table_name=environment["IDEMPOTENCY_TABLE_NAME"],
    )
    modules = function_modules()
    for module in modules:  # a client per function, as in Lambda
        services = Services.from_env(settings, dynamodb_client(settings.dynamodb_timeout_seconds))
        module.app.dependency_overrides[get_services] = lambda services=services: services
    pump = counting_pump(environment["DATA_TABLE_NAME"])
    PUMPS.append(pump)
    yield environment
    PUMPS.remove(pump)
    for module in modules:
        module.app.dependency_overrides.pop(get_services, None)
    for table in environment.values():
        dynamodb.delete_table(TableName=table)


@pytest.fixture(scope="module")
def repository(tables: dict[str, str], dynamodb: Any) -> Repository:
    return Repository.build(dynamodb, tables["DATA_TABLE_NAME"])


class Tenant:
    """A user with an API key, two websites (normal, lightweight), goals and tracking data."""

    def __init__(self, repository: Repository, rate_limit: int | None = 0, status: str = "active"):
        self.repository = repository
        self.user_id = new_id()
        self.api_key = f"key-{self.user_id}-{os.urandom(6).hex()}"
        ISSUED_KEYS.append(self.api_key)
        self.website_id, self.lightweight_website_id = new_id(), new_id()
        self.goal_id, self.second_goal_id, self.lightweight_goal_id = new_id(), new_id(), new_id()
        self.visitor_id, self.other_visitor_id = new_id(), new_id()
        self.session_id, self.other_session_id = new_id(), new_id()
        self.event_id, self.other_event_id = new_id(), new_id()
        user: dict[str, Any] = {"user_id": self.user_id, "api_key": self.api_key, "status": status}
        if rate_limit is not None:
            user["rate_limit_per_minute"] = rate_limit
        w, lw = self.website_id, self.lightweight_website_id
        load_seed(
            repository,
            {
                "users": [user],
                "websites": [
                    {"website_id": w, "user_id": self.user_id, "host": "a.example", "tracking_mode": "normal"},
                    {"website_id": lw, "user_id": self.user_id, "host": "b.example", "tracking_mode": "lightweight"},
                ],
                "goals": [
                    {"goal_id": self.goal_id, "website_id": w, "type": "custom", "name": "Signup", "key": "signup"},
                    {"goal_id": self.second_goal_id, "website_id": w, "type": "pageview", "name": "Buy", "path": "/ok"},
                    {"goal_id": self.lightweight_goal_id, "website_id": lw, "type": "custom", "name": "News"},
                ],
                "visitors": [{"visitor_id": v, "website_id": w} for v in (self.visitor_id, self.other_visitor_id)],
                "sessions": [
                    {"session_id": self.session_id, "website_id": w, "visitor_id": self.visitor_id},
                    {"session_id": self.other_session_id, "website_id": w, "visitor_id": self.other_visitor_id},
                ],
                "events": [
                    {"event_id": self.event_id, "website_id": w, "session_id": self.session_id},
                    {"event_id": self.other_event_id, "website_id": w, "session_id": self.other_session_id},
                ],
            },
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def import_conversions(self, rows: list[dict[str, Any]]) -> list[int]:
        """Import conversions with ids as the service would give them at their datetimes (unique
        within the run, growing with datetime and, for one datetime, in the given order), then
        let the counts settle."""
        rows = [{"id": import_id(row["datetime"]), **row} for row in rows]
        load_seed(self.repository, {"conversions": rows})
        settle()
        return [row["id"] for row in rows]


def import_id(when: str) -> int:
    """An id for a conversion imported at `when`, as a create at that second could have drawn."""
    moment = datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return ids.first_id_at(moment) + next(_conversion_draws)


@pytest.fixture
def tenant(repository: Repository) -> Tenant:
    return Tenant(repository)


@pytest.fixture
def other_tenant(repository: Repository) -> Tenant:
    return Tenant(repository)


@pytest.fixture
def make_tenant(repository: Repository):
    def make(**kwargs: Any) -> Tenant:
        return Tenant(repository, **kwargs)

    return make


# -- API Gateway events into the handlers -----------------------------------------------------


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def api_event(
    name: str,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, Any] | None = None,
    conversion_id: Any = None,
    form: dict[str, Any] | None = None,
    json_body: Any = None,
    raw_body: str | bytes | None = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    """One of events/*.json (HTTP API, payload 2.0) with only what the test is about replaced.

    `headers` replace the event's Authorization header (pass {} for none); `form` sends an
    urlencoded body, `json_body` a JSON one, `raw_body` exactly the given body.
    """
    event = copy.deepcopy(load_event(name))
    base = {n: v for n, v in event["headers"].items() if n not in ("authorization", "content-type", "content-length")}
    all_headers = {**base, **{n.lower(): v for n, v in (headers or {}).items()}}
    body: str | None = event.get("body")
    is_base64 = event.get("isBase64Encoded", False)
    if form is not None:
        body, is_base64, content_type = urlencode(form), False, content_type or "application/x-www-form-urlencoded"
    elif json_body is not None:
        body, is_base64, content_type = json.dumps(json_body), False, content_type or "application/json"
    elif raw_body is not None:
        if isinstance(raw_body, bytes):
            body, is_base64 = base64.b64encode(raw_body).decode(), True
        else:
            body, is_base64 = raw_body, False
    elif "content-type" in event["headers"] and content_type is None:
        content_type = event["headers"]["content-type"]
    if content_type is not None:
        all_headers["content-type"] = content_type
    event["headers"] = all_headers
    event["body"], event["isBase64Encoded"] = body, is_base64
    if body is None:
        event.pop("body")
    if query is not None:
        query = {k: str(v) for k, v in query.items()}
        event["rawQueryString"] = urlencode(query)
        event["queryStringParameters"] = query
        if not query:
            del event["queryStringParameters"]
    if conversion_id is not None:
        event["pathParameters"] = {"conversion_id": str(conversion_id)}
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/api/goals-conversions/{conversion_id}"
    return event


def goal_event(name: str, tenant: Any, goal_id: Any, **kwargs: Any) -> dict[str, Any]:
    """`api_event` for a goal's path (/api/goals/{goal_id}), as `tenant`."""
    event = api_event(name, headers=tenant.auth, **kwargs)
    event["pathParameters"] = {"goal_id": str(goal_id)}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/api/goals/{goal_id}"
    return event


class Result:
    """A handler's response (payload 2.0), decoded."""

    def __init__(self, response: dict[str, Any]):
        self.raw = response
        self.status = response["statusCode"]
        self.headers = {n.lower(): v for n, v in (response.get("headers") or {}).items()}
        self.text = response.get("body") or ""
        self.json = json.loads(self.text) if self.text else None

    def __repr__(self) -> str:
        return f"<Result {self.status} {self.text[:200]}>"


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return LOCAL_REMAINING_MILLIS


@contextmanager
def services_for(module: Any, services: Any) -> Iterator[None]:
    """Run a function module's handler with other services (clients, repositories, gate), through
    the dependency overrides of its resolver; the overrides before are back afterwards."""
    overrides = module.app.dependency_overrides
    before = overrides.get(get_services)
    overrides[get_services] = lambda: services
    try:
        yield
    finally:
        if before is None:
            overrides.pop(get_services, None)
        else:
            overrides[get_services] = before


def services_of(module: Any) -> Any:
    """The services a function module's handler uses now (its own, or the test module's)."""
    return module.app.dependency_overrides.get(get_services, get_services)()


def with_conversions(module: Any, conversions: Any) -> Any:
    """The module's services with `conversions` in place of its conversions repository."""
    services = services_of(module)
    repository = copy.copy(services.repository)
    repository.conversions = conversions  # in place of the part it would build
    return dataclasses.replace(services, repository=repository)


def invoke(handler_module: Any, event: dict[str, Any]) -> Result:
    """Run a handler on an event; the counts then settle (the stream is drained)."""
    result = Result(handler_module.lambda_handler(event, LambdaContext()))
    settle()
    return result


# -- HTTP into the local server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def local_api(tables: dict[str, str]) -> Iterator[str]:
    """The local API Gateway (same code as `goals-conversions serve`) on a free port, over the
    test module's tables."""
    with local_server(tables) as (url, _):
        yield url
