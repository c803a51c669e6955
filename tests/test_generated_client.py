"""A client generated from the OpenAPI document (openapi-python-client) runs the five
conversion operations against the local server: the document is good enough to build on."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEMPLATE, settle
from goals_conversions_local.openapi import build_document, render

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client_package(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("generated")
    document = folder / "openapi.json"
    document.write_text(render(build_document(TEMPLATE)))
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    generated = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(document)]
        + ["--output-path", str(folder / "goal_conversions_client"), "--meta", "none"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(folder))
    yield "goal_conversions_client"
    sys.path.remove(str(folder))


def test_a_generated_client_runs_the_five_operations(client_package, local_api, tenant):
    package = importlib.import_module(client_package)
    api = importlib.import_module(f"{client_package}.api.conversions")
    models = importlib.import_module(f"{client_package}.models")
    modules = {
        name: importlib.import_module(f"{api.__name__}.{name}")
        for name in (
            "create_conversion",
            "get_conversion",
            "list_conversions",
            "update_conversion",
            "delete_conversion",
        )
    }
    client = package.AuthenticatedClient(base_url=local_api, token=tenant.api_key)

    created = modules["create_conversion"].sync(
        client=client, body=models.ConversionCreate(goal_id=tenant.goal_id, visitor_id=tenant.visitor_id)
    )
    assert isinstance(created, models.ConversionBody)
    conversion = created.data
    assert conversion.goal_id == tenant.goal_id and conversion.visitor_id == tenant.visitor_id
    assert conversion.session_id is None  # required and nullable: present, null

    fetched = modules["get_conversion"].sync(conversion.id, client=client)
    assert fetched.data.to_dict() == conversion.to_dict()

    settle()
    ten = models.ListConversionsResultsPerPage(10)
    page = modules["list_conversions"].sync(client=client, goal_id=tenant.goal_id, results_per_page=ten)
    assert [c.id for c in page.data] == [conversion.id] and page.meta.total == 1
    assert f"goal_id={tenant.goal_id}" in page.links.first and page.links.first.endswith("results_per_page=10&page=1")

    updated = modules["update_conversion"].sync(
        conversion.id, client=client, body=models.ConversionUpdate(goal_id=tenant.second_goal_id)
    )
    assert updated.data.goal_id == tenant.second_goal_id

    deleted = modules["delete_conversion"].sync_detailed(conversion.id, client=client)
    assert deleted.status_code == 204
    missing = modules["get_conversion"].sync(conversion.id, client=client)
    assert isinstance(missing, models.Errors) and missing.errors[0].status == 404
