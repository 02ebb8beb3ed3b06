"""The organization's settings (``organizations.settings``), read by the domains."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tenancy import tenant_id
from app.models import Organization


async def org_settings(session: AsyncSession) -> dict[str, Any]:
    settings = await session.scalar(
        select(Organization.settings).where(Organization.id == tenant_id(session))
    )
    return dict(settings or {})
