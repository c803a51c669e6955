"""Strict input: an integer is its digits (in text) or an integer number (in JSON), nothing else.

Every bad form of a valid id is sent through every place the API reads an integer; each must be
refused (400 naming the parameter, 404 for a path id) and change nothing: the tables are
compared whole before and after, so a request that acted on another record would show.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import boto3
import pytest
from tables import changed, local_server, own_tables, snapshot

from conftest import LambdaContext, Tenant, api_event, invoke
from conversions_core.repository import Repository

ENVIRONMENT = own_tables(boto3.client("dynamodb"), "Strict")
TABLES = (ENVIRONMENT["DATA_TABLE_NAME"], ENVIRONMENT["IDEMPOTENCY_TABLE_NAME"])
OTHER_SCRIPTS = {
    "arabic-indic": "٠١٢٣٤٥٦٧٨٩",
    "devanagari": "०१२३४५६७८९",
    "fullwidth": "０１２３４５６７８９",
}


def text_forms(number: int) -> dict[str, str]:
    """Strings that lax parsers read as `number` (or as another id) but that are not its digits."""
    digits = str(number)
    forms = {
        "underscore": f"{digits[0]}_{digits[1:]}",
        "decimal point": f"{digits}.0",
        "exponent": f"{digits}e0",
        "plus sign": f"+{digits}",
        "leading space": f" {digits}",
        "trailing space": f"{digits} ",
        "hexadecimal": hex(number),
        "true": "true",
    }
    for script, numerals in OTHER_SCRIPTS.items():
        forms[script] = digits.translate(str.maketrans("0123456789", numerals))
    return forms


def json_forms(number: int) -> dict[str, object]:
    return {
        "true": True,
        "false": False,
        "float": float(number),
        "string of digits": str(number),
        "underscored string": f"{str(number)[0]}_{str(number)[1:]}",
        "list": [number],
        "object": {"id": number},
    }


@pytest.fixture(scope="module")
def api(dynamodb):
    with local_server(ENVIRONMENT) as (_, handlers):
        repository = Repository.build(dynamodb, TABLES[0])
        tenant = Tenant(repository)
        created = invoke(
            handlers["create_conversion"],
            api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id}),
        )
        assert created.status == 201, created
        yield SimpleNamespace(handlers=handlers, tenant=tenant, conversion_id=created.json["data"]["id"])


def assert_refused(api, result, status: int, parameter: str | None, before, label: str = "") -> None:
    assert result.status == status, (label, result)
    assert result.headers["content-type"] == "application/json"
    [error] = result.json["errors"]
    assert error["status"] == status
    if parameter is not None:
        assert error["source"] == {"parameter": parameter}, (label, error)
    assert not changed(before, snapshot(boto3.client("dynamodb"), *TABLES)), f"a refused request wrote ({label})"


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    body = "".join(f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items())
    return (body + "--B--\r\n").encode(), "multipart/form-data; boundary=B"


def test_a_path_id_that_is_not_its_digits_is_a_404_and_touches_nothing(api):
    tenant, handlers = api.tenant, api.handlers
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    for label, bad in text_forms(api.conversion_id).items():
        for function, kwargs in (
            ("get_conversion", {}),
            ("update_conversion", {"form": {"visitor_id": ""}}),
            ("delete_conversion", {}),
        ):
            event = api_event(function, headers=tenant.auth, conversion_id=bad, **kwargs)
            result = invoke(handlers[function], event)
            assert_refused(api, result, 404, None, before, f"{function} {label}")
            assert result.json["errors"][0]["title"] == "Conversion not found", label


@pytest.mark.parametrize("parameter", ["goal_id", "website_id", "page"])
def test_a_query_integer_that_is_not_its_digits_is_a_400_naming_it(api, parameter):
    tenant = api.tenant
    value = {"goal_id": tenant.goal_id, "website_id": tenant.website_id, "page": 1}[parameter]
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    for label, bad in text_forms(value).items():
        event = api_event("list_conversions", headers=tenant.auth, query={parameter: bad})
        result = invoke(api.handlers["list_conversions"], event)
        assert_refused(api, result, 400, parameter, before, label)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
@pytest.mark.parametrize("field", ["goal_id", "visitor_id", "session_id", "event_id"])
def test_a_form_integer_that_is_not_its_digits_is_a_400_naming_it(api, encoding, field):
    tenant = api.tenant
    good = {"goal_id": tenant.goal_id, "visitor_id": tenant.visitor_id}
    good.update({"session_id": tenant.session_id, "event_id": tenant.event_id})
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    for label, bad in text_forms(good[field]).items():
        fields = {**{k: str(v) for k, v in good.items()}, field: bad}
        for function, conversion_id in (("create_conversion", None), ("update_conversion", api.conversion_id)):
            if encoding == "urlencoded":
                kwargs = {"form": fields}
            else:
                body, content_type = multipart(fields)
                kwargs = {"raw_body": body, "content_type": content_type}
            event = api_event(function, headers=tenant.auth, conversion_id=conversion_id, **kwargs)
            result = invoke(api.handlers[function], event)
            assert_refused(api, result, 400, field, before, label)


@pytest.mark.parametrize("field", ["goal_id", "visitor_id", "session_id", "event_id"])
def test_a_json_integer_must_be_an_integer_number(api, field):
    tenant = api.tenant
    good = {"goal_id": tenant.goal_id, "visitor_id": tenant.visitor_id}
    good.update({"session_id": tenant.session_id, "event_id": tenant.event_id})
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    for label, bad in json_forms(good[field]).items():
        for function, conversion_id in (("create_conversion", None), ("update_conversion", api.conversion_id)):
            event = api_event(
                function, headers=tenant.auth, conversion_id=conversion_id, json_body={**good, field: bad}
            )
            result = invoke(api.handlers[function], event)
            assert_refused(api, result, 400, field, before, label)


def test_json_numbers_written_as_floats_or_exponents_are_refused(api):
    tenant = api.tenant
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    for text in (f"{tenant.goal_id}.0", f"{tenant.goal_id}e0", f"{tenant.goal_id}.0e0", "1E0"):
        body = f'{{"goal_id": {text}}}'
        event = api_event("create_conversion", headers=tenant.auth, raw_body=body, content_type="application/json")
        result = invoke(api.handlers["create_conversion"], event)
        assert_refused(api, result, 400, "goal_id", before)


def test_json_integers_of_any_length_are_bad_values_of_their_field(api):
    """Python's json refuses integers of over 4,300 digits; the body is still well-formed JSON."""
    tenant = api.tenant
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    for text in ("9" * 4301, "-" + "9" * 4301, "1" + "0" * 100_000):
        body = f'{{"goal_id": {tenant.goal_id}, "visitor_id": {text}}}'
        event = api_event("create_conversion", headers=tenant.auth, raw_body=body, content_type="application/json")
        result = invoke(api.handlers["create_conversion"], event)
        assert_refused(api, result, 400, "visitor_id", before)


