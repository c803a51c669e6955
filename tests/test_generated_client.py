"""A client generated from the OpenAPI document (openapi-python-client, the project's pin) imports
whole, names its operations and body models plainly, and runs every operation through every body
model (JSON, urlencoded, multipart) against the local server: the document is good enough to
build on."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from conftest import TEMPLATE, settle
from goals_conversions_local.openapi import build_document, render

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow
PACKAGE = "goal_conversions_client"
OPERATIONS = {
    "conversions": {
        "list_conversions",
        "get_conversion",
        "create_conversion",
        "update_conversion",
        "delete_conversion",
        "conversion_statistics",
        "list_changes",
    },
    "goals": {"list_goals", "get_goal", "create_goal", "update_goal", "delete_goal"},
}


@pytest.fixture(scope="module")
def client_package(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("generated")
    document = folder / "openapi.json"
    document.write_text(render(build_document(TEMPLATE)))
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    generated = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(document)]
        + ["--output-path", str(folder / PACKAGE), "--meta", "none"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(folder))
    yield PACKAGE
    sys.path.remove(str(folder))


def test_every_module_of_the_generated_client_imports(client_package):
    package = importlib.import_module(client_package)
    names = [info.name for info in pkgutil.walk_packages(package.__path__, f"{client_package}.")]
    for name in names:
        importlib.import_module(name)  # a NameError or SyntaxError here is a document a client cannot use
    operations = {
        tag: {name.rsplit(".", 1)[1] for name in names if name.startswith(f"{client_package}.api.{tag}.")}
        for tag in OPERATIONS
    }
    assert operations == OPERATIONS  # each operation once: the trailing-slash paths are not declared again
    models = {name.rsplit(".", 1)[1] for name in names if name.startswith(f"{client_package}.models.")}
    for body in ("conversion_create", "conversion_update", "goal_create", "goal_update"):
        assert {body, f"{body}_form", f"{body}_multipart"} <= models
    # A goal's type is one class, not one per body model and form.
    assert "goal_type" in models and not {
        n for n in models if n.startswith(("goal_create", "goal_update")) and n.endswith("_type")
    }


def _client(client_package: str, local_api: str, api_key: str) -> SimpleNamespace:
    """The generated package's client and its modules, by operation name."""
    package = importlib.import_module(client_package)
    api = {
        name: importlib.import_module(f"{client_package}.api.{tag}.{name}")
        for tag, names in OPERATIONS.items()
        for name in names
    }
    return SimpleNamespace(
        client=package.AuthenticatedClient(base_url=local_api, token=api_key),
        models=importlib.import_module(f"{client_package}.models"),
        **api,
    )


def _ok(result: object, models: ModuleType) -> object:
    assert not isinstance(result, models.Errors), result.to_dict()
    return result


