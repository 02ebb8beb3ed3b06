"""The committed OpenAPI document is what the app serves, and documents every operation."""

from __future__ import annotations

import json
from pathlib import Path

from httpx import AsyncClient

from app.openapi_doc import render_openapi

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_document_matches_the_app() -> None:
    assert COMMITTED.read_text() == render_openapi(), (
        "openapi/openapi.json is stale: run `dealbase openapi` and commit it"
    )


async def test_served_document_matches_committed(client: AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    assert served == json.loads(COMMITTED.read_text())


def test_every_operation_is_documented() -> None:
    document = json.loads(COMMITTED.read_text())
    seen_ids: set[str] = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            op_id = operation.get("operationId", "")
            assert op_id and op_id not in seen_ids, where
            seen_ids.add(op_id)
            assert op_id.startswith(operation["tags"][0] + "-"), where
            assert operation.get("summary"), where
            responses = operation["responses"]
            if path.startswith("/v1/"):
                for status in ("400", "401", "403", "429", "500"):
                    assert status in responses, (where, status)
                if "{" in path:
                    assert "404" in responses, where
                if method == "patch" or path.endswith("/lifecycle"):
                    assert "412" in responses, where
                if "requestBody" in operation:
                    assert "422" in responses, where
                assert operation["security"] == [{"bearerAuth": []}], where
            for status, response in responses.items():
                if status[0] in "45":
                    assert "application/problem+json" in response["content"], (where, status)
