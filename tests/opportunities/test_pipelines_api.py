"""Pipelines and custom fields through HTTP: stage ordering and validation, templates,
requirements, deletion rules, roles; custom field definitions and value validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.opportunities.stages import COMMITTEE_ROLES, REQUIREMENTS
from tests.factories import Tenant, assert_problem, create, create_account, key_for


def _stage(key: str, kind: str = "open", probability: str = "10", **extra: Any) -> dict[str, Any]:
    category = {"open": "pipeline", "won": "closed", "lost": "omitted"}[kind]
    return {
        "key": key,
        "name": key.replace("_", " ").capitalize(),
        "kind": kind,
        "probability": probability,
        "forecast_category": category,
        **extra,
    }


STAGES = [
    _stage("intro", probability="10"),
    _stage("demo", probability="40", requirements=["amount_set"]),
    _stage("won", "won", "100"),
    _stage("lost", "lost", "0", requirements=["lost_reason_set"]),
]


async def _pipeline(
    client: AsyncClient, tenant: Tenant, name: str = "Simple", **extra: Any
) -> dict[str, Any]:
    return await create(
        client, "/v1/pipelines", tenant.headers, {"name": name, "stages": STAGES, **extra}
    )


async def _default_pipeline(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    listed = (await client.get("/v1/pipelines", headers=tenant.headers)).json()["data"]
    return next(p for p in listed if p["is_default"])


# --- pipelines ----------------------------------------------------------------------------


async def test_create_orders_stages_open_then_won_then_lost(
    client: AsyncClient, tenant: Tenant
) -> None:
    shuffled = [
        _stage("closed_lost", "lost", "0"),
        _stage("first", probability="5"),
        _stage("closed_won", "won", "100"),
        _stage("second", probability="25.5", rotting_days=7, expected_days=14),
        _stage("third", probability="60", requirements=["close_date_set"]),
    ]
    response = await client.post(
        "/v1/pipelines",
        json={"name": "Shuffled", "description": "Any order in", "stages": shuffled},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    pipeline = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/v1/pipelines/{pipeline['id']}"
    assert pipeline["name"] == "Shuffled" and pipeline["description"] == "Any order in"
    assert pipeline["template"] is None and pipeline["is_default"] is False
    assert [(s["key"], s["position"], s["kind"]) for s in pipeline["stages"]] == [
        ("first", 1, "open"),
        ("second", 2, "open"),
        ("third", 3, "open"),
        ("closed_won", 4, "won"),
        ("closed_lost", 5, "lost"),
    ]
    second = pipeline["stages"][1]
    assert second["probability"] == "25.50"
    assert (second["rotting_days"], second["expected_days"]) == (7, 14)
    assert pipeline["stages"][2]["requirements"] == ["close_date_set"]
    assert pipeline["stages"][0]["requirements"] == []

    fetched = await client.get(f"/v1/pipelines/{pipeline['id']}", headers=tenant.headers)
    assert fetched.status_code == 200 and fetched.headers["ETag"] == '"1"'
    assert fetched.json() == pipeline
    listed = (await client.get("/v1/pipelines", headers=tenant.headers)).json()
    assert listed["next_cursor"] is None
    assert [p["is_default"] for p in listed["data"]] == [True, False]  # the default first
    assert listed["data"][1] == pipeline


@pytest.mark.parametrize(
    ("stages", "code"),
    [
        ([_stage("a"), _stage("lost", "lost", "0")], "won_stage_count"),
        (
            [
                _stage("a"),
                _stage("won", "won", "100"),
                _stage("lost", "lost", "0"),
                _stage("lost_again", "lost", "0"),
            ],
            "lost_stage_count",
        ),
        ([_stage("won", "won", "100"), _stage("lost", "lost", "0")], "no_open_stage"),
        (
            [_stage("a"), _stage("a", probability="50"), *STAGES[2:]],
            "duplicate_stage_key",
        ),
        (
            [_stage("a", requirements=["amount_set", "banana"]), *STAGES[2:]],
            "unknown_requirement",
        ),
        (
            [_stage("a", requirements=["role_present:astrologer"]), *STAGES[2:]],
            "unknown_requirement",
        ),
    ],
    ids=["no_won", "two_lost", "no_open", "duplicate_key", "banana", "unknown_role"],
)
async def test_invalid_stage_lists_are_422(
    client: AsyncClient, tenant: Tenant, stages: list[dict[str, Any]], code: str
) -> None:
    response = await client.post(
        "/v1/pipelines", json={"name": "Broken", "stages": stages}, headers=tenant.headers
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert code in [e["code"] for e in problem["errors"]], problem
    assert {e["field"] for e in problem["errors"]} == {"body.stages"}
    names = [
        p["name"]
        for p in (await client.get("/v1/pipelines", headers=tenant.headers)).json()["data"]
    ]
    assert "Broken" not in names


async def test_stage_field_validation_is_422(client: AsyncClient, tenant: Tenant) -> None:
    for index, change, field in (
        (0, {"key": "Bad Key"}, "key"),
        (0, {"key": "1st"}, "key"),
        (0, {"probability": "101"}, "probability"),
        (0, {"probability": "-1"}, "probability"),
        (0, {"probability": "12.345"}, "probability"),
        (0, {"forecast_category": "maybe"}, "forecast_category"),
        (0, {"kind": "paused"}, "kind"),
        (0, {"rotting_days": 0}, "rotting_days"),
    ):
        stages = copy.deepcopy(STAGES)
        stages[index].update(change)
        response = await client.post(
            "/v1/pipelines", json={"name": "Broken", "stages": stages}, headers=tenant.headers
        )
        problem = assert_problem(response, 422, "validation_failed")
        fields = [e["field"] for e in problem["errors"]]
        assert any(f.startswith(f"body.stages.{index}.{field}") for f in fields), (change, fields)


async def test_template_and_name_rules(client: AsyncClient, tenant: Tenant) -> None:
    both = await client.post(
        "/v1/pipelines",
        params={"template": "saas"},
        json={"name": "Mine", "stages": STAGES},
        headers=tenant.headers,
    )
    problem = assert_problem(both, 422, "validation_failed")
    assert problem["errors"] == [{"field": "body.stages", "code": "template_and_stages"}]

    no_name = await client.post("/v1/pipelines", json={"stages": STAGES}, headers=tenant.headers)
    problem = assert_problem(no_name, 422, "validation_failed")
    assert problem["errors"] == [{"field": "body.name", "code": "missing"}]
    nothing = await client.post("/v1/pipelines", json={}, headers=tenant.headers)
    problem = assert_problem(nothing, 422, "validation_failed")
    assert {e["field"] for e in problem["errors"]} == {"body.name", "body.stages"}

    # A template names the pipeline unless a name is given.
    named = await client.post(
        "/v1/pipelines",
        params={"template": "manufacturing"},
        json={"name": "Plant sales"},
        headers=tenant.headers,
    )
    assert named.status_code == 201, named.text
    assert named.json()["name"] == "Plant sales" and named.json()["template"] == "manufacturing"
    assert [s["key"] for s in named.json()["stages"]][-2:] == ["closed_won", "closed_lost"]


async def test_duplicate_pipeline_name_is_409(client: AsyncClient, tenant: Tenant) -> None:
    first = await _pipeline(client, tenant, name="Enterprise")
    again = await client.post(
        "/v1/pipelines", json={"name": "Enterprise", "stages": STAGES}, headers=tenant.headers
    )
    problem = assert_problem(again, 409, "duplicate_pipeline")
    assert problem["existing_id"] == first["id"]
    # The default pipeline's template name is taken too.
    default = await _default_pipeline(client, tenant)
    clash = await client.post(
        "/v1/pipelines", params={"template": "b2b"}, json={}, headers=tenant.headers
    )
    problem = assert_problem(clash, 409, "duplicate_pipeline")
    assert problem["existing_id"] == default["id"]
    renamed = await client.patch(
        f"/v1/pipelines/{first['id']}", json={"name": default["name"]}, headers=tenant.headers
    )
    assert_problem(renamed, 409, "duplicate_pipeline")


async def test_requirements_catalogue(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/pipelines/requirements", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    codes = [r["code"] for r in body["data"]]
    assert len(codes) == len(set(codes))
    expected = {
        *REQUIREMENTS,
        *(f"role_present:{role}" for role in COMMITTEE_ROLES),
        "field_set:<custom field key>",
    }
    assert set(codes) == expected
    assert {"role_present:champion", "role_present:decision_maker", "amount_set"} <= set(codes)
    assert all(r["description"] for r in body["data"])
    # Every listed code (field_set with a real key) is accepted in a stage.
    usable = [c for c in codes if not c.startswith("field_set:")] + ["field_set:po_number"]
    stages = copy.deepcopy(STAGES)
    stages[1]["requirements"] = usable
    made = await client.post(
        "/v1/pipelines", json={"name": "Everything", "stages": stages}, headers=tenant.headers
    )
    assert made.status_code == 201, made.text
    assert made.json()["stages"][1]["requirements"] == usable


async def test_delete_rules(client: AsyncClient, tenant: Tenant) -> None:
    default = await _default_pipeline(client, tenant)
    refused = await client.delete(f"/v1/pipelines/{default['id']}", headers=tenant.headers)
    problem = assert_problem(refused, 409, "default_pipeline")
    assert problem["errors"][0]["code"] == "default_pipeline"
    assert (
        await client.get(f"/v1/pipelines/{default['id']}", headers=tenant.headers)
    ).status_code == 200

    spare = await _pipeline(client, tenant)
    url = f"/v1/pipelines/{spare['id']}"
    stale = await client.delete(url, headers={**tenant.headers, "If-Match": '"9"'})
    assert_problem(stale, 412, "version_mismatch")
    deleted = await client.delete(url, headers={**tenant.headers, "If-Match": '"1"'})
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert_problem(await client.get(url, headers=tenant.headers), 404, "not_found")
    assert_problem(await client.delete(url, headers=tenant.headers), 404, "not_found")
    listed = (await client.get("/v1/pipelines", headers=tenant.headers)).json()["data"]
    assert [p["id"] for p in listed] == [default["id"]]
    # Its name is free again.
    assert (await _pipeline(client, tenant))["name"] == "Simple"


async def test_making_another_default_allows_deleting_the_old_one(
    client: AsyncClient, tenant: Tenant
) -> None:
    old = await _default_pipeline(client, tenant)
    new = await _pipeline(client, tenant, is_default=True)
    assert new["is_default"] is True
    refreshed = (await client.get(f"/v1/pipelines/{old['id']}", headers=tenant.headers)).json()
    assert refreshed["is_default"] is False and refreshed["version"] == old["version"] + 1
    deleted = await client.delete(f"/v1/pipelines/{old['id']}", headers=tenant.headers)
    assert deleted.status_code == 204, deleted.text
    refused = await client.delete(f"/v1/pipelines/{new['id']}", headers=tenant.headers)
    assert_problem(refused, 409, "default_pipeline")


async def test_rep_reads_but_cannot_administer_pipelines(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    pipeline = await _pipeline(client, tenant)
    rep = await key_for(app, tenant, scopes=["*"], role="rep")
    listed = await client.get("/v1/pipelines", headers=rep)
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["data"]) == 2
    assert (await client.get(f"/v1/pipelines/{pipeline['id']}", headers=rep)).status_code == 200
    for path in ("/v1/pipelines/requirements", "/v1/pipelines/templates", "/v1/custom-fields"):
        assert (await client.get(path, headers=rep)).status_code == 200, path
    for method, path, body in (
        ("POST", "/v1/pipelines", {"name": "Rep's", "stages": STAGES}),
        ("PATCH", f"/v1/pipelines/{pipeline['id']}", {"name": "Renamed"}),
        ("DELETE", f"/v1/pipelines/{pipeline['id']}", None),
        ("POST", "/v1/custom-fields", {"key": "k", "label": "K", "field_type": "text"}),
    ):
        response = await client.request(method, path, json=body, headers=rep)
        assert_problem(response, 403, "role_not_allowed")
    templated = await client.post(
        "/v1/pipelines", params={"template": "saas"}, json={}, headers=rep
    )
    assert_problem(templated, 403, "role_not_allowed")
    after = (await client.get("/v1/pipelines", headers=tenant.headers)).json()["data"]
    assert {p["name"] for p in after} == {"B2B sales", "Simple"}


# --- custom fields ------------------------------------------------------------------------


async def test_custom_field_crud(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/custom-fields",
        json={
            "key": "region",
            "label": "Region",
            "field_type": "select",
            "allowed_values": ["north", "south"],
            "required_from_stage": "proposal",  # a stage of the default pipeline
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    region = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/v1/custom-fields/{region['id']}"
    assert region["entity"] == "opportunity" and region["version"] == 1
    assert region["allowed_values"] == ["north", "south"]
    assert region["required_from_stage"] == "proposal"
    budget = await create(
        client,
        "/v1/custom-fields",
        tenant.headers,
        {"key": "budget_code", "label": "Budget code", "field_type": "text"},
    )
    assert budget["allowed_values"] is None and budget["required_from_stage"] is None

    listed = (await client.get("/v1/custom-fields", headers=tenant.headers)).json()
    assert [f["key"] for f in listed["data"]] == ["budget_code", "region"]  # by key
    assert listed["next_cursor"] is None
    url = f"/v1/custom-fields/{region['id']}"
    fetched = await client.get(url, headers=tenant.headers)
    assert fetched.headers["ETag"] == '"1"' and fetched.json() == region

    patched = await client.patch(
        url,
        json={"label": "Sales region", "allowed_values": ["north", "south", "east"]},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["ETag"] == '"2"'
    assert patched.json()["label"] == "Sales region"
    assert patched.json()["allowed_values"] == ["north", "south", "east"]
    assert patched.json()["field_type"] == "select" and patched.json()["key"] == "region"
    stale = await client.patch(
        url, json={"label": "x"}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert_problem(stale, 412, "version_mismatch")
    cleared = await client.patch(url, json={"required_from_stage": None}, headers=tenant.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["required_from_stage"] is None and cleared.json()["version"] == 3
    for body in (
        {"label": None},
        {"field_type": "text"},
        {"key": "renamed"},
        {"allowed_values": None},  # a select field needs its values
        {"allowed_values": []},
        {"required_from_stage": "nowhere"},
    ):
        refused = await client.patch(url, json=body, headers=tenant.headers)
        assert_problem(refused, 422, "validation_failed")
    text_values = await client.patch(
        f"/v1/custom-fields/{budget['id']}",
        json={"allowed_values": ["a"]},
        headers=tenant.headers,
    )
    problem = assert_problem(text_values, 422, "validation_failed")
    assert problem["errors"][0]["field"] == "body.allowed_values"
    unchanged = (await client.get(url, headers=tenant.headers)).json()
    assert unchanged["version"] == 3 and unchanged["label"] == "Sales region"

    stale = await client.delete(url, headers={**tenant.headers, "If-Match": '"1"'})
    assert_problem(stale, 412, "version_mismatch")
    deleted = await client.delete(url, headers={**tenant.headers, "If-Match": '"3"'})
    assert deleted.status_code == 204, deleted.text
    assert_problem(await client.get(url, headers=tenant.headers), 404, "not_found")
    assert_problem(
        await client.patch(url, json={"label": "x"}, headers=tenant.headers), 404, "not_found"
    )
    listed = (await client.get("/v1/custom-fields", headers=tenant.headers)).json()["data"]
    assert [f["key"] for f in listed] == ["budget_code"]
    # The key is free again.
    again = await create(
        client,
        "/v1/custom-fields",
        tenant.headers,
        {"key": "region", "label": "Region", "field_type": "text"},
    )
    assert again["id"] != region["id"]


async def test_custom_field_definition_validation(client: AsyncClient, tenant: Tenant) -> None:
    first = await create(
        client,
        "/v1/custom-fields",
        tenant.headers,
        {"key": "po_number", "label": "PO number", "field_type": "text"},
    )
    duplicate = await client.post(
        "/v1/custom-fields",
        json={"key": "po_number", "label": "Other", "field_type": "number"},
        headers=tenant.headers,
    )
    problem = assert_problem(duplicate, 409, "duplicate_custom_field")
    assert problem["existing_id"] == first["id"]

    for body, field in (
        ({"key": "colour", "label": "Colour", "field_type": "select"}, "body.allowed_values"),
        (
            {"key": "colour", "label": "Colour", "field_type": "select", "allowed_values": []},
            "body.allowed_values",
        ),
        (
            {"key": "note", "label": "Note", "field_type": "text", "allowed_values": ["a"]},
            "body.allowed_values",
        ),
        (
            {"key": "size", "label": "Size", "field_type": "number", "allowed_values": ["1"]},
            "body.allowed_values",
        ),
        (
            {
                "key": "po_date",
                "label": "PO date",
                "field_type": "date",
                "required_from_stage": "nowhere",
            },
            "body.required_from_stage",
        ),
        ({"key": "Bad Key", "label": "Bad", "field_type": "text"}, "body.key"),
        ({"key": "ok", "label": "", "field_type": "text"}, "body.label"),
        ({"key": "ok", "label": "Ok", "field_type": "colour"}, "body.field_type"),
        ({"key": "ok", "label": "Ok", "field_type": "text", "entity": "lead"}, "body.entity"),
    ):
        response = await client.post("/v1/custom-fields", json=body, headers=tenant.headers)
        problem = assert_problem(response, 422, "validation_failed")
        assert field in [e["field"] for e in problem["errors"]], (body, problem)
    listed = (await client.get("/v1/custom-fields", headers=tenant.headers)).json()["data"]
    assert [f["key"] for f in listed] == ["po_number"]

    # A stage key of any of the organization's pipelines is accepted.
    await _pipeline(client, tenant)
    made = await create(
        client,
        "/v1/custom-fields",
        tenant.headers,
        {"key": "demo_date", "label": "Demo", "field_type": "date", "required_from_stage": "demo"},
    )
    assert made["required_from_stage"] == "demo"


async def test_custom_field_stage_check_is_per_tenant(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _pipeline(client, other_tenant)  # "demo" exists only in the other organization
    response = await client.post(
        "/v1/custom-fields",
        json={"key": "k", "label": "K", "field_type": "text", "required_from_stage": "demo"},
        headers=tenant.headers,
    )
    assert_problem(response, 422, "validation_failed")


CUSTOM_FIELDS = [
    {"key": "note", "label": "Note", "field_type": "text"},
    {"key": "seats", "label": "Seats", "field_type": "number"},
    {"key": "go_live", "label": "Go-live", "field_type": "date"},
    {"key": "rush", "label": "Rush order", "field_type": "boolean"},
    {"key": "tier", "label": "Tier", "field_type": "select", "allowed_values": ["gold", "silver"]},
]


async def _define_fields(client: AsyncClient, tenant: Tenant) -> None:
    for definition in CUSTOM_FIELDS:
        await create(client, "/v1/custom-fields", tenant.headers, definition)


async def _post_deal(
    client: AsyncClient, tenant: Tenant, account_id: str, custom: dict[str, Any]
) -> Any:
    return await client.post(
        "/v1/opportunities",
        json={"name": "Deal", "account_id": account_id, "custom_fields": custom},
        headers=tenant.headers,
    )


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [
        ("note", "bring samples", "bring samples"),
        ("note", "", ""),
        ("seats", "12.5", "12.5"),
        ("seats", 12.5, "12.5"),
        ("seats", 40, "40"),
        ("seats", "-3", "-3"),
        ("seats", "1e3", "1000"),
        ("go_live", "2026-01-31", "2026-01-31"),
        ("rush", True, True),
        ("rush", False, False),
        ("tier", "gold", "gold"),
    ],
)
async def test_custom_field_values_accepted(
    client: AsyncClient, tenant: Tenant, key: str, value: Any, stored: Any
) -> None:
    await _define_fields(client, tenant)
    account = await create_account(client, tenant.headers)
    response = await _post_deal(client, tenant, account["id"], {key: value})
    assert response.status_code == 201, response.text
    assert response.json()["custom_fields"] == {key: stored}
    again = await client.get(f"/v1/opportunities/{response.json()['id']}", headers=tenant.headers)
    assert again.json()["custom_fields"] == {key: stored}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("note", 5),
        ("note", ["a"]),
        ("seats", "twelve"),
        ("seats", True),
        ("seats", ""),
        ("seats", "NaN"),
        ("seats", "Infinity"),
        ("seats", "-inf"),
        ("seats", "1e999999999"),
        ("seats", {"value": 1}),
        ("go_live", "31.01.2026"),
        ("go_live", "2026-02-30"),
        ("go_live", 20260131),
        ("rush", "true"),
        ("rush", 1),
        ("tier", "bronze"),
        ("tier", "Gold"),
        ("tier", ["gold"]),
    ],
)
async def test_custom_field_values_refused(
    client: AsyncClient, tenant: Tenant, key: str, value: Any
) -> None:
    await _define_fields(client, tenant)
    account = await create_account(client, tenant.headers)
    response = await _post_deal(client, tenant, account["id"], {key: value})
    problem = assert_problem(response, 422, "validation_failed")
    field_type = next(d["field_type"] for d in CUSTOM_FIELDS if d["key"] == key)
    assert problem["errors"] == [
        {
            "field": f"body.custom_fields.{key}",
            "code": f"expected_{field_type}",
            "detail": str(value)[:100],
        }
    ]
    listed = (await client.get("/v1/opportunities", headers=tenant.headers)).json()["data"]
    assert listed == []


async def test_all_custom_field_errors_are_reported_together(
    client: AsyncClient, tenant: Tenant
) -> None:
    await _define_fields(client, tenant)
    account = await create_account(client, tenant.headers)
    response = await _post_deal(
        client,
        tenant,
        account["id"],
        {"seats": "x", "go_live": "31.01.2026", "nope": 1, "tier": "gold"},
    )
    problem = assert_problem(response, 422)
    assert {e["field"]: e["code"] for e in problem["errors"]} == {
        "body.custom_fields.seats": "expected_number",
        "body.custom_fields.go_live": "expected_date",
        "body.custom_fields.nope": "unknown_custom_field",
    }


async def test_patch_custom_fields_merges(client: AsyncClient, tenant: Tenant) -> None:
    await _define_fields(client, tenant)
    account = await create_account(client, tenant.headers)
    created = await _post_deal(
        client, tenant, account["id"], {"note": "first", "seats": 10, "rush": False, "tier": None}
    )
    assert created.status_code == 201, created.text
    deal = created.json()
    assert deal["custom_fields"] == {"note": "first", "seats": "10", "rush": False}
    url = f"/v1/opportunities/{deal['id']}"

    merged = await client.patch(
        url,
        json={"custom_fields": {"seats": "12.5", "tier": "silver", "note": None}},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["custom_fields"] == {"seats": "12.5", "rush": False, "tier": "silver"}
    assert merged.json()["version"] == 2

    # An empty object and a missing custom_fields change nothing.
    for body in ({"custom_fields": {}}, {"name": "Renamed"}):
        response = await client.patch(url, json=body, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json()["custom_fields"] == {
            "seats": "12.5",
            "rush": False,
            "tier": "silver",
        }

    # Removing a key that is not set is fine; an invalid value refuses the whole PATCH.
    removed = await client.patch(
        url, json={"custom_fields": {"go_live": None, "rush": None}}, headers=tenant.headers
    )
    assert removed.json()["custom_fields"] == {"seats": "12.5", "tier": "silver"}
    refused = await client.patch(
        url,
        json={"name": "Not applied", "custom_fields": {"seats": None, "tier": "bronze"}},
        headers=tenant.headers,
    )
    problem = assert_problem(refused, 422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["body.custom_fields.tier"]
    # Removing a key is allowed even when no definition names it (e.g. a deleted field).
    unknown = await client.patch(
        url, json={"custom_fields": {"colour": None}}, headers=tenant.headers
    )
    assert unknown.status_code == 200
    final = (await client.get(url, headers=tenant.headers)).json()
    assert final["name"] == "Renamed"
    assert final["custom_fields"] == {"seats": "12.5", "tier": "silver"}


async def test_custom_fields_are_per_tenant(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _define_fields(client, tenant)
    account = await create_account(client, other_tenant.headers)
    response = await _post_deal(client, other_tenant, account["id"], {"note": "x"})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["code"] == "unknown_custom_field"
    # The same key can be defined in another organization.
    await create(client, "/v1/custom-fields", other_tenant.headers, CUSTOM_FIELDS[0])
    assert (await _post_deal(client, other_tenant, account["id"], {"note": "x"})).status_code == 201
