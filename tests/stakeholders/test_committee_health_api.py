"""GET /v1/opportunities/{id}/committee end to end: members' touchpoint statistics and
health parts, the committee score, coverage and gaps against hand-computed numbers.

Recency is measured against the request's own clock, so every touch here is either inside
the flat 100-point zone (≤ 7 days old) or beyond 60 days (0 points): the expected numbers
stay exact however long the test takes.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from httpx import AsyncClient

from app.core.ids import utcnow
from tests.factories import Tenant, assert_problem, create, create_account

Json = dict[str, Any]


def _ago(days: float) -> str:
    return (utcnow() - timedelta(days=days)).isoformat()


async def _deal(client: AsyncClient, tenant: Tenant) -> Json:
    account = await create_account(client, tenant.headers)
    return await create(
        client,
        "/v1/opportunities",
        tenant.headers,
        {"name": "Plant automation", "account_id": account["id"]},
    )


async def _contact(client: AsyncClient, tenant: Tenant, deal: Json, first: str) -> Json:
    return await create(
        client,
        "/v1/contacts",
        tenant.headers,
        {"account_id": deal["account_id"], "first_name": first, "last_name": "Kaya"},
    )


async def _member(
    client: AsyncClient,
    tenant: Tenant,
    deal: Json,
    contact: Json,
    roles: list[str],
    influence: int,
    stance: str,
) -> Json:
    return await create(
        client,
        f"/v1/opportunities/{deal['id']}/stakeholders",
        tenant.headers,
        {"contact_id": contact["id"], "roles": roles, "influence": influence, "stance": stance},
    )


async def _touch(
    client: AsyncClient, tenant: Tenant, contacts: list[Json], days_ago: float, **body: Any
) -> Json:
    return await create(
        client,
        "/v1/activities",
        tenant.headers,
        {
            "kind": "call",
            "subject": f"Call {days_ago} days ago",
            "contact_ids": [c["id"] for c in contacts],
            "occurred_at": _ago(days_ago),
            **body,
        },
    )


async def _committee(client: AsyncClient, tenant: Tenant, deal: Json) -> Json:
    response = await client.get(f"/v1/opportunities/{deal['id']}/committee", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _health(member: Json) -> tuple[str, str, str, str, int, bool]:
    h = member["health"]
    return (
        h["score"],
        h["recency"],
        h["frequency"],
        h["stance"],
        h["touches_90d"],
        h["engaged_30d"],
    )


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_empty_committee(client: AsyncClient, tenant: Tenant) -> None:
    deal = await _deal(client, tenant)
    committee = await _committee(client, tenant, deal)
    assert committee["opportunity_id"] == deal["id"]
    assert committee["members"] == []
    assert committee["committee_health"] == {
        "score": "0.0",
        "member_average": "0.0",
        "coverage": "0.0",
        "engaged_share": "0.0",
        "key_roles_present": {
            "champion": False,
            "economic_buyer": False,
            "decision_maker": False,
        },
    }
    assert committee["gaps"] == [
        "no_members",
        "no_champion",
        "no_economic_buyer",
        "no_decision_maker",
    ]


async def test_committee_health_from_touchpoints_stances_and_roles(
    client: AsyncClient, tenant: Tenant
) -> None:
    deal = await _deal(client, tenant)
    ayse = await _contact(client, tenant, deal, "Ayşe")
    burak = await _contact(client, tenant, deal, "Burak")
    cem = await _contact(client, tenant, deal, "Cem")
    deniz = await _contact(client, tenant, deal, "Deniz")
    await _member(client, tenant, deal, ayse, ["champion"], 4, "supporter")
    await _member(client, tenant, deal, burak, ["economic_buyer", "decision_maker"], 5, "neutral")
    await _member(client, tenant, deal, cem, ["technical_evaluator"], 4, "opponent")
    await _member(client, tenant, deal, deniz, ["end_user"], 2, "unknown")

    # Ayşe: five touches within a week (one of them with Burak, on the deal).
    await _touch(client, tenant, [ayse, burak], 2, opportunity_id=deal["id"])
    for days in (1, 3, 4, 5):
        await _touch(client, tenant, [ayse], days)
    # Burak: a second touch 6 days ago, on the account only (touches are per contact).
    await _touch(client, tenant, [burak], 6, account_id=deal["account_id"], kind="meeting")
    # Cem: one touch 100 days ago: no recency, outside the 90-day frequency window.
    cem_touch = await _touch(client, tenant, [cem], 100)
    # Deniz: only a meeting planned in two days, which does not count yet.
    await _touch(client, tenant, [deniz], -2, kind="meeting")

    committee = await _committee(client, tenant, deal)
    members = {m["contact_name"]: m for m in committee["members"]}
    # Ordered by influence (highest first), then by when they joined.
    assert [m["contact_name"] for m in committee["members"]] == [
        "Burak Kaya",
        "Ayşe Kaya",
        "Cem Kaya",
        "Deniz Kaya",
    ]
    # Ayşe: 0.4·100 + 0.3·min(100, 20·5) + 0.3·100 = 40 + 30 + 30 = 100.0
    assert _health(members["Ayşe Kaya"]) == ("100.0", "100.0", "100.0", "100.0", 5, True)
    # Burak: 0.4·100 + 0.3·(20·2) + 0.3·50 = 40 + 12 + 15 = 67.0
    assert _health(members["Burak Kaya"]) == ("67.0", "100.0", "40.0", "50.0", 2, True)
    # Cem: 0.4·0 + 0.3·0 + 0.3·0 = 0.0; the old touch is still his last one
    assert _health(members["Cem Kaya"]) == ("0.0", "0.0", "0.0", "0.0", 0, False)
    assert _instant(members["Cem Kaya"]["health"]["last_touch_at"]) == _instant(
        cem_touch["occurred_at"]
    )
    # Deniz: never touched (yet): 0.4·0 + 0.3·0 + 0.3·30 = 9.0
    assert _health(members["Deniz Kaya"]) == ("9.0", "0.0", "0.0", "30.0", 0, False)
    assert members["Deniz Kaya"]["health"]["last_touch_at"] is None
    burak_member = members["Burak Kaya"]
    assert burak_member["roles"] == ["decision_maker", "economic_buyer"]
    assert (burak_member["influence"], burak_member["stance"]) == (5, "neutral")
    assert burak_member["contact_status"] == "active"

    assert committee["committee_health"] == {
        # (100·4 + 67·5 + 0·4 + 9·2) / (4 + 5 + 4 + 2) = (400 + 335 + 0 + 18) / 15
        # = 753 / 15 = 50.2
        "member_average": "50.2",
        # champion, economic buyer and decision maker: 75; engaged 2 of 4: 25 × 0.5 = 12.5
        "coverage": "87.5",
        "engaged_share": "50.0",
        # 0.5·50.2 + 0.5·87.5 = 25.1 + 43.75 = 68.85 → 68.9
        "score": "68.9",
        "key_roles_present": {"champion": True, "economic_buyer": True, "decision_maker": True},
    }
    assert committee["gaps"] == ["opponent_with_high_influence"]
    formula = committee["formula"]
    for weight in (
        "0.4 × recency",
        "0.3 × frequency",
        "0.3 × stance",
        "0.5 × member average",
        "0.5 × coverage",
    ):
        assert weight in formula
    assert "\n" not in formula

    # The champion leaves the company.
    left = await client.post(
        f"/v1/contacts/{ayse['id']}/status", json={"status": "left_company"}, headers=tenant.headers
    )
    assert left.status_code == 200, left.text
    committee = await _committee(client, tenant, deal)
    members = {m["contact_name"]: m for m in committee["members"]}
    # Her parts stay, her score drops to 0.
    assert _health(members["Ayşe Kaya"]) == ("0.0", "100.0", "100.0", "100.0", 5, True)
    assert members["Ayşe Kaya"]["contact_status"] == "left_company"
    assert committee["committee_health"] == {
        # (0·4 + 67·5 + 0·4 + 9·2) / 15 = 353 / 15 = 23.533… → 23.5
        "member_average": "23.5",
        # economic buyer and decision maker: 50; engaged: Burak, 1 of the 3 still at the
        # company → 25 × 1/3 = 8.33… → 58.33… shown 58.3
        "coverage": "58.3",
        "engaged_share": "33.3",
        # 0.5·23.533… + 0.5·58.333… = 11.766… + 29.166… = 40.93… → 40.9
        "score": "40.9",
        "key_roles_present": {"champion": False, "economic_buyer": True, "decision_maker": True},
    }
    assert committee["gaps"] == [
        "no_champion",
        "opponent_with_high_influence",
        "member_left_company",
    ]


async def test_champion_not_engaged_and_no_decision_maker(
    client: AsyncClient, tenant: Tenant
) -> None:
    deal = await _deal(client, tenant)
    champion = await _contact(client, tenant, deal, "Ece")
    buyer = await _contact(client, tenant, deal, "Fatih")
    await _member(client, tenant, deal, champion, ["champion", "influencer"], 3, "supporter")
    await _member(client, tenant, deal, buyer, ["economic_buyer"], 3, "neutral")
    await _touch(client, tenant, [champion], 70)  # last touch 70 days ago
    for days in (1, 2, 7):
        await _touch(client, tenant, [buyer], days, kind="email")

    committee = await _committee(client, tenant, deal)
    members = {m["contact_name"]: m for m in committee["members"]}
    # Ece: 0.4·0 + 0.3·20 + 0.3·100 = 0 + 6 + 30 = 36.0 (70 days: in the 90-day window)
    assert _health(members["Ece Kaya"]) == ("36.0", "0.0", "20.0", "100.0", 1, False)
    # Fatih: 0.4·100 + 0.3·60 + 0.3·50 = 40 + 18 + 15 = 73.0
    assert _health(members["Fatih Kaya"]) == ("73.0", "100.0", "60.0", "50.0", 3, True)
    assert committee["committee_health"] == {
        # (36·3 + 73·3) / 6 = 327 / 6 = 54.5
        "member_average": "54.5",
        # champion 25 + economic buyer 25 + engaged 1 of 2: 12.5 = 62.5
        "coverage": "62.5",
        "engaged_share": "50.0",
        # 0.5·54.5 + 0.5·62.5 = 27.25 + 31.25 = 58.5
        "score": "58.5",
        "key_roles_present": {"champion": True, "economic_buyer": True, "decision_maker": False},
    }
    assert committee["gaps"] == ["no_decision_maker", "champion_not_engaged_30d"]

    # A fresh touch re-engages the champion: 0.4·100 + 0.3·40 + 0.3·100 = 82.0
    await _touch(client, tenant, [champion], 0.5, kind="meeting")
    committee = await _committee(client, tenant, deal)
    members = {m["contact_name"]: m for m in committee["members"]}
    assert _health(members["Ece Kaya"]) == ("82.0", "100.0", "40.0", "100.0", 2, True)
    # (82·3 + 73·3) / 6 = 77.5; coverage 50 + 25 = 75; 0.5·77.5 + 0.5·75 = 76.25 → 76.3
    assert committee["committee_health"]["member_average"] == "77.5"
    assert committee["committee_health"]["coverage"] == "75.0"
    assert committee["committee_health"]["score"] == "76.3"
    assert committee["gaps"] == ["no_decision_maker"]


async def test_influence_weights_the_member_average(client: AsyncClient, tenant: Tenant) -> None:
    deal = await _deal(client, tenant)
    fan = await _contact(client, tenant, deal, "Gül")
    critic = await _contact(client, tenant, deal, "Hakan")
    await _member(client, tenant, deal, fan, ["champion"], 1, "supporter")
    await _member(client, tenant, deal, critic, ["influencer"], 3, "opponent")
    for days in (1, 2, 3, 4, 5):
        await _touch(client, tenant, [fan], days)

    committee = await _committee(client, tenant, deal)
    assert [m["health"]["score"] for m in committee["members"]] == ["0.0", "100.0"]
    # (0·3 + 100·1) / 4 = 25.0; coverage 25 + 25 × 1/2 = 37.5;
    # score 0.5·25 + 0.5·37.5 = 12.5 + 18.75 = 31.25 → 31.3
    health = committee["committee_health"]
    assert (health["member_average"], health["coverage"], health["score"]) == (
        "25.0",
        "37.5",
        "31.3",
    )
    # an opponent with influence 3 is not yet a named risk
    assert committee["gaps"] == ["no_economic_buyer", "no_decision_maker"]

    # Once the critic's influence is high, it is.
    [critic_member] = [m for m in committee["members"] if m["contact_id"] == critic["id"]]
    raised = await client.patch(
        f"/v1/opportunities/{deal['id']}/stakeholders/{critic_member['id']}",
        json={"influence": 4},
        headers=tenant.headers,
    )
    assert raised.status_code == 200, raised.text
    committee = await _committee(client, tenant, deal)
    # (0·4 + 100·1) / 5 = 20.0; score 0.5·20 + 0.5·37.5 = 10 + 18.75 = 28.75 → 28.8
    assert committee["committee_health"]["member_average"] == "20.0"
    assert committee["committee_health"]["score"] == "28.8"
    assert committee["gaps"][-1] == "opponent_with_high_influence"


async def test_committee_of_unknown_or_foreign_deal_is_404(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    deal = await _deal(client, tenant)
    ghost = await client.get(f"/v1/opportunities/{uuid.uuid4()}/committee", headers=tenant.headers)
    assert_problem(ghost, 404, "not_found")
    foreign = await client.get(
        f"/v1/opportunities/{deal['id']}/committee", headers=other_tenant.headers
    )
    assert_problem(foreign, 404, "not_found")
