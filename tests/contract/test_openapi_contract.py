"""Contract fuzzing: schemathesis generates requests for every operation of the committed
OpenAPI document (the drift test keeps it equal to the app's own) — the documented examples,
valid data and invalid data — and sends them in-process to the app, as an admin of the demo
organization, so that path ids often name real records. Every response must

- not be a 5xx (a 500 is a bug),
- have a documented status code, content type and headers,
- match the schema documented for that status (``Problem`` for every error).

The fuzzer works on one tenant for the whole module: the tables are not truncated between
operations (no test here uses the ``app`` fixture) but once at the end. For the same reason
there is no stateful (linked sequences) test: Hypothesis replays a scenario to confirm it and
finds the database changed (``FlakyStrategyDefinition``), and the inferred links would have
the fuzzer revoke its own key (``GET /v1/api-keys`` → ``DELETE``). Real ids are fed instead.

CI runs ``DEALBASE_FUZZ_EXAMPLES`` (default 3) generated examples per operation with a fixed
seed: the same requests every run. The heavier run (``python3 dev.py fuzz``, see
bench/README.md) raises the count, adds the coverage phase (boundary values of every
parameter) and the demo's two years of history, and draws a new seed each time
(``DEALBASE_FUZZ_SEED=<n>`` replays one)."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import text

from app.api_keys.service import issue_key
from app.core.config import Settings
from app.core.schemas import INT32_MAX
from app.core.tenancy import Actor, bind_tenant
from app.demo import seed_demo
from app.main import create_app
from app.models import User
from tests.conftest import TABLES
from tests.core.test_isolation_matrix import TABLE_OF  # path parameter → table of its ids

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
DEFAULT_EXAMPLES = 3
EXAMPLES = int(os.environ.get("DEALBASE_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
HEAVY = EXAMPLES > DEFAULT_EXAMPLES
_seed = os.environ.get("DEALBASE_FUZZ_SEED", "random" if HEAVY else "0")
SEED = random.SystemRandom().randrange(2**32) if _seed == "random" else int(_seed)

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # Timing-based, so it would make CI flaky on a slow machine; the others are not.
        "suppress-health-check": ["too_slow"],
        "generation": {
            "max-examples": EXAMPLES,
            "deterministic": not HEAVY,
            # No example database: a run never replays another run's failures.
            "database": "none",
            # The key is sent by the test; generating Authorization headers would only
            # test 401s, which tests/core/test_auth.py covers.
            "with-security-parameters": False,
        },
        "phases": {
            # Every boundary value of every parameter: thorough but slow for 285 operations.
            "coverage": {"enabled": HEAVY},
        },
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
        },
    }
)
schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()), config=CONFIG)

# ``/v1/<resource>/{subject_id}/timeline``: the resource names the id's kind.
SUBJECT_OF = {
    "accounts": "account_id",
    "opportunities": "opportunity_id",
    "contacts": "contact_id",
    "leads": "lead_id",
}
REAL_IDS_PER_KIND = 3


@dataclass(frozen=True)
class Target:
    app: FastAPI
    headers: dict[str, str]
    ids: dict[str, list[str]]


async def _fuzzer(app: FastAPI, organization_id: uuid.UUID) -> tuple[uuid.UUID, str]:
    """An admin and a key of the fuzzer's own, never offered as a real id: the fuzzer must
    not revoke, demote or deactivate itself halfway through."""
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, organization_id, Actor())
        user = User(
            organization_id=organization_id,
            id=uuid.uuid4(),
            email="fuzzer@contract.test",
            name="Contract Fuzzer",
            role="admin",
            is_active=True,
        )
        session.add(user)
        await session.flush()
        _, token = await issue_key(
            session, organization_id=organization_id, user_id=user.id, name="fuzzer", scopes=["*"]
        )
    return user.id, token


async def _real_ids(
    app: FastAPI, organization_id: uuid.UUID, fuzzer: uuid.UUID
) -> dict[str, list[str]]:
    """A few ids of each kind (the first created: the same records every run)."""
    not_mine = {"api_keys": "AND user_id IS DISTINCT FROM :fuzzer", "users": "AND id <> :fuzzer"}
    ids: dict[str, list[str]] = {}
    async with app.state.engine.connect() as conn:
        for param, table in TABLE_OF.items():
            rows = await conn.scalars(
                text(
                    f"SELECT id FROM {table} WHERE organization_id = :org "
                    f"{not_mine.get(table, '')} ORDER BY id LIMIT {REAL_IDS_PER_KIND}"
                ),
                {"org": organization_id, "fuzzer": fuzzer},
            )
            ids[param] = [str(row) for row in rows]
    return ids


@pytest.fixture(scope="module")
async def target(settings: Settings) -> AsyncIterator[Target]:
    # Its own app (and engine): schemathesis calls it from its own event loop thread, and
    # asyncpg connections belong to the loop that opened them. No background jobs: the
    # fuzzer's requests are the only writers.
    app = create_app(
        settings.model_copy(
            update={
                "jobs_interval_seconds": 0,
                "webhook_interval_seconds": 0,
                "rate_limit_per_minute": 0,
            }
        )
    )
    try:
        demo = await seed_demo(app.state.sessionmaker, history=HEAVY)
        organization_id = uuid.UUID(demo.organization_id)
        fuzzer, token = await _fuzzer(app, organization_id)
        ids = await _real_ids(app, organization_id, fuzzer)
        # Connections opened on this loop must not be handed to schemathesis' loop.
        await app.state.engine.dispose()
        yield Target(app, {"Authorization": f"Bearer {token}"}, ids)
    finally:
        shutdown_lifespans()  # the app's lifespan ran on schemathesis' loop; it disposes there
        async with app.state.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
        await app.state.engine.dispose()


def _use_real_ids(case: schemathesis.Case, ids: dict[str, list[str]]) -> None:
    """Swap three in four generated ids for real ones, chosen by the generated id itself (so
    the seed still decides everything); invalid ids (negative cases) stay as they are."""
    params = case.path_parameters or {}
    for name, value in params.items():
        kind = SUBJECT_OF[case.path.split("/")[2]] if name == "subject_id" else name
        real = ids.get(kind)
        try:
            pick = uuid.UUID(str(value)).int
        except ValueError:
            continue
        if real and pick % 4:
            params[name] = real[pick % len(real)]
    number = params.get("number")
    if type(number) is int and 0 < number <= INT32_MAX:  # a valid version number
        params["number"] = 1 + number % 2  # real quotes have a version 1, some a 2


@schema.parametrize()
def test_operation_honours_its_contract(case: schemathesis.Case, target: Target) -> None:
    _use_real_ids(case, target.ids)
    try:
        response = case.call_and_validate(app=target.app, headers=target.headers)
    except BaseException as exc:
        exc.add_note(f"replay with DEALBASE_FUZZ_SEED={SEED} DEALBASE_FUZZ_EXAMPLES={EXAMPLES}")
        raise
    # Every operation is open to an admin: a 401 means the fuzzer lost its key, and the rest
    # of the run would test nothing but authentication.
    assert response.status_code != 401, response.text