def test_every_conversion_operation_through_every_body_model(client_package, local_api, tenant):
    c = _client(client_package, local_api, tenant.api_key)
    m, client = c.models, c.client
    goal, refs = tenant.goal_id, {"visitor_id": tenant.visitor_id, "session_id": tenant.session_id}

    worth = {"value": "19.9", "currency": m.Currency.EUR}
    bodies = [
        m.ConversionCreate(goal_id=goal, event_id=tenant.event_id, **refs, **worth),
        m.ConversionCreateForm(goal_id=goal, event_id=tenant.event_id, **refs, **worth),
        m.ConversionCreateMultipart(goal_id=goal, event_id=tenant.event_id, **refs, **worth),
    ]
    created = [_ok(c.create_conversion.sync(client=client, body=body), m).data for body in bodies]
    for conversion in created:
        assert (conversion.goal_id, conversion.visitor_id, conversion.event_id) == (
            goal,
            refs["visitor_id"],
            tenant.event_id,
        )
        assert (conversion.value, conversion.currency) == ("19.90", "EUR")
        assert c.get_conversion.sync(conversion.id, client=client).data.to_dict() == conversion.to_dict()
    replay = c.create_conversion.sync(client=client, body=m.ConversionCreateForm(goal_id=goal), idempotency_key="k-1")
    assert (
        c.create_conversion.sync(
            client=client, body=m.ConversionCreateForm(goal_id=goal), idempotency_key="k-1"
        ).data.id
        == replay.data.id
    )

    settle()
    ten = m.ListConversionsResultsPerPage.VALUE_10
    page = _ok(
        c.list_conversions.sync(
            client=client, goal_id=goal, results_per_page=ten, order_type=m.ListConversionsOrderType.ASC
        ),
        m,
    )
    assert [conversion.id for conversion in page.data] == [conversion.id for conversion in created] + [replay.data.id]
    assert page.meta.total == 4 and page.links.first.endswith("order_type=ASC&results_per_page=10&page=1")
    start, end = created[0].datetime_[:10], replay.data.datetime_[:10]
    statistics = _ok(
        c.conversion_statistics.sync(
            client=client, goal_id=goal, datetime_start=f"{start} 00:00:00", datetime_end=f"{end} 23:59:59"
        ),
        m,
    )
    assert statistics.meta.total == 4 and sum(point.conversions for point in statistics.data) == 4
    assert statistics.meta.values.to_dict() == {"EUR": "59.70"}
    by_goal = _ok(
        c.conversion_statistics.sync(
            client=client,
            datetime_start=f"{start} 00:00:00",
            datetime_end=f"{end} 23:59:59",
            group_by=m.ConversionStatisticsGroupBy.GOAL,
        ),
        m,
    )
    assert [(row.goal_id, row.conversions) for row in by_goal.data] == [(goal, 4)]

    # Each body model moves a conversion and clears its references one by one (an event is its
    # session's, a session its visitor's): null in JSON, an empty field in a form.
    updates = {
        m.ConversionUpdate: None,
        m.ConversionUpdateForm: "",
        m.ConversionUpdateMultipart: "",
    }
    for conversion, (model, clear) in zip(created, updates.items(), strict=True):
        moved = _ok(
            c.update_conversion.sync(conversion.id, client=client, body=model(goal_id=tenant.second_goal_id)), m
        )
        assert moved.data.goal_id == tenant.second_goal_id and moved.data.event_id == tenant.event_id
        repriced = _ok(c.update_conversion.sync(conversion.id, client=client, body=model(value="21")), m)
        assert (repriced.data.value, repriced.data.currency) == ("21.00", "EUR")
        for field in ("event_id", "session_id", "visitor_id", "value"):
            cleared = _ok(c.update_conversion.sync(conversion.id, client=client, body=model(**{field: clear})), m)
            assert getattr(cleared.data, field) is None
        assert cleared.data.to_dict() | {"goal_id": goal} == {
            **conversion.to_dict(),
            **dict.fromkeys(refs, None),
            "event_id": None,
            "value": None,
            "currency": None,
        }

    # The goal's attributes are not offered; sent anyway, they are the 400 that says where they belong.
    body = m.ConversionUpdateMultipart()
    body.additional_properties["name"] = "Renamed"
    refused = c.update_conversion.sync(created[0].id, client=client, body=body)
    assert isinstance(refused, m.Errors) and refused.errors[0].source.parameter == "name"
    assert "change it on the goal" in refused.errors[0].title

    for conversion in [*created, replay.data]:
        assert c.delete_conversion.sync_detailed(conversion.id, client=client).status_code == 204
    missing = c.get_conversion.sync(created[0].id, client=client)
    assert isinstance(missing, m.Errors) and missing.errors[0].status == 404


