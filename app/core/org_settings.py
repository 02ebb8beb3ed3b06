"""The organization's settings (``organizations.settings``), read by the domains."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.driver import prepared_rows
from app.core.tenancy import tenant_id
from app.models import Organization


@functools.cache
def _settings_of() -> Any:
    # Built once (see app/core/tenancy.py on statements built once).
    return select(Organization.settings).where(Organization.id == bindparam("organization_id"))


async def org_settings(session: AsyncSession) -> dict[str, Any]:
    rows = await prepared_rows(session, _settings_of(), {"organization_id": tenant_id(session)})
    settings = rows.scalar()
    return dict(settings or {})
