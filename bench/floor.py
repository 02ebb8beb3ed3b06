"""The floor: a minimal FastAPI + asyncpg app that sends the same SQL as dealbase for three
operations, with nothing else around it (no ORM, no validation models, no middleware, no
audit or event code in Python — only their INSERT statements).

`bench/http_load.py` serves it with uvicorn beside `dealbase serve`, on the same database
and with the same number of workers, so every dealbase figure can be read as a ratio to it.

- ``GET /v1/opportunities/{id}``: the API-key lookup, then the deal joined to its stage.
- ``GET /v1/opportunities?limit=&cursor=``: the key lookup, then one keyset page ordered
  ``-created_at, -id`` (the cursor is dealbase's own, so one load script serves both).
- ``POST /v1/leads``: the key lookup, then in one transaction the statements dealbase runs
  to create a lead: the duplicate check, the settings, territories and scoring rules
  reads, the lead, its status history, its territory assignment, the audit row, the
  active nurture programs and the outbox event.

    FLOOR_DATABASE_URL=postgresql://… uvicorn bench.floor:app --workers 2 --port 8001
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

TOKEN_PREFIX = "dlb_"
OPEN_LEAD_STATUSES = ["new", "mql", "sal", "sql", "recycled"]

KEY_SQL = """
SELECT k.key_hash, k.revoked_at, k.expires_at, u.role, u.is_active, k.user_id
FROM api_keys k LEFT JOIN users u ON u.organization_id = k.organization_id AND u.id = k.user_id
WHERE k.organization_id = $1 AND k.id = $2
"""
DEAL_SQL = """
SELECT o.*, s.key AS stage, s.name AS stage_name, s.probability
FROM opportunities o
JOIN pipeline_stages s ON s.organization_id = o.organization_id AND s.id = o.stage_id
WHERE o.organization_id = $1 AND o.deleted_at IS NULL
"""
INSERT_LEAD = """
INSERT INTO leads (organization_id, id, first_name, last_name, email, company_name, segment,
                   source, owner_id, status, score, score_breakdown, bant, created_at,
                   updated_at, version)
VALUES ($1, $2, $3, $4, $5, $6, 'smb', 'other', $7, 'new', 0, '[]', '{}', $8, $8, 1)
RETURNING *
"""


def _json(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value.isoformat() if hasattr(value, "isoformat") else value


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {key: _json(value) for key, value in record.items()}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["FLOOR_DATABASE_URL"], min_size=2, max_size=10
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


async def _authenticate(conn: asyncpg.Connection, request: Request) -> tuple[uuid.UUID, Any]:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    ids = token[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 64]
    org, key_id = uuid.UUID(hex=ids[:32]), uuid.UUID(hex=ids[32:])
    key = await conn.fetchrow(KEY_SQL, org, key_id)
    digest = hashlib.sha256(token.encode()).hexdigest()
    if key is None or not hmac.compare_digest(digest, key["key_hash"]):
        raise HTTPException(401)
    return org, key["user_id"]


@app.get("/v1/opportunities/{opportunity_id}")
async def get_opportunity(opportunity_id: uuid.UUID, request: Request) -> JSONResponse:
    async with request.app.state.pool.acquire() as conn:
        org, _ = await _authenticate(conn, request)
        row = await conn.fetchrow(DEAL_SQL + " AND o.id = $2", org, opportunity_id)
    if row is None:
        raise HTTPException(404)
    return JSONResponse(_row(row))


@app.get("/v1/opportunities")
async def list_opportunities(
    request: Request, limit: int = 50, cursor: str | None = None
) -> JSONResponse:
    async with request.app.state.pool.acquire() as conn:
        org, _ = await _authenticate(conn, request)
        if cursor:
            raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            created_at = datetime.fromisoformat(raw["v"][0])
            rows = await conn.fetch(
                DEAL_SQL + " AND o.created_at <= $2"
                " AND (o.created_at < $2 OR (o.created_at = $2 AND o.id < $3))"
                " ORDER BY o.created_at DESC, o.id DESC LIMIT $4",
                org,
                created_at,
                uuid.UUID(raw["v"][1]),
                limit + 1,
            )
        else:
            rows = await conn.fetch(
                DEAL_SQL + " ORDER BY o.created_at DESC, o.id DESC LIMIT $2", org, limit + 1
            )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        payload = {"s": ["-created_at", "-id"], "v": [_json(last["created_at"]), str(last["id"])]}
        next_cursor = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    return JSONResponse({"data": [_row(r) for r in page], "next_cursor": next_cursor})


@app.post("/v1/leads", status_code=201)
async def create_lead(request: Request) -> JSONResponse:
    body = await request.json()
    now = datetime.now(UTC)
    lead_id = uuid.uuid4()
    async with request.app.state.pool.acquire() as conn:
        org, user_id = await _authenticate(conn, request)
        async with conn.transaction():
            email = body["email"].lower()
            duplicate = await conn.fetchval(
                "SELECT id FROM leads WHERE organization_id = $1 AND email = $2"
                " AND status = ANY($3) AND deleted_at IS NULL LIMIT 1",
                org,
                email,
                OPEN_LEAD_STATUSES,
            )
            if duplicate is not None:
                raise HTTPException(409)
            await conn.fetchval("SELECT settings FROM organizations WHERE id = $1", org)
            await conn.fetch(
                "SELECT * FROM territories WHERE organization_id = $1 ORDER BY priority, name, id",
                org,
            )
            await conn.fetch(
                "SELECT * FROM lead_scoring_rules WHERE active AND organization_id = $1"
                " ORDER BY name",
                org,
            )
            lead = await conn.fetchrow(
                INSERT_LEAD,
                org,
                lead_id,
                body["first_name"],
                body["last_name"],
                email,
                body.get("company_name"),
                user_id,
                now,
            )
            await conn.execute(
                "INSERT INTO lead_status_history (organization_id, id, lead_id, to_status, at,"
                " actor_user_id, actor_type) VALUES ($1, $2, $3, 'new', $4, $5, 'user')",
                org,
                uuid.uuid4(),
                lead_id,
                now,
                user_id,
            )
            await conn.execute(
                "INSERT INTO territory_assignments (organization_id, id, record_type, record_id,"
                " reason, at, actor_user_id) VALUES ($1, $2, 'lead', $3, 'created', $4, $5)",
                org,
                uuid.uuid4(),
                lead_id,
                now,
                user_id,
            )
            await conn.execute(
                "INSERT INTO audit_log (organization_id, id, at, action, resource_type,"
                " resource_id, changed_fields, actor_user_id) VALUES"
                " ($1, $2, $3, 'lead.created', 'lead', $4, $5::jsonb, $6)",
                org,
                uuid.uuid4(),
                now,
                lead_id,
                json.dumps(sorted(body)),
                user_id,
            )
            await conn.fetch(
                "SELECT * FROM nurture_programs WHERE is_active AND target = 'lead'"
                " AND organization_id = $1",
                org,
            )
            await conn.execute(
                "INSERT INTO outbox_events (organization_id, id, event_type, resource_type,"
                " resource_id, payload, occurred_at, actor_user_id) VALUES"
                " ($1, $2, 'lead.created', 'lead', $3, $4::jsonb, $5, $6)",
                org,
                uuid.uuid4(),
                lead_id,
                json.dumps({"id": str(lead_id), "email": email}),
                now,
                user_id,
            )
    return JSONResponse(_row(lead), status_code=201)
