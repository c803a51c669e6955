from conftest import api_event, invoke
from functions.create_conversion import app as create_app
from functions.get_conversion import app as get_app


def test_created_conversion_can_be_read_back(tenant):
    created = invoke(create_app, api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id}))
    assert created.status == 201
    conversion_id = created.json["data"]["id"]
    fetched = invoke(get_app, api_event("get_conversion", headers=tenant.auth, conversion_id=conversion_id))
    assert fetched.status == 200
    assert fetched.json["data"] == created.json["data"]