def test_the_right_forms_are_accepted_everywhere(api):
    """The control: the same fields written as the rule says are read."""
    tenant = api.tenant
    body, content_type = multipart({"goal_id": f"{tenant.goal_id}", "visitor_id": ""})
    for kwargs in (
        {"form": {"goal_id": str(tenant.goal_id), "visitor_id": f"{tenant.visitor_id}"}},
        {"raw_body": body, "content_type": content_type},
        {"json_body": {"goal_id": tenant.goal_id, "visitor_id": None}},
        {"form": {"goal_id": f"000{tenant.goal_id}"}},
    ):
        result = invoke(
            api.handlers["create_conversion"], api_event("create_conversion", headers=tenant.auth, **kwargs)
        )
        assert result.status == 201, (kwargs, result)
    query = {"goal_id": str(tenant.goal_id), "website_id": str(tenant.website_id), "page": "01"}
    listed = invoke(api.handlers["list_conversions"], api_event("list_conversions", headers=tenant.auth, query=query))
    assert listed.status == 200 and listed.json["meta"]["total"] >= 4


def test_an_empty_json_string_does_not_clear_a_reference(api):
    """In forms an empty field clears a reference; JSON clears with null, and "" is a string."""
    tenant = api.tenant
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    event = api_event(
        "update_conversion", headers=tenant.auth, conversion_id=api.conversion_id, json_body={"visitor_id": ""}
    )
    assert_refused(api, invoke(api.handlers["update_conversion"], event), 400, "visitor_id", before)


def test_json_nested_deeper_than_32_levels_is_a_400(api):
    tenant = api.tenant
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    for depth in (33, 1000, 100_000):
        body = '{"goal_id": 1, "x": ' + "[" * depth + "]" * depth + "}"
        event = api_event("create_conversion", headers=tenant.auth, raw_body=body, content_type="application/json")
        result = invoke(api.handlers["create_conversion"], event)
        assert_refused(api, result, 400, None, before)
        assert "32 levels" in result.json["errors"][0]["title"]
    nested = {"goal_id": tenant.goal_id, "x": json.loads("[" * 31 + "]" * 31)}
    ok = invoke(
        api.handlers["create_conversion"], api_event("create_conversion", headers=tenant.auth, json_body=nested)
    )
    assert ok.status == 201, ok