def test_every_goal_operation_through_every_body_model(client_package, local_api, tenant):
    c = _client(client_package, local_api, tenant.api_key)
    m, client = c.models, c.client
    scroll = m.GoalType.SCROLL

    # Booleans as a Python client sends them: True and False (str() in a multipart form).
    bodies = [
        m.GoalCreate(website_id=tenant.website_id, type_=scroll, name="JSON goal", path="/a", scroll_percentage=50),
        m.GoalCreateForm(
            website_id=tenant.website_id,
            type_=scroll,
            name="Form goal",
            path="b",
            scroll_percentage=50,
            is_enabled=False,
        ),
        m.GoalCreateMultipart(
            website_id=tenant.website_id,
            type_=scroll,
            name="Multipart goal",
            path="/c",
            scroll_percentage=50,
            is_enabled=True,
        ),
    ]
    goals = [_ok(c.create_goal.sync(client=client, body=body), m).data for body in bodies]
    assert [(g.name, g.path, g.is_enabled, g.type_) for g in goals] == [
        ("JSON goal", "/a", True, scroll),
        ("Form goal", "/b", False, scroll),
        ("Multipart goal", "/c", True, scroll),
    ]
    for goal in goals:
        assert c.get_goal.sync(goal.id, client=client).data.to_dict() == goal.to_dict()

    # Each body model turns a scroll goal into a custom one (its path and percentage cleared:
    # null in JSON, an empty field in a form) and switches it off, then on.
    updates = {m.GoalUpdate: None, m.GoalUpdateForm: "", m.GoalUpdateMultipart: ""}
    for goal, (model, clear) in zip(goals, updates.items(), strict=True):
        changed = _ok(
            c.update_goal.sync(
                goal.id,
                client=client,
                body=model(
                    type_=m.GoalType.CUSTOM, path=clear, scroll_percentage=clear, key=f"k-{goal.id}", is_enabled=False
                ),
            ),
            m,
        )
        assert (changed.data.type_, changed.data.path, changed.data.scroll_percentage) == (
            m.GoalType.CUSTOM,
            None,
            None,
        )
        assert changed.data.key == f"k-{goal.id}" and changed.data.is_enabled is False
        cleared_key = _ok(c.update_goal.sync(goal.id, client=client, body=model(key=clear, is_enabled=True)), m)
        assert cleared_key.data.key != f"k-{goal.id}" and cleared_key.data.is_enabled is True  # generated again
        refused = c.update_goal.sync(goal.id, client=client, body=model(name="x" * 33))
        assert isinstance(refused, m.Errors) and refused.errors[0].source.parameter == "name"

    listed = _ok(
        c.list_goals.sync(client=client, website_id=tenant.website_id, type_=m.GoalType.CUSTOM, search="GOAL"), m
    )
    assert {goal.id for goal in goals} <= {goal.id for goal in listed.data}

    for goal in goals:
        assert c.delete_goal.sync_detailed(goal.id, client=client).status_code == 204
    missing = c.get_goal.sync(goals[0].id, client=client)
    assert isinstance(missing, m.Errors) and missing.errors[0].status == 404


def test_the_generated_client_walks_the_changes_feed(client_package, local_api, tenant):
    c = _client(client_package, local_api, tenant.api_key)
    m, client = c.models, c.client
    made = [_ok(c.create_conversion.sync(client=client, body=m.ConversionCreate(goal_id=tenant.goal_id)), m).data]
    made.append(_ok(c.create_conversion.sync(client=client, body=m.ConversionCreate(goal_id=tenant.goal_id)), m).data)
    c.update_conversion.sync(made[0].id, client=client, body=m.ConversionUpdate(goal_id=tenant.second_goal_id))
    assert c.delete_conversion.sync_detailed(made[1].id, client=client).status_code == 204
    settle()
    seen, cursor, pages = [], None, 0
    while True:
        page = _ok(c.list_changes.sync(client=client, limit=2, **({"cursor": cursor} if cursor else {})), m)
        pages += 1
        seen += [(str(change.change.value), change.conversion.id) for change in page.data]
        cursor = page.meta.next_cursor
        if not page.meta.has_more:
            break
    assert seen == [("created", made[0].id), ("created", made[1].id), ("updated", made[0].id), ("deleted", made[1].id)]
    assert pages >= 2
    empty = _ok(c.list_changes.sync(client=client, cursor=cursor), m)
    assert empty.data == [] and empty.meta.has_more is False
    refused = c.list_changes.sync(client=client, cursor=cursor[:-1] + ("B" if cursor[-1] == "A" else "A"))
    assert isinstance(refused, m.Errors) and refused.errors[0].source.parameter == "cursor"
