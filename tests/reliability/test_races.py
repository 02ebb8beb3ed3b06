"""Races against a real ``dealbase serve --workers 2``: many concurrent requests on the same
records, spread over two worker processes. Every answer is a success or a clean problem
(409/412/422), never a 500; nothing is lost or written twice; history is complete."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.factories import Tenant
from tests.reliability.harness import Server, connect, new_org

CONCURRENCY = 100
CLEAN_REFUSALS = {409, 412, 422}


@pytest.fixture
async def api(live_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=live_server.base_url, timeout=60.0, limits=limits
    ) as client:
        yield client


@pytest.fixture
async def org(live_server: Server) -> Tenant:
    return await new_org(live_server.database_url)


async def _created(api: httpx.AsyncClient, path: str, headers: dict[str, str], body: Any) -> Any:
    response = await api.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _assert_clean(responses: list[httpx.Response], ok: set[int]) -> None:
    """Every answer is a success or a problem document with an expected status."""
    for response in responses:
        if response.status_code in ok:
            continue
        assert response.status_code in CLEAN_REFUSALS, (response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"], response.text


# --- Idempotency-Key -------------------------------------------------------------------------


async def test_one_idempotency_key_posted_100_times_at_once_writes_once(
    api: httpx.AsyncClient, org: Tenant, live_server: Server
) -> None:
    email = f"idem-{uuid.uuid4().hex[:8]}@example.com"
    body = {"last_name": "Idempotent", "email": email, "company_name": "Once A.Ş."}
    headers = {**org.headers, "Idempotency-Key": str(uuid.uuid4())}
    responses = await asyncio.gather(
        *(api.post("/v1/leads", json=body, headers=headers) for _ in range(CONCURRENCY))
    )
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code >= 500]
    # API.md: the same key in flight concurrently → 409 idempotency_key_in_flight.
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "idempotency_key_in_flight", response.text
    created = [r for r in responses if r.status_code == 201]
    assert created, statuses
    originals = [r for r in created if r.headers.get("idempotent-replayed") != "true"]
    assert len(originals) == 1, statuses
    lead_id = originals[0].json()["id"]
    assert {r.json()["id"] for r in created} == {lead_id}
    assert len({r.content for r in created}) == 1  # replays are byte-for-byte the original
    # Once it settled, a retry replays the same 201.
    retry = await api.post("/v1/leads", json=body, headers=headers)
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == lead_id

    conn = await connect(live_server.database_url)
    try:
        org_id = org.organization_id
        leads = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE organization_id = $1 AND email = $2", org_id, email
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM outbox_events WHERE organization_id = $1"
            " AND event_type = 'lead.created' AND resource_id = $2",
            org_id,
            uuid.UUID(lead_id),
        )
        record = await conn.fetchrow(
            "SELECT state, response_status FROM idempotency_records"
            " WHERE organization_id = $1 AND key = $2",
            org_id,
            headers["Idempotency-Key"],
        )
    finally:
        await conn.close()
    assert (leads, events) == (1, 1)
    assert (record["state"], record["response_status"]) == ("completed", 201)


# --- stage moves -----------------------------------------------------------------------------

STAGES = [
    {
        "key": key,
        "name": key.title(),
        "probability": str(10 * (n + 1)),
        "forecast_category": "pipeline",
    }
    for n, key in enumerate(("one", "two", "three", "four", "five"))
] + [
    {
        "key": "won",
        "name": "Won",
        "kind": "won",
        "probability": "100",
        "forecast_category": "closed",
    },
    {
        "key": "lost",
        "name": "Lost",
        "kind": "lost",
        "probability": "0",
        "forecast_category": "omitted",
    },
]
OPEN_STAGES = [s["key"] for s in STAGES[:5]]


async def _deal(api: httpx.AsyncClient, org: Tenant) -> dict[str, Any]:
    pipeline = await _created(
        api,
        "/v1/pipelines",
        org.headers,
        {"name": f"Race {uuid.uuid4().hex[:6]}", "stages": STAGES},
    )
    account = await _created(api, "/v1/accounts", org.headers, {"name": "Race Ltd."})
    deal: dict[str, Any] = await _created(
        api,
        "/v1/opportunities",
        org.headers,
        {
            "name": "Contested deal",
            "account_id": account["id"],
            "pipeline_id": pipeline["id"],
            "amount": "1000",
        },
    )
    return deal


async def _stage_history(database_url: str, org: Tenant, deal_id: str) -> list[Any]:
    conn = await connect(database_url)
    try:
        return list(
            await conn.fetch(
                "SELECT from_stage, to_stage, direction, exited_at, exit_direction"
                " FROM opportunity_stage_history"
                " WHERE organization_id = $1 AND opportunity_id = $2 ORDER BY moved_at, id",
                org.organization_id,
                uuid.UUID(deal_id),
            )
        )
    finally:
        await conn.close()


async def test_concurrent_stage_moves_serialize_and_history_chains(
    api: httpx.AsyncClient, org: Tenant, live_server: Server
) -> None:
    deal = await _deal(api, org)
    url = f"/v1/opportunities/{deal['id']}/stage"
    # Without If-Match every move is applied in turn (a move to the stage the deal is in
    # by then is refused with 409); backward moves carry their reason.
    targets = [OPEN_STAGES[n % len(OPEN_STAGES)] for n in range(7, 7 + 40)]
    moves = await asyncio.gather(
        *(api.post(url, json={"stage": t, "reason": "race"}, headers=org.headers) for t in targets)
    )
    _assert_clean(moves, {200})
    done = sorted((r for r in moves if r.status_code == 200), key=lambda r: r.json()["version"])
    assert done, [r.text for r in moves]
    for refused in (r for r in moves if r.status_code != 200):
        assert refused.json()["code"] == "invalid_stage_move", refused.text
    # No lost update: every success made exactly one new version.
    versions = [r.json()["version"] for r in done]
    assert versions == list(range(2, 2 + len(done)))

    # With If-Match on the version just read, exactly one of many wins; the rest are 412.
    current = (await api.get(f"/v1/opportunities/{deal['id']}", headers=org.headers)).json()
    assert current["version"] == versions[-1] and current["stage"] == done[-1].json()["stage"]
    others = [s for s in OPEN_STAGES if s != current["stage"]]
    guarded = await asyncio.gather(
        *(
            api.post(
                url,
                json={"stage": others[n % len(others)], "reason": "race"},
                headers={**org.headers, "If-Match": f'"{current["version"]}"'},
            )
            for n in range(30)
        )
    )
    _assert_clean(guarded, {200})
    assert sorted(Counter(r.status_code for r in guarded).items()) == [(200, 1), (412, 29)]
    assert all(r.json()["code"] == "version_mismatch" for r in guarded if r.status_code == 412)
    done.append(next(r for r in guarded if r.status_code == 200))

    final = (await api.get(f"/v1/opportunities/{deal['id']}", headers=org.headers)).json()
    assert final["stage"] == done[-1].json()["stage"]
    assert final["version"] == 1 + len(done)

    # Stage history: the creation, then one row per successful move, chained.
    history = await _stage_history(live_server.database_url, org, deal["id"])
    assert len(history) == 1 + len(done)
    assert (history[0]["from_stage"], history[0]["to_stage"]) == (None, "one")
    assert [h["to_stage"] for h in history[1:]] == [r.json()["stage"] for r in done]
    for previous, row in itertools.pairwise(history):
        assert row["from_stage"] == previous["to_stage"]
        assert previous["exited_at"] is not None
        assert previous["exit_direction"] == row["direction"]
    assert history[-1]["exited_at"] is None
    api_history = (
        await api.get(
            f"/v1/opportunities/{deal['id']}/stage-history",
            params={"limit": 200},
            headers=org.headers,
        )
    ).json()["data"]
    assert len(api_history) == len(history)

    conn = await connect(live_server.database_url)
    try:
        events = await conn.fetchval(
            "SELECT count(*) FROM outbox_events WHERE organization_id = $1"
            " AND event_type = 'opportunity.stage_changed' AND resource_id = $2",
            org.organization_id,
            uuid.UUID(deal["id"]),
        )
    finally:
        await conn.close()
    assert events == len(done)


# The stage and deal roll-ups summed afresh from the history and the deals
# (app/metrics/rollups.py counts them).
ROLLUPS_FROM_HISTORY = """
SELECT 'entry', (moved_at AT TIME ZONE 'UTC')::date, to_stage_id, NULL::integer,
       count(*), count(*) FILTER (WHERE exit_direction IN ('forward', 'won'))
