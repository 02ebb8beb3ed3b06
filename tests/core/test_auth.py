"""Authentication (401), authorization (403) and the API-key lifecycle."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import inspect, select, text, update

from app.core.auth import Principal, VerifiedKeys
from app.core.tenancy import UNSCOPED, Actor, bind_tenant
from app.models import ApiKey, User
from tests.factories import Tenant, assert_problem, key_for


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def in_future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def create_key(client: AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": "a key", "scopes": ["*"], **fields}
    response = await client.post("/v1/api-keys", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def load_key_row(app: FastAPI, key_id: str) -> ApiKey:
    async with app.state.sessionmaker() as session:
        row = await session.scalar(
            select(ApiKey).where(ApiKey.id == uuid.UUID(key_id)).execution_options(**UNSCOPED)
        )
    assert row is not None
    return row


async def me(client: AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/v1/users/me", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- 401 ----------------------------------------------------------------------------------


async def test_no_authorization_header_is_401_missing_api_key(client: AsyncClient) -> None:
    response = await client.get("/v1/accounts")
    body = assert_problem(response, 401, "missing_api_key")
    assert "Bearer" in body["detail"]


async def test_non_bearer_scheme_is_401_missing_api_key(
    client: AsyncClient, tenant: Tenant
) -> None:
    response = await client.get("/v1/accounts", headers={"Authorization": f"Basic {tenant.token}"})
    assert_problem(response, 401, "missing_api_key")


async def test_empty_bearer_token_is_401_missing_api_key(client: AsyncClient) -> None:
    response = await client.get("/v1/accounts", headers={"Authorization": "Bearer   "})
    assert_problem(response, 401, "missing_api_key")


async def test_bearer_scheme_is_case_insensitive(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/accounts", headers={"Authorization": f"bearer {tenant.token}"})
    assert response.status_code == 200, response.text


async def test_malformed_tokens_are_401_invalid_api_key(
    client: AsyncClient, tenant: Tenant
) -> None:
    real = tenant.token
    malformed = [
        "nonsense",
        "dlb_",
        "dlb_" + "z" * 64 + "_" + "s" * 43,  # ids are not hex
        real.replace("dlb_", "xyz_", 1),  # wrong prefix
        real[: len("dlb_") + 64],  # no secret
        real[: len("dlb_") + 64] + "_short",  # secret too short
        real[: len("dlb_") + 40] + real[len("dlb_") + 64 :],  # ids truncated
    ]
    for token in malformed:
        response = await client.get("/v1/accounts", headers=bearer(token))
        body = assert_problem(response, 401, "invalid_api_key")
        assert token not in response.text, token
        assert body["title"] == "Unauthorized"


async def test_unknown_key_id_is_401(client: AsyncClient, tenant: Tenant) -> None:
    token = f"dlb_{tenant.organization_id.hex}{uuid.uuid4().hex}_{'s' * 43}"
    assert_problem(await client.get("/v1/accounts", headers=bearer(token)), 401, "invalid_api_key")


async def test_unknown_organization_is_401(client: AsyncClient, tenant: Tenant) -> None:
    # The real key id under another organization id must not resolve.
    key_part = tenant.token[len("dlb_") + 32 :]
    token = f"dlb_{uuid.uuid4().hex}{key_part}"
    assert_problem(await client.get("/v1/accounts", headers=bearer(token)), 401, "invalid_api_key")


async def test_wrong_secret_for_real_key_is_401(client: AsyncClient, tenant: Tenant) -> None:
    ids_end = len("dlb_") + 64
    prefix, secret = tenant.token[:ids_end], tenant.token[ids_end + 1 :]
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    for bad in (f"{prefix}_{flipped}", f"{prefix}_{secret}x", f"{prefix}_{'x' * 43}"):
        response = await client.get("/v1/accounts", headers=bearer(bad))
        assert_problem(response, 401, "invalid_api_key")
    # The genuine token still works.
    assert (await client.get("/v1/accounts", headers=tenant.headers)).status_code == 200


async def test_revoked_key_is_401(client: AsyncClient, tenant: Tenant) -> None:
    key = await create_key(client, tenant.headers, scopes=["accounts:read"])
    assert (await client.get("/v1/accounts", headers=bearer(key["token"]))).status_code == 200

    revoked = await client.delete(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None

    response = await client.get("/v1/accounts", headers=bearer(key["token"]))
    assert_problem(response, 401, "invalid_api_key")
    # Revoking again is harmless and keeps the first revocation time.
    again = await client.delete(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_a_key_can_revoke_itself(client: AsyncClient, tenant: Tenant) -> None:
    key = await create_key(client, tenant.headers)
    response = await client.delete(f"/v1/api-keys/{key['id']}", headers=bearer(key["token"]))
    assert response.status_code == 200, response.text
    after = await client.get("/v1/users/me", headers=bearer(key["token"]))
    assert_problem(after, 401, "invalid_api_key")


async def test_expired_key_is_401(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    key = await create_key(client, tenant.headers, expires_at=in_future(hours=1))
    assert key["expires_at"] is not None
    assert (await client.get("/v1/accounts", headers=bearer(key["token"]))).status_code == 200

    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            .execution_options(**UNSCOPED)
        )

    response = await client.get("/v1/accounts", headers=bearer(key["token"]))
    assert_problem(response, 401, "invalid_api_key")


async def test_expires_at_in_the_past_is_refused(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/api-keys",
        json={"name": "late", "scopes": ["*"], "expires_at": in_future(minutes=-5)},
        headers=tenant.headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["body.expires_at"]


async def test_deactivated_users_key_is_401(client: AsyncClient, tenant: Tenant) -> None:
    user = await client.post(
        "/v1/users",
        json={"email": "leaver@example.com", "name": "Leaver", "role": "rep"},
        headers=tenant.headers,
    )
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    key = await create_key(client, tenant.headers, user_id=user_id, scopes=["accounts:read"])
    assert key["user_id"] == user_id
    assert (await client.get("/v1/accounts", headers=bearer(key["token"]))).status_code == 200

    deactivated = await client.delete(f"/v1/users/{user_id}", headers=tenant.headers)
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["is_active"] is False

    response = await client.get("/v1/accounts", headers=bearer(key["token"]))
    assert_problem(response, 401, "invalid_api_key")
    listed = await client.get(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert listed.json()["revoked_at"] is not None


async def test_inactive_user_key_is_401_even_if_not_revoked(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    """A user made inactive by other means (e.g. a direct DB fix) cannot use a live key."""
    headers = await key_for(app, tenant, scopes=["*"], role="rep")
    rep = await me(client, headers)
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(User).where(User.id == uuid.UUID(rep["id"])).values(is_active=False)
        )
    assert_problem(await client.get("/v1/accounts", headers=headers), 401, "invalid_api_key")


# --- 403 ----------------------------------------------------------------------------------


async def test_key_without_scope_is_403_missing_scope(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = await key_for(app, tenant, scopes=["users:read"])
    body = assert_problem(await client.get("/v1/accounts", headers=headers), 403, "missing_scope")
    assert "accounts:read" in body["detail"]
    # The scope it has works.
    assert (await client.get("/v1/users", headers=headers)).status_code == 200


async def test_read_scope_cannot_write(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    headers = await key_for(app, tenant, scopes=["accounts:read"])
    assert (await client.get("/v1/accounts", headers=headers)).status_code == 200
    response = await client.post("/v1/accounts", json={"name": "Nope"}, headers=headers)
    body = assert_problem(response, 403, "missing_scope")
    assert "accounts:write" in body["detail"]


async def test_write_scope_implies_read(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    headers = await key_for(app, tenant, scopes=["accounts:write"])
    created = await client.post("/v1/accounts", json={"name": "Acme"}, headers=headers)
    assert created.status_code == 201, created.text
    listed = await client.get("/v1/accounts", headers=headers)
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()["data"]] == [created.json()["id"]]
    got = await client.get(f"/v1/accounts/{created.json()['id']}", headers=headers)
    assert got.status_code == 200
    # ... but not the read scope of other resources.
    assert_problem(await client.get("/v1/users", headers=headers), 403, "missing_scope")


async def test_viewer_is_read_only_whatever_its_scopes(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = await key_for(app, tenant, scopes=["*"], role="viewer")
    assert (await client.get("/v1/accounts", headers=headers)).status_code == 200
    response = await client.post("/v1/accounts", json={"name": "Acme"}, headers=headers)
    assert_problem(response, 403, "role_not_allowed")
    listed = await client.get("/v1/accounts", headers=tenant.headers)
    assert listed.json()["data"] == []


async def test_rep_cannot_create_users(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    headers = await key_for(app, tenant, scopes=["*"], role="rep")
    response = await client.post(
        "/v1/users", json={"email": "x@example.com", "name": "X"}, headers=headers
    )
    body = assert_problem(response, 403, "role_not_allowed")
    assert "admin" in body["detail"]
    # Reps can still read users.
    assert (await client.get("/v1/users", headers=headers)).status_code == 200
    emails = [u["email"] for u in (await client.get("/v1/users", headers=headers)).json()["data"]]
    assert "x@example.com" not in emails


async def test_manager_cannot_patch_organization(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = await key_for(app, tenant, scopes=["*"], role="manager")
    response = await client.patch("/v1/organization", json={"name": "Hijack"}, headers=headers)
    assert_problem(response, 403, "role_not_allowed")
    org = await client.get("/v1/organization", headers=headers)
    assert org.json()["name"] == "Org A"


async def test_scope_escalation_is_403(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    headers = await key_for(app, tenant, scopes=["accounts:read", "api_keys:write"])
    for scopes in (["*"], ["accounts:write"], ["users:read"], ["accounts:read", "teams:read"]):
        response = await client.post(
            "/v1/api-keys", json={"name": "escalate", "scopes": scopes}, headers=headers
        )
        assert_problem(response, 403, "scope_escalation")
    # Granting a subset of its own scopes is fine.
    allowed = await client.post(
        "/v1/api-keys", json={"name": "subset", "scopes": ["accounts:read"]}, headers=headers
    )
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["scopes"] == ["accounts:read"]


async def test_write_scope_may_grant_the_implied_read_scope(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = await key_for(app, tenant, scopes=["accounts:write", "api_keys:write"])
    response = await client.post(
        "/v1/api-keys", json={"name": "reader", "scopes": ["accounts:read"]}, headers=headers
    )
    assert response.status_code == 201, response.text


async def test_non_admin_cannot_create_keys_for_others(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = await key_for(app, tenant, scopes=["*"], role="rep")
    response = await client.post(
        "/v1/api-keys",
        json={"name": "for admin", "scopes": ["accounts:read"], "user_id": str(tenant.admin_id)},
        headers=headers,
    )
    assert_problem(response, 403, "role_not_allowed")


async def test_admin_creating_key_for_unknown_user_is_422(
    client: AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/api-keys",
        json={"name": "ghost", "scopes": ["*"], "user_id": str(uuid.uuid4())},
        headers=tenant.headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body.user_id"


async def test_unknown_scope_is_422(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/api-keys",
        json={"name": "bad", "scopes": ["accounts:read", "accounts:delete", "root"]},
        headers=tenant.headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    errors = {e["field"]: e for e in body["errors"]}
    assert set(errors) == {"body.scopes.1", "body.scopes.2"}
    assert {e["code"] for e in body["errors"]} == {"unknown_scope"}
    assert "accounts:delete" in body["detail"]


async def test_empty_scopes_is_422(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/api-keys", json={"name": "none", "scopes": []}, headers=tenant.headers
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body.scopes"


# --- key lifecycle ------------------------------------------------------------------------


async def test_token_is_shown_once_and_only_its_hash_is_stored(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/v1/api-keys",
        json={"name": "frontend", "scopes": ["accounts:write", "accounts:read"]},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    key = created.json()
    token = key["token"]
    assert token.startswith("dlb_")
    assert created.headers["location"] == f"/v1/api-keys/{key['id']}"
    assert key["prefix"] == token[: len(key["prefix"])]
    assert len(key["prefix"]) < len(token)
    assert key["scopes"] == ["accounts:read", "accounts:write"]
    assert key["user_id"] == str(tenant.admin_id)
    assert key["created_by_id"] == str(tenant.admin_id)
    assert key["revoked_at"] is None

    got = await client.get(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert "token" not in got.json()
    assert token not in got.text
    listed = await client.get("/v1/api-keys", headers=tenant.headers)
    assert listed.status_code == 200
    assert all("token" not in k for k in listed.json()["data"])
    assert token not in listed.text

    row = await load_key_row(app, key["id"])
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    # The secret is everything after the first "_" (url-safe base64 may itself contain "_").
    secret = token.partition("_")[2].partition("_")[2]
    assert len(secret) >= 40
    for attr in inspect(ApiKey).column_attrs:
        value = str(getattr(row, attr.key))
        assert token not in value, attr.key
        assert secret not in value, attr.key

    # And the token works.
    assert (await client.get("/v1/accounts", headers=bearer(token))).status_code == 200


async def test_last_used_at_is_set_after_a_request(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    key = await create_key(client, tenant.headers, scopes=["accounts:read"])
    assert key["last_used_at"] is None
    assert (await load_key_row(app, key["id"])).last_used_at is None

    before = datetime.now(UTC)
    assert (await client.get("/v1/accounts", headers=bearer(key["token"]))).status_code == 200

    row = await load_key_row(app, key["id"])
    assert row.last_used_at is not None
    assert row.last_used_at >= before - timedelta(seconds=5)
    got = await client.get(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert got.json()["last_used_at"] is not None


async def test_non_admin_sees_only_own_keys(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    rep_headers = await key_for(app, tenant, scopes=["*"], role="rep")
    rep = await me(client, rep_headers)
    rep_second = await create_key(client, rep_headers, name="rep second")
    admin_key = await create_key(client, tenant.headers, name="admin second")

    rep_list = await client.get("/v1/api-keys", headers=rep_headers)
    assert rep_list.status_code == 200
    rep_keys = rep_list.json()["data"]
    assert len(rep_keys) == 2
    assert {k["user_id"] for k in rep_keys} == {rep["id"]}
    assert rep_second["id"] in {k["id"] for k in rep_keys}

    # Filtering by someone else's user id does not widen the view.
    filtered = await client.get(
        "/v1/api-keys", params={"user_id": str(tenant.admin_id)}, headers=rep_headers
    )
    assert filtered.status_code == 200
    assert filtered.json()["data"] == []

    # Another user's key is invisible (404, not 403) and cannot be revoked.
    assert_problem(
        await client.get(f"/v1/api-keys/{admin_key['id']}", headers=rep_headers), 404, "not_found"
    )
    assert_problem(
        await client.delete(f"/v1/api-keys/{admin_key['id']}", headers=rep_headers),
        404,
        "not_found",
    )
    assert (await client.get("/v1/accounts", headers=bearer(admin_key["token"]))).status_code == 200

    admin_list = await client.get("/v1/api-keys", headers=tenant.headers)
    admin_ids = {k["id"] for k in admin_list.json()["data"]}
    assert {rep_second["id"], admin_key["id"]} <= admin_ids
    assert {k["user_id"] for k in admin_list.json()["data"]} == {rep["id"], str(tenant.admin_id)}
    # The admin may narrow to one user.
    only_rep = await client.get(
        "/v1/api-keys", params={"user_id": rep["id"]}, headers=tenant.headers
    )
    assert {k["id"] for k in only_rep.json()["data"]} == {k["id"] for k in rep_keys}


async def test_admin_can_revoke_another_users_key(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    rep_headers = await key_for(app, tenant, scopes=["*"], role="rep")
    rep_key = await create_key(client, rep_headers, scopes=["accounts:read"])
    response = await client.delete(f"/v1/api-keys/{rep_key['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert_problem(
        await client.get("/v1/accounts", headers=bearer(rep_key["token"])), 401, "invalid_api_key"
    )
    # The rep's other key is untouched.
    assert (await client.get("/v1/accounts", headers=rep_headers)).status_code == 200


async def test_api_keys_of_another_tenant_are_invisible(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    key = await create_key(client, tenant.headers)
    assert_problem(await client.get(f"/v1/api-keys/{key['id']}", headers=other_tenant.headers), 404)
    assert_problem(
        await client.delete(f"/v1/api-keys/{key['id']}", headers=other_tenant.headers), 404
    )
    listed = await client.get("/v1/api-keys", headers=other_tenant.headers)
    assert key["id"] not in {k["id"] for k in listed.json()["data"]}
    assert (await client.get("/v1/accounts", headers=bearer(key["token"]))).status_code == 200


async def test_401_carries_www_authenticate_and_comes_before_other_errors(
    client: AsyncClient,
) -> None:
    """Without a valid key nothing else is revealed: not bad parameters, not bad JSON."""
    for method, url, kwargs in (
        ("GET", "/v1/accounts?colour=red", {}),
        ("GET", "/v1/accounts?limit=0", {}),
        ("POST", "/v1/accounts", {"content": b"{not json"}),
        ("POST", "/v1/accounts", {"json": {"name": ""}}),
    ):
        response = await client.request(method, url, **kwargs)
        assert_problem(response, 401, "missing_api_key")
        assert response.headers["WWW-Authenticate"] == "Bearer"


# --- the worker's cache of verified keys -----------------------------------------------


async def test_a_verified_key_is_not_looked_up_again_within_the_ttl(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    key = await create_key(client, tenant.headers, scopes=["accounts:read"])
    assert (await client.get("/v1/accounts", headers=bearer(key["token"]))).status_code == 200
    # Revoked behind the API's back (plain SQL, as another worker's commit would look):
    # this worker keeps trusting the key until its cache entry lapses or is dropped.
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE id = :id"), {"id": key["id"]}
        )
    assert (await client.get("/v1/accounts", headers=bearer(key["token"]))).status_code == 200
    VerifiedKeys.forget_all()
    assert_problem(
        await client.get("/v1/accounts", headers=bearer(key["token"])), 401, "invalid_api_key"
    )


async def test_revoking_a_used_key_takes_effect_at_once(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    rep_headers = await key_for(app, tenant, scopes=["*"], role="rep")
    rep_key = await create_key(client, rep_headers, scopes=["accounts:read"])
    assert (await client.get("/v1/accounts", headers=bearer(rep_key["token"]))).status_code == 200
    response = await client.delete(f"/v1/api-keys/{rep_key['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert_problem(
        await client.get("/v1/accounts", headers=bearer(rep_key["token"])), 401, "invalid_api_key"
    )


async def test_a_role_change_takes_effect_at_once(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    rep_headers = await key_for(app, tenant, scopes=["*"], role="rep")
    rep = await me(client, rep_headers)
    new_user = {"email": "someone@example.com", "name": "Someone", "role": "rep"}
    assert_problem(
        await client.post("/v1/users", json=new_user, headers=rep_headers), 403, "role_not_allowed"
    )
    promoted = await client.patch(
        f"/v1/users/{rep['id']}", json={"role": "admin"}, headers=tenant.headers
    )
    assert promoted.status_code == 200, promoted.text
    created = await client.post("/v1/users", json=new_user, headers=rep_headers)
    assert created.status_code == 201, created.text


def test_verified_keys_honour_ttl_expiry_and_forgetting(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("app.core.auth.time.monotonic", lambda: clock[0])
    now = datetime.now(UTC)
    principal = Principal(uuid.uuid4(), uuid.uuid4(), None, None, "admin", frozenset({"*"}))
    cache = VerifiedKeys(ttl_seconds=5)
    cache.put("token-a", principal, expires_at=None)
    cache.put("token-b", principal, expires_at=now + timedelta(seconds=2))
    assert cache.get("token-a", now) is principal
    assert cache.get("token-other", now) is None
    assert cache.get("token-b", now + timedelta(seconds=3)) is None  # the key expired
    clock[0] += 6
    assert cache.get("token-a", now) is None  # the entry lapsed
    cache.put("token-a", principal, expires_at=None)
    VerifiedKeys.forget_all()
    assert cache.get("token-a", now) is None

    disabled = VerifiedKeys(ttl_seconds=0)
    disabled.put("token-a", principal, expires_at=None)
    assert disabled.get("token-a", now) is None
