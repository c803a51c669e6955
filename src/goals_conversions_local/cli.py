"""`goals-conversions serve | invoke | import | openapi | replay-failures`: the API locally, one handler, a seed
load, the OpenAPI document, or the counting function's failures queue replayed."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from goals_conversions_local.template import PROJECT_ROOT, Template

if TYPE_CHECKING:
    from goals_conversions_local.runtime import Functions
    from goals_conversions_local.streams import StreamPump

DEMO_SEED = PROJECT_ROOT / "seeds" / "demo.json"


def _data_table() -> str:
    return os.environ.get("DATA_TABLE_NAME", "DataTable")


def _client() -> Any:
    from conversions_core.repository.dynamo import dynamodb_client
    from conversions_core.settings import Settings

    return dynamodb_client(Settings.from_env().dynamodb_timeout_seconds)


def local_template() -> Template:
    """The template, its functions' environment exported, and metrics off: EMF lines would mix
    with what the tools print on stdout (POWERTOOLS_METRICS_DISABLED=false shows them)."""
    from goals_conversions_local.runtime import apply_environment

    template = Template()
    apply_environment(template)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    return template


class InputFileError(Exception):
    """A file named on the command line that cannot be read, or is not JSON."""


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(), parse_float=Decimal)  # amounts stay exact
    except OSError as error:
        raise InputFileError(f"{path}: {error.strerror or error}") from None
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        raise InputFileError(f"{path}: not valid JSON ({error})") from None


def load_seed_file(path: Path, client: Any = None) -> dict[str, int]:
    return load_seed_data(read_json_file(path), client)


def load_seed_data(data: Any, client: Any = None) -> dict[str, int]:
    from conversions_core.repository import Repository
    from conversions_core.seed import load_seed
    from conversions_core.settings import Settings

    retention = Settings.from_env().retention_days  # imported conversions expire as created ones do
    return load_seed(Repository.build(client or _client(), _data_table(), retention_days=retention), data)


def prepare(
    seed: Path | None, seed_beside: bool = False, engine: str = "embedded"
) -> tuple[Template, Functions, StreamPump]:
    """Environment from the template, DynamoDB (embedded unless configured or `engine` says
    DynamoDB Local), tables, the stream's counting function, and the seed (its counts settled).

    With `seed_beside`, an embedded database's seed is loaded by a child process."""
    from goals_conversions_local.embedded import (
        dynamodb_endpoint,
        ensure_event_buses,
        ensure_queues,
        ensure_tables,
        serves_here,
    )
    from goals_conversions_local.runtime import Functions
    from goals_conversions_local.streams import StreamPump

    template = local_template()
    _, endpoint = dynamodb_endpoint(engine)
    embedded = serves_here(endpoint)
    client = _client()
    ensure_tables(template, client)
    ensure_queues(template)
    ensure_event_buses(template)
    functions = Functions(template)
    pump = StreamPump(template, functions, embedded=embedded)
    if seed:
        if seed_beside and embedded:
            pump.start()  # counts what the child writes, as it writes
            try:
                counts = _import_beside(seed)
            finally:
                pump.stop()
            pump.drain()
        else:
            counts = load_seed_file(seed, client)
            pump.drain()
        print(
            f"Seeded {endpoint} from {seed}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n), file=sys.stderr
        )
    return template, functions, pump


