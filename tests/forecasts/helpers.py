"""Building a sales hierarchy and its deals through the API, for the forecast tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.core.tenancy import Actor, bind_tenant
from app.models import Opportunity
from tests.factories import Tenant, create, create_account, create_user, key_for

# A pipeline without entry requirements: deals start in any stage.
STAGES = [
    {"key": "discovery", "name": "Discovery", "probability": "10", "forecast_category": "pipeline"},
    {"key": "proposal", "name": "Proposal", "probability": "50", "forecast_category": "best_case"},
    {"key": "commit", "name": "Commit", "probability": "80", "forecast_category": "commit"},
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


@dataclass
class Person:
    id: str
    name: str
    headers: dict[str, str]


@dataclass
class Sales:
    """An organization's sales team and a requirement-free pipeline."""

    app: FastAPI
    client: AsyncClient
    tenant: Tenant
    pipeline: dict[str, Any]
    account_id: str
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return self.tenant.headers

    async def person(self, name: str, role: str = "rep", manager: str | None = None) -> Person:
        body: dict[str, Any] = {"name": name, "role": role}
        if manager is not None:
            body["manager_id"] = self.people[manager].id
        user = await create_user(self.client, self.admin, **body)
        headers = await key_for(self.app, self.tenant, scopes=["*"], user_id=uuid.UUID(user["id"]))
        self.people[name] = Person(user["id"], name, headers)
        return self.people[name]

    def id(self, name: str) -> str:
        return self.people[name].id

    def headers(self, name: str) -> dict[str, str]:
        return self.people[name].headers

    async def deal(
        self,
        owner: str,
        amount: str | None,
        stage: str,
        close_date: str,
        *,
        currency: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": f"{owner} {stage} {amount}",
            "account_id": self.account_id,
            "pipeline_id": self.pipeline["id"],
            "owner_id": self.id(owner),
            "amount": amount,
            "close_date": close_date,
            "stage": "discovery" if stage in ("won", "lost") else stage,
            **fields,
        }
        if currency is not None:
            body["currency"] = currency
        deal = await create(self.client, "/v1/opportunities", self.admin, body)
        if stage in ("won", "lost"):
            reason = (
                {"won_reason": {"code": "price"}}
                if stage == "won"
                else {"lost_reason": {"code": "no_budget"}}
            )
            moved = await self.client.post(
                f"/v1/opportunities/{deal['id']}/stage",
                json={"stage": stage, **reason},
                headers=self.admin,
            )
            assert moved.status_code == 200, moved.text
            # Closing may record today as the close date: put the deal back in its period.
            await self.set_close_date(deal["id"], date.fromisoformat(close_date))
        return deal

    async def set_close_date(self, deal_id: str, day: date) -> None:
        async with self.app.state.sessionmaker() as session, session.begin():
            bind_tenant(session, self.tenant.organization_id, Actor())
            deal = await session.scalar(select(Opportunity).where(Opportunity.id == deal_id))
            assert deal is not None
            deal.close_date = day  # through the ORM: the roll-ups count the change

    async def quota(self, name: str, period: str, amount: str) -> None:
        await create(
            self.client,
            "/v1/quotas",
            self.admin,
            {"user_id": self.id(name), "period": period, "amount": amount},
        )

    async def rate(self, day: str, pair: str, rate: str) -> None:
        source, target = pair.split("/")
        body = {"date": day, "from_currency": source, "to_currency": target, "rate": rate}
        await create(self.client, "/v1/exchange-rates", self.admin, body)


async def sales(app: FastAPI, client: AsyncClient, tenant: Tenant) -> Sales:
    pipeline = await create(
        client, "/v1/pipelines", tenant.headers, {"name": "Forecast test", "stages": STAGES}
    )
    account = await create_account(client, tenant.headers)
    return Sales(app, client, tenant, pipeline, account["id"])


def find(node: dict[str, Any], user_id: str) -> dict[str, Any]:
    """The node of ``user_id`` in a roll-up tree."""
    if node["user"]["id"] == user_id:
        return node
    for child in node["children"]:
        try:
            return find(child, user_id)
        except KeyError:
            continue
    raise KeyError(user_id)


def figures(node: dict[str, Any], which: str = "total") -> dict[str, Any]:
    return dict(node[which])