def test_links_never_echo_an_unchecked_host_or_scheme(api):
    tenant = api.tenant
    for host, proto in (
        ("127.0.0.1@evil.example", "https"),
        ("evil.example/path", "https"),
        ("good.example:99999", "https"),
        ("good.example", "javascript"),
        ("ex ample.com", "http"),
    ):
        event = api_event("list_conversions", headers={**tenant.auth, "Host": host, "X-Forwarded-Proto": proto})
        result = invoke(api.handlers["list_conversions"], event)
        assert result.status == 200
        for link in filter(None, result.json["links"].values()):
            assert link.startswith(("https://", "http://")), link
            assert "evil" not in link and "javascript" not in link and "99999" not in link and " " not in link
    event = api_event(
        "list_conversions", headers={**tenant.auth, "Host": "api.example.com:8443", "X-Forwarded-Proto": "http"}
    )
    assert (
        invoke(api.handlers["list_conversions"], event)
        .json["links"]["first"]
        .startswith("http://api.example.com:8443/")
    )


def with_header_twice(event: dict, name: str, first: str, second: str) -> dict:
    """The event of a request that sent the header twice: API Gateway joins them with a comma."""
    event["headers"][name.lower()] = f"{first},{second}"
    return event


def test_a_header_sent_twice_is_refused(api, make_tenant):
    tenant, stranger = api.tenant, make_tenant()
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    event = api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id})
    event = with_header_twice(event, "Authorization", f"Bearer {stranger.api_key}", f"Bearer {tenant.api_key}")
    assert_refused(api, invoke(api.handlers["create_conversion"], event), 401, None, before)
    for name, first, second in (
        ("Content-Type", "application/json", "application/x-www-form-urlencoded"),
        ("Idempotency-Key", "key-a", "key-b"),
    ):
        event = api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id})
        result = invoke(api.handlers["create_conversion"], with_header_twice(event, name, first, second))
        assert_refused(api, result, 400, name, before)
        assert result.json["errors"][0]["title"].startswith(f"{name} was sent more than once")


def test_idempotency_key_errors_state_the_rule_under_one_name(api):
    tenant = api.tenant
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    rule = "Idempotency-Key must be 1 to 255 visible ASCII characters other than a comma"
    for bad in ("", "a" * 256, "with space", "caf\u00e9"):
        event = api_event("create_conversion", headers={**tenant.auth, "Idempotency-Key": bad}, form={"goal_id": 1})
        result = invoke(api.handlers["create_conversion"], event)
        assert_refused(api, result, 400, "Idempotency-Key", before)
        assert result.json["errors"][0]["title"] == rule


def test_a_duplicated_list_parameter_says_it_was_sent_more_than_once(api):
    tenant = api.tenant
    for name, value in (("goal_id", str(tenant.goal_id)), ("order_type", "ASC"), ("page", "1")):
        event = api_event("list_conversions", headers=tenant.auth, query={})
        event["queryStringParameters"] = {name: f"{value},{value}"}  # as API Gateway joins them
        event["rawQueryString"] = f"{name}={value}&{name}={value}"
        result = invoke(api.handlers["list_conversions"], event)
        assert result.status == 400
        assert result.json["errors"] == [
            {"title": f"{name} was sent more than once", "status": 400, "source": {"parameter": name}}
        ]


@pytest.mark.parametrize("page", ["1000000001", "9" * 30, "9" * 5000])
def test_a_page_past_any_page_is_an_empty_page_with_the_true_meta(api, page):
    tenant = api.tenant
    event = api_event("list_conversions", headers=tenant.auth, query={"page": page, "results_per_page": "10"})
    response = api.handlers["list_conversions"].lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"], parse_int=str)  # the standard parser stops at 4,300 digits
    assert body["data"] == []
    meta = body["meta"]
    assert meta["page"] == page
    assert int(meta["total"]) >= 1 and int(meta["total_pages"]) == -(-int(meta["total"]) // 10)
    assert body["links"]["next"] is None
    assert body["links"]["self"].endswith(f"page={page}")


def test_base64_bodies_follow_the_same_rule(api):
    tenant = api.tenant
    before = snapshot(boto3.client("dynamodb"), *TABLES)
    raw = f"goal_id={tenant.goal_id}.0".encode()
    event = api_event(
        "create_conversion", headers=tenant.auth, raw_body=raw, content_type="application/x-www-form-urlencoded"
    )
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == raw
    assert_refused(api, invoke(api.handlers["create_conversion"], event), 400, "goal_id", before)