FROM opportunity_stage_history
WHERE organization_id = $1 AND direction NOT IN ('won', 'lost') GROUP BY 2, 3
UNION ALL
SELECT 'exit', (moved_at AT TIME ZONE 'UTC')::date, from_stage_id,
       floor(days_in_previous_stage)::integer, count(*),
       sum((days_in_previous_stage * 100)::bigint)
FROM opportunity_stage_history
WHERE organization_id = $1 AND days_in_previous_stage IS NOT NULL AND direction <> 'reopen'
GROUP BY 2, 3, 4
UNION ALL
SELECT 'close', close_date, stage_id, NULL, count(*), sum(amount)::bigint
FROM opportunities
WHERE organization_id = $1 AND deleted_at IS NULL AND close_date IS NOT NULL GROUP BY 2, 3
UNION ALL
SELECT 'created', (created_at AT TIME ZONE 'UTC')::date, NULL, (stage_kind = 'won')::integer,
       count(*), sum(amount)::bigint
FROM opportunities WHERE organization_id = $1 AND deleted_at IS NULL GROUP BY 2, 4
"""
ROLLUPS = """
SELECT 'entry', day, stage_id, NULL::integer, entered, advanced
FROM stage_entry_rollups WHERE organization_id = $1
UNION ALL
SELECT 'exit', day, stage_id, whole_days, exits, hundredths
FROM stage_exit_rollups WHERE organization_id = $1
UNION ALL
SELECT 'close', day, stage_id, NULL, sum(deals), sum(amount)::bigint
FROM deal_close_rollups WHERE organization_id = $1 GROUP BY 2, 3 HAVING sum(deals) <> 0
UNION ALL
SELECT 'created', day, NULL, won::integer, sum(deals), sum(amount)::bigint
FROM deal_created_rollups WHERE organization_id = $1 GROUP BY 2, 4 HAVING sum(deals) <> 0
"""


async def test_concurrent_moves_of_many_deals_keep_the_rollups_exact(
    api: httpx.AsyncClient, org: Tenant, live_server: Server
) -> None:
    """Moves of different deals into and out of the same stages add to the same roll-up
    rows from two processes at once: none deadlocks, and no count is lost. KPI summaries
    requested meanwhile are cached at whatever generation they saw: the one served after
    the race is the one computed afresh."""
    first = await _deal(api, org)
    deals = [first] + [
        await _created(
            api,
            "/v1/opportunities",
            org.headers,
            {
                "name": f"Deal {n}",
                "account_id": first["account_id"],
                "pipeline_id": first["pipeline_id"],
                "amount": "1000",
                "close_date": date.today().isoformat(),  # the same close roll-up rows
            },
        )
        for n in range(7)
    ]
    # Each deal is sent, in rounds, forward and backward moves, then won or lost.
    rounds = ["three", "one", "four", "two", "five", "one", "three", "two", "four", "won"]
    rounds += ["one", "lost"]
    requests = [
        api.post(
            f"/v1/opportunities/{deals[n % len(deals)]['id']}/stage",
            json={"stage": rounds[n // len(deals) % len(rounds)], "reason": "race"},
            headers=org.headers,
        )
        for n in range(CONCURRENCY)
    ]
    summaries = [api.get("/v1/metrics/summary", headers=org.headers) for _ in range(10)]
    answers = await asyncio.gather(*(requests + summaries))
    moves = answers[:CONCURRENCY]
    _assert_clean(moves, {200})
    assert all(r.status_code == 200 for r in answers[CONCURRENCY:])
    served = await api.get("/v1/metrics/summary", headers=org.headers)
    fresh = await api.get(
        "/v1/metrics/summary", headers=org.headers | {"Cache-Control": "no-cache"}
    )
    assert served.json() == fresh.json()
    assert sum(r.status_code == 200 for r in moves) >= 2 * len(deals)

    conn = await connect(live_server.database_url)
    try:
        counted = {tuple(row) for row in await conn.fetch(ROLLUPS, org.organization_id)}
        expected = {
            tuple(row) for row in await conn.fetch(ROLLUPS_FROM_HISTORY, org.organization_id)
        }
    finally:
        await conn.close()
    assert counted == expected


# --- quote edits ------------------------------------------------------------------------------


async def _catalog(api: httpx.AsyncClient, org: Tenant, products: int) -> list[str]:
    book = await _created(
        api, "/v1/price-books", org.headers, {"name": "Standard", "currency": "TRY"}
    )
    ids = []
    for n in range(products):
        product = await _created(
            api,
            "/v1/products",
            org.headers,
            {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": f"Product {n}"},
        )
        put = await api.put(
            f"/v1/price-books/{book['id']}/entries",
            json={"product_id": product["id"], "unit_price": "100"},
            headers=org.headers,
        )
        assert put.status_code == 200, put.text
        ids.append(product["id"])
    return ids


async def _quote(
    api: httpx.AsyncClient, org: Tenant, product_id: str, discount: str, headers: dict[str, str]
) -> dict[str, Any]:
    account = await _created(api, "/v1/accounts", org.headers, {"name": "Quote Race A.Ş."})
    deal = await _created(
        api,
        "/v1/opportunities",
        org.headers,
        {"name": "Quoted deal", "account_id": account["id"]},
    )
    line = {"product_id": product_id, "quantity": "10", "discount_pct": discount}
    quote: dict[str, Any] = await _created(
        api, "/v1/quotes", headers, {"opportunity_id": deal["id"], "line_items": [line]}
    )
    return quote


async def test_concurrent_quote_edits_one_etag_wins_and_no_line_is_lost(
    api: httpx.AsyncClient, org: Tenant
) -> None:
    products = await _catalog(api, org, 12)
    quote = await _quote(api, org, products[0], "0", org.headers)
    url = f"/v1/quotes/{quote['id']}"
    etag = f'"{quote["version"]}"'

    # Many edits with the ETag just read: exactly one applies, the others are 412.
    edits = await asyncio.gather(
        *(
            api.patch(
                url,
                json={"notes": f"edit {n}", "payment_terms_days": n},
                headers={**org.headers, "If-Match": etag},
            )
            for n in range(30)
        )
    )
    _assert_clean(edits, {200})
    assert sorted(Counter(r.status_code for r in edits).items()) == [(200, 1), (412, 29)]
    winner = next(r for r in edits if r.status_code == 200).json()
    now = (await api.get(url, headers=org.headers)).json()
    assert now["version"] == quote["version"] + 1
    assert now["current"]["notes"] == winner["current"]["notes"]
    assert now["current"]["payment_terms_days"] == winner["current"]["payment_terms_days"]

    # Lines added at once without If-Match: every one lands and the totals count them all.
    added = await asyncio.gather(
        *(
            api.post(
                f"{url}/line-items",
                json={"product_id": product, "quantity": "1"},
                headers=org.headers,
            )
            for product in products[1:]
        )
    )
    _assert_clean(added, {201})
    assert all(r.status_code == 201 for r in added), [r.text for r in added]
    final = (await api.get(url, headers=org.headers)).json()
    lines = final["current"]["line_items"]
    assert len(lines) == len(products)
    assert sorted(line["position"] for line in lines) == list(range(1, len(products) + 1))
    assert final["version"] == now["version"] + len(added)
    assert Decimal(final["current"]["subtotal"]) == sum(
        Decimal(line["list_amount"]) for line in lines
    )
    assert Decimal(final["current"]["net_total"]) == Decimal("1000") + 100 * (len(products) - 1)


# --- approvals --------------------------------------------------------------------------------


async def _person(
    api: httpx.AsyncClient, org: Tenant, live_server: Server, **fields: Any
) -> tuple[str, dict[str, str]]:
    user = await _created(
        api,
        "/v1/users",
        org.headers,
        {"email": f"user-{uuid.uuid4().hex[:8]}@example.com", "name": "Someone", **fields},
    )
    token = await _api_key(live_server.database_url, org, uuid.UUID(user["id"]))
    return user["id"], {"Authorization": f"Bearer {token}"}


async def _api_key(database_url: str, org: Tenant, user_id: uuid.UUID) -> str:
    from app.api_keys.service import issue_key
    from app.core.config import Settings
    from app.core.database import create_engine, create_sessionmaker
    from app.core.tenancy import Actor, bind_tenant

    engine = create_engine(database_url, Settings(database_url=database_url, db_pool_size=1))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            bind_tenant(session, org.organization_id, Actor())
            _, token = await issue_key(
                session,
                organization_id=org.organization_id,
                user_id=user_id,
                name="race key",
                scopes=["*"],
            )
        return token
    finally:
        await engine.dispose()


async def test_concurrent_decisions_on_one_approval_record_exactly_one(
    api: httpx.AsyncClient, org: Tenant, live_server: Server
) -> None:
    manager_id, manager = await _person(
        api, org, live_server, role="manager", approval_max_discount_pct="20"
    )
    _, rep = await _person(api, org, live_server, role="rep", manager_id=manager_id)
    [product] = await _catalog(api, org, 1)
    quote = await _quote(api, org, product, "15", rep)  # 15 % off: the manager approves
    submitted = await api.post(f"/v1/quotes/{quote['id']}/submit", headers=rep)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "pending_approval"
    [request] = (
        await api.get("/v1/approvals", params={"quote_id": quote["id"]}, headers=rep)
    ).json()["data"]
    approve = f"/v1/approvals/{request['id']}/approve"
    reject = f"/v1/approvals/{request['id']}/reject"
    recall = f"/v1/quotes/{quote['id']}/recall"

    # The manager approves and rejects at once (two tabs, two devices) while the rep
    # recalls the request and edits the quote (an edit supersedes a pending request).
    calls: list[tuple[str, Any]] = []
    for n in range(12):
        calls.append(("approve", api.post(approve, json={"comment": f"ok {n}"}, headers=manager)))
        calls.append(
            (
                "reject",
                api.post(
                    reject,
                    json={"reason_code": "price", "reason": f"too cheap {n}"},
                    headers=manager,
                ),
            )
        )
        if n % 3 == 0:
            calls.append(("recall", api.post(recall, headers=rep)))
            calls.append(
                (
                    "edit",
                    api.patch(f"/v1/quotes/{quote['id']}", json={"notes": f"n{n}"}, headers=rep),
                )
            )
    responses = await asyncio.gather(*(call for _, call in calls))
    by_kind: dict[str, list[httpx.Response]] = {}
    for (kind, _), response in zip(calls, responses, strict=True):
        by_kind.setdefault(kind, []).append(response)
    _assert_clean(list(responses), {200})
    # Edits never conflict (they serialize); every decision but one is refused.
    assert all(r.status_code == 200 for r in by_kind["edit"]), [r.text for r in by_kind["edit"]]
    decided = {
        kind: sum(r.status_code == 200 for r in by_kind[kind])
        for kind in ("approve", "reject", "recall")
    }
    assert sum(decided.values()) <= 1, decided

    conn = await connect(live_server.database_url)
    try:
        request_row = await conn.fetchrow(
            "SELECT status, decided_at FROM approval_requests"
            " WHERE organization_id = $1 AND id = $2",
            org.organization_id,
            uuid.UUID(request["id"]),
        )
        steps = await conn.fetch(
            "SELECT status, decided_by_id FROM approval_steps"
            " WHERE organization_id = $1 AND request_id = $2",
            org.organization_id,
            uuid.UUID(request["id"]),
        )
        events = [
            row["event_type"]
            for row in await conn.fetch(
                "SELECT event_type FROM outbox_events WHERE organization_id = $1"
                " AND resource_id = $2 AND event_type <> 'quote.created' ORDER BY id",
                org.organization_id,
                uuid.UUID(quote["id"]),
            )
        ]
    finally:
        await conn.close()
    outcome = {
        "approved": "approve",
        "rejected": "reject",
        "recalled": "recall",
        "superseded": None,
    }
    assert request_row["status"] in outcome, request_row
    assert request_row["decided_at"] is not None
    winner = outcome[request_row["status"]]
    assert decided == {k: int(k == winner) for k in decided}, (decided, request_row)
    [step] = steps
    if winner in ("approve", "reject"):
        assert (step["status"], step["decided_by_id"]) == (
            request_row["status"],
            uuid.UUID(manager_id),
        )
    else:
        assert (step["status"], step["decided_by_id"]) == ("cancelled", None)
    decisions = [e for e in events if e in ("quote.approved", "quote.rejected", "quote.recalled")]
    assert decisions == ([] if winner is None else [f"quote.{request_row['status']}"])
    assert events[0] == "quote.approval_requested"
