"""HTTP into the local API Gateway (`goals-conversions serve`), and the CLI commands."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import ROOT

EVENTS = sorted((ROOT / "events").glob("*.json"))


def request(url, method="GET", headers=None, body=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_api_round_trip_over_http(local_api, tenant):
    auth = tenant.auth
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="goal_id"\r\n\r\n{tenant.goal_id}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="visitor_id"\r\n\r\n{tenant.visitor_id}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    status, _, created = request(
        f"{local_api}/api/goals-conversions",
        "POST",
        {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        body,
    )
    assert status == 201
    conversion = json.loads(created)["data"]

    status, headers, listed = request(f"{local_api}/api/goals-conversions/?results_per_page=10", headers=auth)
    assert status == 200 and headers["Content-Type"] == "application/json"
    page = json.loads(listed)
    assert page["data"] == [conversion]
    assert page["links"]["self"] == f"{local_api}/api/goals-conversions?results_per_page=10&page=1"

    status, _, fetched = request(f"{local_api}/api/goals-conversions/{conversion['id']}/", headers=auth)
    assert status == 200 and json.loads(fetched)["data"] == conversion

    status, _, updated = request(
        f"{local_api}/api/goals-conversions/{conversion['id']}",
        "POST",
        {**auth, "Content-Type": "application/x-www-form-urlencoded"},
        b"visitor_id=",
    )
    assert status == 200 and json.loads(updated)["data"]["visitor_id"] is None

    status, _, deleted = request(f"{local_api}/api/goals-conversions/{conversion['id']}", "DELETE", auth)
    assert status == 204 and deleted == b""
    status, _, _ = request(f"{local_api}/api/goals-conversions/{conversion['id']}", headers=auth)
    assert status == 404


def test_both_path_forms_answer_directly_without_redirect(local_api, tenant):
    for path in ("/api/goals-conversions", "/api/goals-conversions/"):
        status, _, _ = request(f"{local_api}{path}", headers=tenant.auth)
        assert status == 200


def test_errors_over_http_are_json_in_the_contract_format(local_api, tenant):
    status, headers, body = request(f"{local_api}/api/goals-conversions?results_per_page=7", headers=tenant.auth)
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "errors": [
            {
                "title": "results_per_page must be one of 10, 25, 50, 100, 250, 500, 1000",
                "status": 400,
                "source": {"parameter": "results_per_page"},
            }
        ]
    }
    status, _, body = request(f"{local_api}/api/goals-conversions")
    assert status == 401 and json.loads(body)["errors"][0]["status"] == 401
    status, _, body = request(f"{local_api}/api/nothing-here", headers=tenant.auth)
    assert status == 404 and json.loads(body)["errors"][0]["status"] == 404


def test_rate_limit_headers_reach_the_http_client(local_api, make_tenant):
    limited = make_tenant(rate_limit=100)
    status, headers, _ = request(f"{local_api}/api/goals-conversions", headers=limited.auth)
    assert status == 200
    assert headers["X-RateLimit-Limit"] == "100" and headers["X-RateLimit-Remaining"] == "99"


def _cli(*args, cwd=ROOT, env_overrides=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
    env.update(env_overrides or {})
    command = [sys.executable, "-m", "goals_conversions_local.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


EXPECTED_STATUS = {
    "list_conversions": 200,
    "get_conversion": 200,
    "create_conversion": 201,
    "update_conversion": 200,
    "delete_conversion": 204,
    "conversion_statistics": 200,
    "list_changes": 200,
    "list_goals": 200,
    "get_goal": 200,
    "create_goal": 201,
    "update_goal": 200,
    "delete_goal": 204,
}


@pytest.mark.parametrize("event_file", EVENTS, ids=[e.stem for e in EVENTS])
def test_invoke_runs_each_event_file_on_the_embedded_database(event_file):
    result = _cli("invoke", event_file.stem, "--event", str(event_file))
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == EXPECTED_STATUS[event_file.stem]


def test_invoke_names_the_known_functions_when_one_is_unknown():
    result = _cli("invoke", "nope", "--event", str(EVENTS[0]))
    assert result.returncode == 2
    assert "ListConversionsFunction" in result.stderr


def test_files_that_cannot_be_read_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    missing = _cli("invoke", "list_conversions", "--event", str(tmp_path / "missing.json"))
    invalid = _cli("import", str(broken), env_overrides={"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"})
    assert (missing.returncode, invalid.returncode) == (2, 2)
    assert missing.stderr == f"goals-conversions invoke: {tmp_path / 'missing.json'}: No such file or directory\n"
    assert invalid.stderr.startswith(f"goals-conversions import: {broken}: not valid JSON (")
    assert invalid.stderr.count("\n") == 1


def test_import_loads_a_seed_into_the_configured_endpoint(tmp_path, tenant, tables):
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps({"visitors": [{"visitor_id": 880000 + tenant.user_id, "website_id": tenant.website_id}]})
    )
    endpoint = {"AWS_ENDPOINT_URL_DYNAMODB": os.environ["AWS_ENDPOINT_URL_DYNAMODB"], **tables}
    result = _cli("import", str(seed), env_overrides=endpoint)
    assert result.returncode == 0, result.stderr
    assert "1 visitors" in result.stdout
    assert tenant.repository.accounts.entity("VISITOR", 880000 + tenant.user_id)["website_id"] == tenant.website_id


def test_import_refuses_a_bad_seed_listing_every_problem(tmp_path):
    seed = tmp_path / "bad.json"
    seed.write_text(
        json.dumps(
            {
                "goals": [{"goal_id": 770001, "website_id": 770002, "type": "custom", "name": "x"}],
                "visitors": [{"visitor_id": 770003, "website_id": 770004}],
            }
        )
    )
    result = _cli(
        "import", str(seed), env_overrides={"AWS_ENDPOINT_URL_DYNAMODB": os.environ["AWS_ENDPOINT_URL_DYNAMODB"]}
    )
    assert result.returncode == 1
    assert "website 770002 does not exist" in result.stderr
    assert "website 770004 does not exist" in result.stderr


def test_serve_prints_listening_and_serves_the_demo_data(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
    command = [
        sys.executable,
        "-m",
        "goals_conversions_local.cli",
        "serve",
        "--port",
        "0",
        "--seed",
        str(ROOT / "seeds" / "demo.json"),
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("Listening on http://127.0.0.1:")
        base = line.removeprefix("Listening on ")
        status, _, body = request(f"{base}/api/goals-conversions/1", headers={"Authorization": "Bearer demo-key"})
        assert status == 200
        assert json.loads(body)["data"]["datetime"] == "2026-05-17 03:07:56"
        # The embedded database's endpoint, printed, takes an import into the running server.
        startup = [process.stderr.readline() for _ in range(3)]  # seeded, API docs, DynamoDB
        [database] = [line.split()[1] for line in startup if line.startswith("DynamoDB: ")]
        seed = tmp_path / "user.json"
        seed.write_text(json.dumps({"users": [{"user_id": 990001, "api_key": "imported-key", "status": "active"}]}))
        imported = _cli("import", str(seed), env_overrides={"AWS_ENDPOINT_URL_DYNAMODB": database})
        assert imported.returncode == 0 and imported.stdout.startswith("Imported 1 users"), imported.stderr
        status, _, body = request(f"{base}/api/goals-conversions", headers={"Authorization": "Bearer imported-key"})
        assert status == 200 and json.loads(body)["data"] == []
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_with_a_bad_seed_says_why_and_serves_nothing(tmp_path):
    """serve loads its seed in a child `import`; the child's refusal is serve's."""
    seed = tmp_path / "bad.json"
    seed.write_text(json.dumps({"visitors": [{"visitor_id": 770005, "website_id": 770006}]}))
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
    command = [sys.executable, "-m", "goals_conversions_local.cli", "serve", "--port", "0", "--seed", str(seed)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "website 770006 does not exist" in result.stderr
    assert "Listening" not in result.stdout


def test_readme_curl_lines_work_verbatim_against_the_demo_server():
    """Every curl in the README, run as written against `serve` on port 3000's demo data."""
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```sh\n")[1:]]
    commands = [c.strip() for b in blocks for c in b.split("\n\n") if c.strip().startswith("curl")]
    assert len(commands) >= 7
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "goals_conversions_local.cli",
            "serve",
            "--port",
            str(port),
            "--seed",
            str(ROOT / "seeds" / "demo.json"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().startswith("Listening on")
        for command in commands:
            command = command.replace("127.0.0.1:3000", f"127.0.0.1:{port}")
            command = command.replace("curl ", "curl --silent --show-error --write-out '\\n%{http_code}' ", 1)
            result = subprocess.run(
                ["bash", "-c", command.replace("\\\n", " ")], capture_output=True, text=True, timeout=30
            )
            assert result.returncode == 0, (command, result.stderr)
            status = int(result.stdout.rsplit("\n", 1)[-1])
            expected = 400 if "name=Example" in command else None
            assert status == expected if expected else status in (200, 201, 204), (command, result.stdout)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port():
    from goals_conversions_local.embedded import free_port

    return free_port()
