"""Bulk facts for KPI tests: rows inserted straight into one tenant (with the dates a test
needs, which the API would stamp with "now"); the KPIs themselves are read over HTTP."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.core.tenancy import Actor, bind_tenant
from app.models import (
    Account,
    Activity,
    Lead,
    Opportunity,
    Pipeline,
    PipelineStage,
    StageHistory,
    User,
)
from tests.factories import Tenant


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


class Facts:
    """Inserts facts into one tenant's default pipeline."""

    def __init__(self, app: FastAPI, tenant: Tenant) -> None:
        self.app = app
        self.tenant = tenant
        self.stages: dict[str, PipelineStage] = {}
        self.pipeline_id: uuid.UUID | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.app.state.sessionmaker() as session, session.begin():
            bind_tenant(session, self.tenant.organization_id, Actor())
            if not self.stages:
                pipeline = await session.scalar(select(Pipeline).where(Pipeline.is_default))
                assert pipeline is not None
                self.pipeline_id = pipeline.id
                rows = await session.scalars(
                    select(PipelineStage).where(PipelineStage.pipeline_id == pipeline.id)
                )
                self.stages = {s.key: s for s in rows}
            yield session

    async def user(
        self, name: str, *, manager_id: uuid.UUID | None = None, **fields: Any
    ) -> uuid.UUID:
        async with self.session() as session:
            user = User(
                id=new_id(),
                email=f"{name.lower().replace(' ', '.')}.{uuid.uuid4().hex[:6]}@example.test",
                name=name,
                role=fields.pop("role", "rep"),
                manager_id=manager_id,
                **fields,
            )
            session.add(user)
        return user.id

    async def accounts(self, n: int, **fields: Any) -> list[uuid.UUID]:
        fields.setdefault("segment", "smb")
        async with self.session() as session:
            rows = [
                Account(id=new_id(), name=f"Account {uuid.uuid4().hex[:8]}", **fields)
                for _ in range(n)
            ]
            session.add_all(rows)
        return [r.id for r in rows]

    async def deals(
        self,
        n: int,
        *,
        stage: str = "closed_won",
        amount: Decimal | int | str | None = 10_000,
        close_date: date | None = None,
        created_at: datetime | None = None,
        account_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> list[uuid.UUID]:
        account = account_id or (await self.accounts(1))[0]
        currency = fields.pop("currency", "TRY")
        async with self.session() as session:
            target = self.stages[stage]
            rows = []
            for _ in range(n):
                deal = Opportunity(
                    id=new_id(),
                    name="Deal",
                    account_id=account,
                    pipeline_id=self.pipeline_id,
                    stage_id=target.id,
                    stage_kind=target.kind,
                    amount=None if amount is None else Decimal(amount),
                    currency=currency,
                    close_date=close_date,
                    closed_at=at(close_date) if close_date and target.kind != "open" else None,
                    **fields,
                )
                if created_at is not None:
                    deal.created_at = created_at
                rows.append(deal)
            session.add_all(rows)
        return [r.id for r in rows]

    async def leads(self, n: int, *, created_at: datetime, **fields: Any) -> list[uuid.UUID]:
        fields.setdefault("segment", "smb")
        async with self.session() as session:
            rows = []
            for i in range(n):
                lead = Lead(id=new_id(), last_name=f"Lead {i}", **fields)
                lead.created_at = created_at
                rows.append(lead)
            session.add_all(rows)
        return [r.id for r in rows]

    async def customers(
        self, n: int, *, became: datetime, churned: datetime | None = None, **fields: Any
    ) -> list[uuid.UUID]:
        lifecycle = "former_customer" if churned else "customer"
        return await self.accounts(
            n, lifecycle=lifecycle, became_customer_at=became, churned_at=churned, **fields
        )

    async def activity(
        self, minutes: int | None, *, selling: bool, occurred_at: datetime, **fields: Any
    ) -> None:
        async with self.session() as session:
            session.add(
                Activity(
                    id=new_id(),
                    kind="call" if selling else "note",
                    subject="Work",
                    duration_minutes=minutes,
                    selling=selling,
                    occurred_at=occurred_at,
                    **fields,
                )
            )

    async def history(
        self,
        deal_id: uuid.UUID,
        moves: list[tuple[str, datetime, Decimal | None]],
    ) -> None:
        """Stage history rows (to stage, when, days in the previous stage)."""
        directions = ["created"]
        for (before, _, _), (after, _, _) in itertools.pairwise(moves):
            a, b = self.stages[before], self.stages[after]
            kind = b.kind if b.kind != "open" else "forward"
            directions.append("backward" if b.kind == "open" and b.position < a.position else kind)
        async with self.session() as session:
            previous: PipelineStage | None = None
            for index, (key, moved_at, days) in enumerate(moves):
                stage = self.stages[key]
                following = moves[index + 1] if index + 1 < len(moves) else None
                session.add(
                    StageHistory(
                        exit_direction=directions[index + 1] if following else None,
                        exited_at=following[1] if following else None,
                        id=new_id(),
                        opportunity_id=deal_id,
                        from_stage_id=previous.id if previous else None,
                        to_stage_id=stage.id,
                        from_stage=previous.key if previous else None,
                        to_stage=stage.key,
                        direction=directions[index],
                        moved_at=moved_at,
                        days_in_previous_stage=days,
                        currency="TRY",
                        probability=stage.probability,
                        forecast_category=stage.forecast_category,
                    )
                )
                previous = stage
