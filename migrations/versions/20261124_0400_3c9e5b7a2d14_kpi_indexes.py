"""KPI indexes: the won deals by account (paying customers counted without a sort), the
live campaign leads (deals sourced by a campaign) and the stage exit roll-ups of a period
read from an index alone

Revision ID: 3c9e5b7a2d14
Revises: 7d3f2a9c1e58
Create Date: 2026-11-24 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c9e5b7a2d14"
down_revision: str | None = "7d3f2a9c1e58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_opportunities_won_account",
        "opportunities",
        ["organization_id", "account_id"],
        postgresql_include=["close_date"],
        postgresql_where=sa.text("stage_kind = 'won' AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_leads_campaign_sourced",
        "leads",
        ["organization_id", "id"],
        postgresql_where=sa.text("campaign_id IS NOT NULL AND deleted_at IS NULL"),
    )

    op.create_index(
        "ix_stage_exit_rollups_kpi",
        "stage_exit_rollups",
        ["organization_id", "day"],
        postgresql_include=["stage_id", "whole_days", "exits", "hundredths"],
    )


def downgrade() -> None:
    op.drop_index("ix_stage_exit_rollups_kpi", table_name="stage_exit_rollups")
    op.drop_index("ix_leads_campaign_sourced", table_name="leads")
    op.drop_index("ix_opportunities_won_account", table_name="opportunities")
