"""Territories: the pure matching rules (app/territories/rules.py) and, through HTTP, CRUD
with conflict prevention, assignment of new leads and accounts (first match by priority,
round-robin owners), realignment (preview and apply, with history), deletion to the
default queue, permissions and tenant isolation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.core.tenancy import Actor, bind_tenant
from app.models import TerritoryAssignment
from app.territories import rules
from app.territories.rules import TerritoryRule
from tests.factories import Tenant, assert_problem, create, create_account, create_user, key_for

# --- pure rules -----------------------------------------------------------------------------


def _rule(
    name: str = "T",
    priority: int = 10,
    *,
    countries: tuple[str, ...] = (),
    cities: tuple[str, ...] = (),
    industries: tuple[str, ...] = (),
    segments: tuple[str, ...] = (),
) -> TerritoryRule:
    return TerritoryRule(
        id=name,
        name=name,
        priority=priority,
        countries=frozenset(countries),
        cities=frozenset(cities),
        industries=frozenset(industries),
        segments=frozenset(segments),
    )


def _record(**fields: str | None) -> dict[str, str | None]:
    return {"country": None, "city": None, "industry": None, "segment": None, **fields}


def test_matches_every_constrained_dimension_case_insensitively() -> None:
    marmara = _rule(countries=("TR",), cities=("İstanbul", "Kocaeli"), industries=("Textile",))
    assert marmara.matches(_record(country="tr", city="KOCAELI", industry="textile"))
    assert marmara.matches(_record(country="TR", city="İSTANBUL", industry="TEXTILE"))
    assert marmara.matches(_record(country="TR", city="kocaeli", industry="TeXtIlE"))
    # Every constrained dimension must match …
    assert not marmara.matches(_record(country="TR", city="Bursa", industry="textile"))
    assert not marmara.matches(_record(country="DE", city="Kocaeli", industry="textile"))
    # … and a missing value does not satisfy a constraint.
    assert not marmara.matches(_record(country="TR", city="Kocaeli"))
    assert not marmara.matches({})


def test_empty_constraints_mean_any() -> None:
    anything = _rule()
    assert anything.matches(_record())
    assert anything.matches(_record(country="BR", industry="mining", segment="smb"))
    by_segment = _rule(segments=("enterprise",))
    assert by_segment.matches(_record(country="TR", segment="enterprise"))
    assert not by_segment.matches(_record(country="TR", segment="smb"))


def test_first_match_goes_by_priority_then_name_whatever_the_order() -> None:
    textile = _rule("textile", 20, industries=("textile",))
    turkey = _rule("turkey", 10, countries=("TR",))
    catch_all = _rule("catch-all", 99)
    b_turkey = _rule("b-turkey", 5, countries=("TR",), cities=("Bursa",))
    a_turkey = _rule("a-turkey", 5, countries=("TR",), cities=("Bursa",))
    territories = [catch_all, textile, b_turkey, turkey, a_turkey]
    assert rules.first_match(territories, _record(country="TR", industry="textile")) is turkey
    assert rules.first_match(territories, _record(country="DE", industry="textile")) is textile
    assert rules.first_match(territories, _record(country="DE")) is catch_all
    # Equal priorities (only possible for non-overlapping rules through the API) fall back
    # to the name, so the outcome never depends on the input order.
    bursa = _record(country="TR", city="Bursa")
    assert rules.first_match(territories, bursa) is a_turkey
    assert rules.first_match(list(reversed(territories)), bursa) is a_turkey


def test_first_match_none_is_the_default_queue() -> None:
    assert rules.first_match([], _record(country="TR")) is None
    assert rules.first_match([_rule(countries=("DE",))], _record(country="TR")) is None


@pytest.mark.parametrize(
    ("left", "right", "overlap"),
    [
        # A TR textile record matches both.
        ({"countries": ("TR",)}, {"industries": ("textile",)}, True),
        ({"countries": ("TR",)}, {"countries": ("DE",)}, False),
        ({"countries": ("TR",)}, {"countries": ("tr",)}, True),
        ({"countries": ("TR", "DE")}, {"countries": ("DE", "FR")}, True),
        ({"countries": ("TR",), "industries": ("textile",)}, {"countries": ("TR",)}, True),
        (
            {"countries": ("TR",), "industries": ("textile",)},
            {"countries": ("TR",), "industries": ("food",)},
            False,
        ),
        ({"cities": ("İstanbul",)}, {"cities": ("İSTANBUL",)}, True),
        ({"cities": ("Ankara",)}, {"cities": ("İzmir",)}, False),
        ({"segments": ("smb",)}, {"segments": ("enterprise",)}, False),
        ({"segments": ("smb",)}, {"countries": ("TR",), "segments": ("smb", "mid_market")}, True),
        # A territory without constraints overlaps everything.
        ({}, {"countries": ("TR",), "industries": ("textile",)}, True),
        ({}, {}, True),
    ],
)
def test_overlaps(left: dict[str, Any], right: dict[str, Any], overlap: bool) -> None:
    a, b = _rule("a", **left), _rule("b", **right)
    assert rules.overlaps(a, b) is overlap
    assert rules.overlaps(b, a) is overlap


def test_conflicts_only_at_the_same_priority_and_never_with_itself() -> None:
    turkey = _rule("turkey", 10, countries=("TR",))
    textile_same = _rule("textile-10", 10, industries=("textile",))
    textile_later = _rule("textile-20", 20, industries=("textile",))
    germany = _rule("germany", 10, countries=("DE",))
    others = [turkey, textile_same, textile_later, germany]
    assert rules.conflicts(turkey, others) == [textile_same]
    assert rules.conflicts(germany, others) == [textile_same]
    assert rules.conflicts(textile_later, others) == []
    # The candidate's own (stored) version is not a conflict: the same id is skipped.
    assert rules.conflicts(_rule("turkey", 10, countries=("TR",)), [turkey]) == []


def test_next_member_cycles() -> None:
    members = ["a", "b", "c"]
    index = -1
    picked = []
    for _ in range(7):
        member, index = rules.next_member(members, index)
        picked.append(member)
    assert picked == ["a", "b", "c", "a", "b", "c", "a"]
    # An index left over from a longer member list wraps around instead of failing.
    assert rules.next_member(["a", "b"], 4) == ("b", 1)
    assert rules.next_member([], 3) == (None, 3)


# --- HTTP helpers ---------------------------------------------------------------------------


async def _territory(client: AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": f"Territory {uuid.uuid4().hex[:6]}", "priority": 10, **fields}
    return await create(client, "/v1/territories", headers, body)


async def _lead(client: AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"last_name": "Yılmaz", "email": f"{uuid.uuid4().hex[:10]}@firma.com.tr", **fields}
    return await create(client, "/v1/leads", headers, body)


async def _get(client: AsyncClient, path: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _realign(
    client: AsyncClient, headers: dict[str, str], *, dry_run: bool | None
) -> dict[str, Any]:
    params = {} if dry_run is None else {"dry_run": str(dry_run).lower()}
    response = await client.post("/v1/territories/realign", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _history(app: FastAPI, tenant: Tenant, reason: str) -> list[TerritoryAssignment]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.scalars(
            select(TerritoryAssignment)
            .where(TerritoryAssignment.reason == reason)
            .order_by(TerritoryAssignment.record_id)
        )
        return list(rows)


def _moves(body: dict[str, Any]) -> set[tuple[str, str, str | None, str | None]]:
    return {
        (m["record_type"], m["record_id"], m["from_territory_id"], m["to_territory_id"])
        for m in body["moves"]
    }


# --- CRUD and conflicts ---------------------------------------------------------------------


async def test_create_normalises_and_reads_back(client: AsyncClient, tenant: Tenant) -> None:
    member = await create_user(client, tenant.headers)
    response = await client.post(
        "/v1/territories",
        json={
            "name": "  Marmara enterprise ",
            "priority": 5,
            "countries": ["tr", "TR"],
            "cities": [" Kocaeli", "İstanbul", "  "],
            "industries": ["textile"],
            "segments": ["enterprise", "mid_market", "enterprise"],
            "member_ids": [member["id"], member["id"]],
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/v1/territories/{body['id']}"
    assert body["name"] == "Marmara enterprise"
    assert body["priority"] == 5
    assert body["countries"] == ["TR"]
    assert body["cities"] == ["Kocaeli", "İstanbul"]
    assert body["industries"] == ["textile"]
    assert body["segments"] == ["enterprise", "mid_market"]
    assert body["member_ids"] == [member["id"]]
    assert body["version"] == 1
    fetched = await client.get(f"/v1/territories/{body['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.headers["ETag"] == '"1"'
    assert fetched.json() == body


async def test_list_is_ordered_by_priority_then_name(client: AsyncClient, tenant: Tenant) -> None:
    await _territory(client, tenant.headers, name="Later", priority=30)
    await _territory(client, tenant.headers, name="Zeta", priority=10, countries=["TR"])
    await _territory(client, tenant.headers, name="Alpha", priority=10, countries=["DE"])
    body = await _get(client, "/v1/territories", tenant.headers)
    assert [t["name"] for t in body["data"]] == ["Alpha", "Zeta", "Later"]
    assert body["next_cursor"] is None


async def test_overlapping_rules_at_one_priority_are_refused(
    client: AsyncClient, tenant: Tenant
) -> None:
    turkey = await _territory(client, tenant.headers, name="Turkey", countries=["TR"])
    # A Turkish textile lead would match both: refused.
    response = await client.post(
        "/v1/territories",
        json={"name": "Textile", "priority": 10, "industries": ["textile"]},
        headers=tenant.headers,
    )
    problem = assert_problem(response, 409, "territory_conflict")
    assert "Turkey" in problem["detail"]
    assert problem["errors"] == [{"code": "overlapping_territory", "detail": turkey["id"]}]
    # Country codes are compared case-insensitively; a catch-all overlaps everything.
    for body in ({"countries": ["tr"]}, {}, {"countries": ["TR"], "cities": ["Bursa"]}):
        again = await client.post(
            "/v1/territories",
            json={"name": "Other", "priority": 10, **body},
            headers=tenant.headers,
        )
        assert_problem(again, 409, "territory_conflict")
    # Disjoint rules at the same priority, or the same rules at another one, are fine.
    await _territory(client, tenant.headers, name="Germany", priority=10, countries=["DE"])
    await _territory(client, tenant.headers, name="Textile", priority=20, industries=["textile"])
    listed = await _get(client, "/v1/territories", tenant.headers)
    assert [t["name"] for t in listed["data"]] == ["Germany", "Turkey", "Textile"]


async def test_update_is_checked_for_conflicts_too(client: AsyncClient, tenant: Tenant) -> None:
    await _territory(client, tenant.headers, name="Turkey", priority=10, countries=["TR"])
    germany = await _territory(
        client, tenant.headers, name="Germany", priority=10, countries=["DE"]
    )
    url = f"/v1/territories/{germany['id']}"
    refused = await client.patch(url, json={"countries": ["DE", "TR"]}, headers=tenant.headers)
    assert_problem(refused, 409, "territory_conflict")
    refused = await client.patch(url, json={"countries": []}, headers=tenant.headers)
    assert_problem(refused, 409, "territory_conflict")
    # Nothing was changed by the refused updates.
    unchanged = await _get(client, url, tenant.headers)
    assert unchanged["countries"] == ["DE"]
    assert unchanged["version"] == 1
    # Moving it to another priority first makes the same rules acceptable.
    moved = await client.patch(
        url, json={"priority": 20, "countries": ["DE", "TR"]}, headers=tenant.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["countries"] == ["DE", "TR"]
    assert moved.json()["version"] == 2
    assert moved.headers["ETag"] == '"2"'
    # Saving a territory unchanged never conflicts with itself.
    same = await client.patch(url, json={"name": "Germany"}, headers=tenant.headers)
    assert same.status_code == 200, same.text


async def test_validation_and_references(client: AsyncClient, tenant: Tenant) -> None:
    await _territory(client, tenant.headers, name="Turkey", priority=10, countries=["TR"])
    duplicate = await client.post(
        "/v1/territories",
        json={"name": "Turkey", "priority": 50, "countries": ["DE"]},
        headers=tenant.headers,
    )
    assert_problem(duplicate, 409, "duplicate_territory")
    for body in (
        {"priority": 10},
        {"name": "X"},
        {"name": "X", "priority": -1},
        {"name": "X", "priority": 1, "segments": ["huge"]},
        {"name": "X", "priority": 1, "colour": "red"},
    ):
        response = await client.post("/v1/territories", json=body, headers=tenant.headers)
        assert_problem(response, 422)
    unknown = await client.post(
        "/v1/territories",
        json={"name": "X", "priority": 1, "member_ids": [str(uuid.uuid4())]},
        headers=tenant.headers,
    )
    body = assert_problem(unknown, 422)
    assert body["errors"][0]["field"] == "body.member_ids"


async def test_if_match_is_honoured(client: AsyncClient, tenant: Tenant) -> None:
    territory = await _territory(client, tenant.headers, countries=["TR"])
    url = f"/v1/territories/{territory['id']}"
    stale = {**tenant.headers, "If-Match": '"7"'}
    assert_problem(await client.patch(url, json={"priority": 3}, headers=stale), 412)
    assert_problem(await client.delete(url, headers=stale), 412)
    current = {**tenant.headers, "If-Match": '"1"'}
    assert (await client.patch(url, json={"priority": 3}, headers=current)).status_code == 200
    assert_problem(await client.delete(url, headers=current), 412)
    fresh = {**tenant.headers, "If-Match": '"2"'}
    assert (await client.delete(url, headers=fresh)).status_code == 204
    assert_problem(await client.get(url, headers=tenant.headers), 404, "not_found")


# --- assignment on creation -----------------------------------------------------------------


async def test_new_leads_take_the_first_matching_territory(
    client: AsyncClient, tenant: Tenant
) -> None:
    turkey = await _territory(client, tenant.headers, name="Turkey", priority=20, countries=["TR"])
    textile = await _territory(
        client, tenant.headers, name="Textile", priority=10, industries=["textile"]
    )
    marmara = await _territory(
        client,
        tenant.headers,
        name="Marmara",
        priority=5,
        countries=["TR"],
        cities=["İstanbul", "Kocaeli"],
        segments=["enterprise"],
    )
    cases = [
        ({"country": "TR", "industry": "Textile"}, textile),
        ({"country": "TR", "industry": "food"}, turkey),
        ({"country": "DE", "industry": "TEXTILE"}, textile),
        ({"country": "TR", "city": "İstanbul", "employee_count": 5000}, marmara),
        ({"country": "TR", "city": "İstanbul", "employee_count": 5}, turkey),
        ({"country": "DE", "industry": "food"}, None),
        ({}, None),
    ]
    for fields, expected in cases:
        lead = await _lead(client, tenant.headers, **fields)
        assert lead["territory_id"] == (expected["id"] if expected else None), fields
        # Without members the creator keeps the lead.
        assert lead["owner_id"] == str(tenant.admin_id)
    by_territory = await _get(client, f"/v1/leads?territory_id={textile['id']}", tenant.headers)
    assert len(by_territory["data"]) == 2


async def test_new_accounts_are_assigned_without_changing_owner(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    rep = await create_user(client, tenant.headers)
    turkey = await _territory(
        client, tenant.headers, name="Turkey", countries=["TR"], member_ids=[rep["id"]]
    )
    enterprise = await _territory(
        client, tenant.headers, name="Enterprise", priority=1, segments=["enterprise"]
    )
    bursa = await create_account(client, tenant.headers, country="TR", city="Bursa")
    big = await create_account(client, tenant.headers, country="TR", employee_count=5000)
    abroad = await create_account(client, tenant.headers, country="FR")
    assert bursa["territory_id"] == turkey["id"]
    assert big["territory_id"] == enterprise["id"]
    assert abroad["territory_id"] is None
    assert bursa["owner_id"] == str(tenant.admin_id)
    created = await _history(app, tenant, "created")
    assert {(h.record_type, str(h.record_id), h.to_territory_id) for h in created} == {
        ("account", bursa["id"], uuid.UUID(turkey["id"])),
        ("account", big["id"], uuid.UUID(enterprise["id"])),
        ("account", abroad["id"], None),
    }
    assert all(h.from_territory_id is None for h in created)
    assert all(h.actor_user_id == tenant.admin_id for h in created)


async def test_round_robin_within_a_territory(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    members = [(await create_user(client, tenant.headers))["id"] for _ in range(3)]
    turkey = await _territory(
        client, tenant.headers, name="Turkey", countries=["TR"], member_ids=members
    )
    germany = await _territory(
        client, tenant.headers, name="Germany", countries=["DE"], member_ids=members[:1]
    )
    owners = [(await _lead(client, tenant.headers, country="TR"))["owner_id"] for _ in range(4)]
    assert owners == [members[0], members[1], members[2], members[0]]
    # An explicit owner is kept and does not take a turn …
    explicit = await _lead(client, tenant.headers, country="TR", owner_id=str(tenant.admin_id))
    assert explicit["owner_id"] == str(tenant.admin_id)
    assert explicit["territory_id"] == turkey["id"]
    # … so the cycle continues where it stopped.
    assert (await _lead(client, tenant.headers, country="TR"))["owner_id"] == members[1]
    # Each territory has its own cycle; leads of no territory stay with their creator.
    assert (await _lead(client, tenant.headers, country="DE"))["owner_id"] == members[0]
    assert (await _lead(client, tenant.headers, country="DE"))["owner_id"] == members[0]
    assert (await _lead(client, tenant.headers, country="FR"))["owner_id"] == str(tenant.admin_id)
    # Handing out leads is no edit of the territory: its version (ETag) is unchanged, so
    # an admin's If-Match read before those leads is still good.
    url = f"/v1/territories/{turkey['id']}"
    assert (await _get(client, url, tenant.headers))["version"] == 1
    # Changing the members restarts nothing: the position (1) carries on, wrapping around.
    patched = await client.patch(
        url, json={"member_ids": members[:2]}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert patched.status_code == 200, patched.text
    assert (await _lead(client, tenant.headers, country="TR"))["owner_id"] == members[0]
    assert (await _lead(client, tenant.headers, country="TR"))["owner_id"] == members[1]
    # A rep's own lead goes round-robin too (owner_id is what decides, not the caller).
    rep = await key_for(app, tenant, scopes=["*"], role="rep")
    assert (await _lead(client, rep, country="DE"))["territory_id"] == germany["id"]
    # Creation is recorded in the assignment history.
    created = await _history(app, tenant, "created")
    assert len(created) == 12
    assert {h.record_type for h in created} == {"lead"}


async def test_round_robin_under_concurrent_creation(client: AsyncClient, tenant: Tenant) -> None:
    members = [(await create_user(client, tenant.headers))["id"] for _ in range(3)]
    await _territory(client, tenant.headers, countries=["TR"], member_ids=members)
    leads = await asyncio.gather(*(_lead(client, tenant.headers, country="TR") for _ in range(9)))
    owners = [lead["owner_id"] for lead in leads]
    # Whatever the interleaving, every member gets exactly a third.
    assert sorted(owners.count(m) for m in members) == [3, 3, 3], owners


# --- realignment ----------------------------------------------------------------------------


async def test_realign_previews_then_applies_with_history(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    north = await _territory(client, tenant.headers, name="North", priority=10, countries=["TR"])
    west = await _territory(client, tenant.headers, name="West", priority=20, countries=["DE"])
    tr_lead = await _lead(client, tenant.headers, country="TR")
    de_lead = await _lead(client, tenant.headers, country="DE")
    fr_lead = await _lead(client, tenant.headers, country="FR")
    closed = await _lead(client, tenant.headers, country="TR")
    disqualified = await client.post(
        f"/v1/leads/{closed['id']}/status",
        json={"status": "disqualified", "reason_code": "spam"},
        headers=tenant.headers,
    )
    assert disqualified.status_code == 200, disqualified.text
    tr_account = await create_account(client, tenant.headers, country="TR")
    fr_account = await create_account(client, tenant.headers, country="FR")
    assert tr_lead["territory_id"] == north["id"]
    assert de_lead["territory_id"] == west["id"]
    assert fr_lead["territory_id"] is None

    # Nothing to move while the rules are unchanged.
    nothing = await _realign(client, tenant.headers, dry_run=None)
    assert nothing == {"dry_run": True, "total_moves": 0, "moves": []}

    patched = await client.patch(
        f"/v1/territories/{north['id']}", json={"countries": ["FR"]}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    # A rule change alone moves nothing.
    assert (await _get(client, f"/v1/leads/{tr_lead['id']}", tenant.headers))[
        "territory_id"
    ] == north["id"]

    expected = {
        ("lead", tr_lead["id"], north["id"], None),
        ("lead", fr_lead["id"], None, north["id"]),
        ("account", tr_account["id"], north["id"], None),
        ("account", fr_account["id"], None, north["id"]),
    }
    preview = await _realign(client, tenant.headers, dry_run=True)
    assert preview["dry_run"] is True
    assert preview["total_moves"] == 4
    assert _moves(preview) == expected
    # The preview changed nothing and recorded nothing.
    lead = await _get(client, f"/v1/leads/{tr_lead['id']}", tenant.headers)
    assert lead["territory_id"] == north["id"]
    assert lead["version"] == tr_lead["version"]
    assert await _history(app, tenant, "realignment") == []

    applied = await _realign(client, tenant.headers, dry_run=False)
    assert applied["dry_run"] is False
    assert applied["total_moves"] == 4
    assert _moves(applied) == expected

    after = {
        record["id"]: (await _get(client, path, tenant.headers))
        for record, path in (
            (tr_lead, f"/v1/leads/{tr_lead['id']}"),
            (fr_lead, f"/v1/leads/{fr_lead['id']}"),
            (de_lead, f"/v1/leads/{de_lead['id']}"),
            (closed, f"/v1/leads/{closed['id']}"),
            (tr_account, f"/v1/accounts/{tr_account['id']}"),
            (fr_account, f"/v1/accounts/{fr_account['id']}"),
        )
    }
    assert after[tr_lead["id"]]["territory_id"] is None
    assert after[tr_lead["id"]]["version"] == tr_lead["version"] + 1
    assert after[fr_lead["id"]]["territory_id"] == north["id"]
    assert after[de_lead["id"]]["territory_id"] == west["id"]
    assert after[de_lead["id"]]["version"] == de_lead["version"]
    # Closed leads keep the territory they were worked in.
    assert after[closed["id"]]["territory_id"] == north["id"]
    assert after[tr_account["id"]]["territory_id"] is None
    assert after[fr_account["id"]]["territory_id"] == north["id"]
    in_north = await _get(client, f"/v1/leads?territory_id={north['id']}", tenant.headers)
    assert {lead["id"] for lead in in_north["data"]} == {fr_lead["id"], closed["id"]}

    history = await _history(app, tenant, "realignment")
    assert {
        (
            h.record_type,
            str(h.record_id),
            str(h.from_territory_id) if h.from_territory_id else None,
            str(h.to_territory_id) if h.to_territory_id else None,
        )
        for h in history
    } == expected
    assert all(h.actor_user_id == tenant.admin_id for h in history)
    assert all(h.organization_id == tenant.organization_id for h in history)

    # Applied: a second realignment has nothing left to do.
    assert (await _realign(client, tenant.headers, dry_run=False))["total_moves"] == 0
    assert len(await _history(app, tenant, "realignment")) == 4


async def test_realign_agrees_with_assignment_for_turkish_and_mixed_case_values(
    client: AsyncClient, tenant: Tenant
) -> None:
    """Creation matches in Python, realignment in SQL: the two must agree, or a realignment
    right after creation would move records although no rule changed."""
    istanbul = await _territory(
        client, tenant.headers, name="İstanbul", priority=1, cities=["İstanbul"]
    )
    textile = await _territory(
        client, tenant.headers, name="Textile", priority=2, industries=["Tekstil"]
    )
    leads = [
        await _lead(client, tenant.headers, city="İstanbul"),
        await _lead(client, tenant.headers, city="İSTANBUL"),
        await _lead(client, tenant.headers, industry="TEKSTİL"),
        await _lead(client, tenant.headers, industry="tekstil"),
        await _lead(client, tenant.headers, city="Istanbul"),
    ]
    account = await create_account(client, tenant.headers, city="İstanbul")
    assert [lead["territory_id"] for lead in leads[:2]] == [istanbul["id"]] * 2
    assert leads[3]["territory_id"] == textile["id"]
    assert account["territory_id"] == istanbul["id"]
    preview = await _realign(client, tenant.headers, dry_run=True)
    assert preview["total_moves"] == 0, preview["moves"]


async def test_realign_previews_priority_changes_and_more_than_rules(
    client: AsyncClient, tenant: Tenant
) -> None:
    turkey = await _territory(client, tenant.headers, name="Turkey", priority=10, countries=["TR"])
    textile = await _territory(
        client, tenant.headers, name="Textile", priority=20, industries=["textile"]
    )
    lead = await _lead(client, tenant.headers, country="TR", industry="textile")
    assert lead["territory_id"] == turkey["id"]
    patched = await client.patch(
        f"/v1/territories/{textile['id']}", json={"priority": 5}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    preview = await _realign(client, tenant.headers, dry_run=True)
    assert _moves(preview) == {("lead", lead["id"], turkey["id"], textile["id"])}


async def test_realign_and_delete_need_an_admin(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    territory = await _territory(client, tenant.headers, countries=["TR"])
    rep = await key_for(app, tenant, scopes=["*"], role="rep")
    refused = await client.post(
        "/v1/territories", json={"name": "Mine", "priority": 1}, headers=rep
    )
    assert_problem(refused, 403)
    url = f"/v1/territories/{territory['id']}"
    assert_problem(await client.patch(url, json={"priority": 2}, headers=rep), 403)
    assert_problem(await client.delete(url, headers=rep), 403)
    assert_problem(await client.post("/v1/territories/realign", headers=rep), 403)
    # Reps may read them.
    assert (await client.get("/v1/territories", headers=rep)).status_code == 200
    assert (await client.get(url, headers=rep)).status_code == 200
    reader = await key_for(app, tenant, scopes=["leads:read"])
    assert_problem(await client.get("/v1/territories", headers=reader), 403)


# --- deletion -------------------------------------------------------------------------------


async def test_delete_sends_records_to_the_default_queue(
    client: AsyncClient, tenant: Tenant
) -> None:
    turkey = await _territory(client, tenant.headers, name="Turkey", countries=["TR"])
    germany = await _territory(client, tenant.headers, name="Germany", countries=["DE"])
    tr_lead = await _lead(client, tenant.headers, country="TR")
    de_lead = await _lead(client, tenant.headers, country="DE")
    account = await create_account(client, tenant.headers, country="TR")
    assert account["territory_id"] == turkey["id"]
    response = await client.delete(f"/v1/territories/{turkey['id']}", headers=tenant.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert (await _get(client, f"/v1/leads/{tr_lead['id']}", tenant.headers))[
        "territory_id"
    ] is None
    assert (await _get(client, f"/v1/accounts/{account['id']}", tenant.headers))[
        "territory_id"
    ] is None
    assert (await _get(client, f"/v1/leads/{de_lead['id']}", tenant.headers))[
        "territory_id"
    ] == germany["id"]
    assert_problem(await client.get(f"/v1/territories/{turkey['id']}", headers=tenant.headers), 404)
    # New TR leads now go to the default queue too, and nothing is left to realign.
    assert (await _lead(client, tenant.headers, country="TR"))["territory_id"] is None
    assert (await _realign(client, tenant.headers, dry_run=True))["total_moves"] == 0
    # The name and the rules are free again.
    await _territory(client, tenant.headers, name="Turkey", countries=["TR"])


# --- tenant isolation -----------------------------------------------------------------------


async def test_tenant_isolation(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    turkey = await _territory(client, tenant.headers, name="Turkey", countries=["TR"])
    url = f"/v1/territories/{turkey['id']}"
    assert (await _get(client, "/v1/territories", other_tenant.headers))["data"] == []
    assert_problem(await client.get(url, headers=other_tenant.headers), 404, "not_found")
    assert_problem(await client.patch(url, json={"priority": 1}, headers=other_tenant.headers), 404)
    assert_problem(await client.delete(url, headers=other_tenant.headers), 404)
    assert (await _get(client, url, tenant.headers))["version"] == 1
    # The same name and rules are no conflict in another organization …
    theirs = await _territory(client, other_tenant.headers, name="Turkey", countries=["TR"])
    # … and each organization's records go to its own territories.
    mine = await _lead(client, tenant.headers, country="TR")
    their_lead = await _lead(client, other_tenant.headers, country="TR")
    assert mine["territory_id"] == turkey["id"]
    assert their_lead["territory_id"] == theirs["id"]
    # Someone else's user is no member.
    other_user = await create_user(client, other_tenant.headers)
    response = await client.post(
        "/v1/territories",
        json={"name": "X", "priority": 99, "member_ids": [other_user["id"]]},
        headers=tenant.headers,
    )
    assert_problem(response, 422)


async def test_realignment_stays_within_the_tenant(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    # The other organization has records in territories this one does not know.
    theirs = await _territory(client, other_tenant.headers, name="Theirs", countries=["TR"])
    their_lead = await _lead(client, other_tenant.headers, country="TR")
    their_account = await create_account(client, other_tenant.headers, country="TR")
    assert their_lead["territory_id"] == theirs["id"]
    ours = await _territory(client, tenant.headers, name="Ours", countries=["DE"])
    our_lead = await _lead(client, tenant.headers, country="FR")
    await client.patch(
        f"/v1/territories/{ours['id']}", json={"countries": ["FR"]}, headers=tenant.headers
    )
    expected = {("lead", our_lead["id"], None, ours["id"])}
    assert _moves(await _realign(client, tenant.headers, dry_run=True)) == expected
    applied = await _realign(client, tenant.headers, dry_run=False)
    assert applied["total_moves"] == 1
    assert _moves(applied) == expected
    history = await _history(app, tenant, "realignment")
    assert [str(h.record_id) for h in history] == [our_lead["id"]]
    assert await _history(app, other_tenant, "realignment") == []
    assert (await _get(client, f"/v1/leads/{their_lead['id']}", other_tenant.headers))[
        "territory_id"
    ] == theirs["id"]
    assert (await _get(client, f"/v1/accounts/{their_account['id']}", other_tenant.headers))[
        "territory_id"
    ] == theirs["id"]
    assert (await _realign(client, other_tenant.headers, dry_run=True))["total_moves"] == 0
