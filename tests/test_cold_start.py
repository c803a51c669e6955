"""What a function does in Lambda's init: everything its first request would otherwise build.

Init runs with a full vCPU; a request runs at the function's share of one (a seventh at 256 MB),
so work deferred from init into the first request costs a cold start several times over.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import EVENTS, ROOT

API_FUNCTIONS = sorted(
    path.parent.name for path in (ROOT / "functions").glob("*/app.py") if path.parent.name != "count_conversions"
)

# What opening the first connection to DynamoDB imports (the host name's IDNA codec).
FIRST_CONNECTION = {"encodings.idna", "stringprep", "unicodedata"}

FIRST_REQUEST = """\
import json, os, sys
from goals_conversions_local.runtime import LambdaContext

with open(os.environ["FIRST_EVENT"]) as f:
    event = json.load(f)
event["headers"]["authorization"] = "Bearer " + os.environ["FIRST_KEY"]
import app
from conversions_core.powertools_compat import routes, validation_built
before = set(sys.modules)
built = bool(routes(app.app)) and all(validation_built(route) for route in routes(app.app))
response = app.lambda_handler(event, LambdaContext("first", "first"))
print(json.dumps({"status": response["statusCode"], "imported": sorted(set(sys.modules) - before), "built": built}))
"""


@pytest.mark.parametrize("name", API_FUNCTIONS)
def test_the_first_request_imports_nothing_init_could(name, tables, tenant):
    function = ROOT / "functions" / name
    environment = {
        **os.environ,
        **tables,
        "PYTHONPATH": os.pathsep.join([str(function), str(ROOT / "layers" / "conversions_core")]),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "FIRST_EVENT": str(EVENTS / f"{name}.json"),
        "FIRST_KEY": tenant.api_key,
    }
    run = subprocess.run(
        [sys.executable, "-c", FIRST_REQUEST], cwd=function, env=environment, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["status"] not in (401, 429, 500), answer  # the request reached its route
    assert set(answer["imported"]) <= FIRST_CONNECTION
    assert answer["built"], "the route's validation is built on its first request, not at init"