def _import_beside(seed: Path) -> dict[str, int]:
    """`goals-conversions import --no-count SEED` in a child process, on this process's embedded
    database, while this process's pump counts: the import's client runs on one core, the
    database and the counting function on the other."""
    command = [sys.executable, "-m", "goals_conversions_local.cli", "import", "--json", "--no-count", str(seed)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise SystemExit(done.returncode)  # the child said why on stderr
    return json.loads(done.stdout)


def serve(args: argparse.Namespace) -> int:
    from goals_conversions_local.cors import origins_option
    from goals_conversions_local.server import LocalApi, bind

    try:  # the port first: when it is taken, nothing is started or seeded
        httpd = bind(args.host, args.port)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        print(
            f"goals-conversions serve: cannot listen on {args.host}:{args.port}: {reason} (set PORT or --port)",
            file=sys.stderr,
        )
        return 2
    try:
        template, functions, pump = prepare(args.seed, seed_beside=True, engine=args.engine)
        origins = origins_option(args.cors_origin)
        httpd.api, httpd.access_log = LocalApi(template, functions, origins), sys.stderr
        for spec in template.functions():
            functions.handler(spec)  # import every handler now, as warm containers
        # A request's thread gets the GIL back within a millisecond of each socket read or write
        # while the pump runs a long cascade (Python's default is 5 ms, paid at every read).
        sys.setswitchinterval(0.001)
        pump.start()  # counts settle within a second of a write, as the deployed stream does
        print(f"Listening on http://{args.host}:{httpd.server_address[1]}", flush=True)
        print(f"API docs: http://{args.host}:{httpd.server_address[1]}/docs", file=sys.stderr)
        if origins:
            print("CORS: browser apps from " + ", ".join(origins), file=sys.stderr)
        if args.events:
            _print_events(template)
        database = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
        print(f"DynamoDB: {database} (AWS_ENDPOINT_URL_DYNAMODB for goals-conversions import)", file=sys.stderr)
        queues = os.environ.get("AWS_ENDPOINT_URL_SQS")
        if queues and queues != database:  # DynamoDB Local serves no SQS: the queues are elsewhere
            print(f"Queues: {queues} (AWS_ENDPOINT_URL_SQS for goals-conversions replay-failures)", file=sys.stderr)
        sys.stderr.flush()
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


def _print_events(template: Template) -> None:
    """Print each conversion event published from now on (not the seed's), one JSON line on
    stdout, as EventBridge delivers it to a rule's target (the local queue)."""
    import threading

    from goals_conversions_local.embedded import deliver_events_to_queue, received_events

    if not os.environ.get("EVENT_BUS_NAME"):
        print("Events: off (no local EventBridge endpoint: set AWS_ENDPOINT_URL_EVENTBRIDGE)", file=sys.stderr)
        return
    queue = deliver_events_to_queue(template)

    def run() -> None:
        while True:
            for event in received_events(queue, wait_seconds=1):
                print(json.dumps(event, separators=(",", ":")), flush=True)

    threading.Thread(target=run, name="events", daemon=True).start()


def invoke(args: argparse.Namespace) -> int:
    seed = args.seed
    if seed is None and (args.engine != "embedded" or not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")):
        seed = DEMO_SEED  # a database the command starts is empty; the events use the demo key
    event = read_json_file(args.event)  # before the database starts: a wrong path fails at once
    template, functions, pump = prepare(seed, engine=args.engine)
    try:
        spec = template.function(args.function)
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    if spec.routes:  # an API function: the event as API Gateway delivers it (header case, query)
        from goals_conversions_local.events import as_delivered

        event = as_delivered(event)
    _log_to_stderr()
    response = functions.invoke(spec, event)
    pump.drain()  # what the write does to the counts, as the deployed stream would
    print(json.dumps(response, indent=2))
    return 0


def _log_to_stderr() -> None:
    """The functions' log lines on stderr, so that stdout holds the response alone (as with
    `sam local invoke`)."""
    import logging

    from conversions_core.observability import logger

    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(sys.stderr)


def import_seed(args: argparse.Namespace) -> int:
    from conversions_core.seed import SeedError
    from goals_conversions_local.embedded import ensure_tables, use_local_credentials

    data = read_json_file(args.file)  # before any connection: a wrong path fails at once
    template = local_template()
    local = bool(os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))
    if local:
        use_local_credentials()
        ensure_tables(template, _client())
    try:
        counts = load_seed_data(data)
    except SeedError as error:
        print(error, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(counts))
    else:
        print("Imported " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    if local and args.count:  # on AWS the deployed counting function reads the stream
        from goals_conversions_local.embedded import ensure_event_buses
        from goals_conversions_local.streams import StreamPump

        ensure_event_buses(template)  # the counting function's bus, or events off with no local EventBridge
        records = StreamPump(template).drain()
        print(f"Counted: {records} stream records handled", file=sys.stderr if args.json else sys.stdout)
    return 0


def replay_failures(args: argparse.Namespace) -> int:
    """The failures queue's records through the counting function: in this process on the local
    database (AWS_ENDPOINT_URL_DYNAMODB, e.g. serve's), else the deployed function on AWS."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from goals_conversions_local.replay import Invoke, Replayer, lambda_invoker, stack_resources
    from goals_conversions_local.streams import streams_client

    template = local_template()
    [spec] = template.stream_functions()
    assert spec.stream is not None
    queue, function = args.queue, args.function
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        from goals_conversions_local.embedded import use_local_credentials
        from goals_conversions_local.runtime import Functions

        use_local_credentials()
        os.environ.setdefault("AWS_ENDPOINT_URL_SQS", os.environ["AWS_ENDPOINT_URL_DYNAMODB"])  # moto serves both
        functions = Functions(template)
        queue = queue or os.environ["FAILURES_QUEUE_URL"]
        invoke: Invoke = partial(functions.invoke, spec)
    else:
        try:
            if args.stack:
                found = stack_resources(
                    boto3.client("cloudformation"), args.stack, spec.environment["FAILURES_QUEUE_URL"], spec.name
                )
                queue, function = queue or found[0], function or found[1]
        except (BotoCoreError, ClientError) as error:
            print(f"goals-conversions replay-failures: stack {args.stack}: {error}", file=sys.stderr)
            return 2
        if not (queue and function):
            print(
                "goals-conversions replay-failures: on AWS, name the stack (--stack) or the queue and the function"
                " (--queue, --function); locally, set AWS_ENDPOINT_URL_DYNAMODB (serve prints it)",
                file=sys.stderr,
            )
            return 2
        invoke = lambda_invoker(boto3.client("lambda"), function)
    sqs = boto3.client("sqs")
    try:
        url = queue if "://" in queue else sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except (BotoCoreError, ClientError) as error:
        print(f"goals-conversions replay-failures: no queue {queue}: {error}", file=sys.stderr)
        return 2
    _log_to_stderr()
    report = Replayer(sqs, url, invoke, streams_client(), spec.stream.accepts).run()
    print("\n".join(report.lines()))
    return 1 if report.kept else 0


def openapi(args: argparse.Namespace) -> int:
    from goals_conversions_local.embedded import use_local_credentials
    from goals_conversions_local.openapi import build_document, render

    template = local_template()
    use_local_credentials()  # handler modules build a client at import; nothing is called
    text = render(build_document(template))
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


ENGINE_OPTION: dict[str, Any] = {
    "choices": ("embedded", "dynamodb-local"),
    "default": "embedded",
    "help": "the database when AWS_ENDPOINT_URL_DYNAMODB is unset: moto in this process (embedded), or "
    "AWS's DynamoDB Local started for this command (`make dynamodb-local` installs it); dynamodb-local "
    "starts one even when AWS_ENDPOINT_URL_DYNAMODB is set",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="goals-conversions", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="serve the API locally")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=3000)
    serve_parser.add_argument("--seed", type=Path, help="seed file to load first")
    serve_parser.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="let browser apps from this origin call the API (CORS), as CorsAllowedOrigins does deployed;"
        " repeat it or give a comma-separated list; * for any",
    )
    serve_parser.add_argument("--engine", **ENGINE_OPTION)
    serve_parser.add_argument(
        "--events", action="store_true", help="print each conversion event published (one JSON line on stdout)"
    )
    serve_parser.set_defaults(run=serve)

    invoke_parser = commands.add_parser("invoke", help="run one function's handler on an event file")
    invoke_parser.add_argument("function", help="logical id (ListConversionsFunction) or folder (list_conversions)")
    invoke_parser.add_argument("--event", required=True, type=Path)
    invoke_parser.add_argument(
        "--seed", type=Path, help=f"seed file (default on the embedded database: {DEMO_SEED.name})"
    )
    invoke_parser.add_argument("--engine", **ENGINE_OPTION)
    invoke_parser.set_defaults(run=invoke)

    import_parser = commands.add_parser("import", help="load a seed file into the configured DynamoDB")
    import_parser.add_argument("file", type=Path)
    import_parser.add_argument("--json", action="store_true", help="print what was imported as JSON")
    import_parser.add_argument(
        "--no-count", dest="count", action="store_false", help="leave the stream to another consumer (serve's)"
    )
    import_parser.set_defaults(run=import_seed)

    replay_parser = commands.add_parser(
        "replay-failures",
        help="re-drive the counting function's failures queue through it (each record counted once)",
        description="Replays CountingFailuresQueue: records set aside and batches Lambda gave up on go through the"
        " counting function again; a message is deleted once applied, and one that still cannot be replayed stays"
        " and is reported (exit status 1). Locally (AWS_ENDPOINT_URL_DYNAMODB set, e.g. to serve's database) the"
        " function runs in this process; otherwise the deployed one is invoked.",
    )
    replay_parser.add_argument("--stack", help="on AWS: the deployed stack, whose queue and counting function to use")
    replay_parser.add_argument(
        "--queue", help="the queue's URL or name (default: the stack's, or locally the template's)"
    )
    replay_parser.add_argument("--function", help="on AWS: the counting function's name (default: the stack's)")
    replay_parser.set_defaults(run=replay_failures)

    openapi_parser = commands.add_parser("openapi", help="print the OpenAPI document generated from the handlers")
    openapi_parser.add_argument("--output", type=Path, help="write it to this file instead")
    openapi_parser.set_defaults(run=openapi)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except InputFileError as error:
        print(f"goals-conversions {args.command}: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from conversions_core.seed import SeedError
        from goals_conversions_local.dynamodb_local import NotInstalled

        if isinstance(error, SeedError):
            print(error, file=sys.stderr)
            return 1
        if isinstance(error, NotInstalled):
            print(f"goals-conversions {args.command}: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
