"""daily roll-ups of the deals by close date and by creation day for the unfiltered KPIs;
leads created in a period read by an index-only scan

Revision ID: 7d3f2a9c1e58
Revises: df8dc35a3cb1
Create Date: 2026-11-24 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d3f2a9c1e58"
down_revision: str | None = "df8dc35a3cb1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The existing deals, summed as app/metrics/rollups.py counts them from now on.
BACKFILL_CLOSES = """
INSERT INTO deal_close_rollups (organization_id, day, stage_id, type, currency,
    category_override, deals, priced, amount, cycle_days)
SELECT o.organization_id, o.close_date, o.stage_id, o.type, o.currency,
       coalesce(o.forecast_category_override, ''), count(*), count(o.amount),
       coalesce(sum(o.amount), 0),
       coalesce(sum(o.close_date - ((CASE WHEN o.lead_id IS NULL THEN o.created_at
           ELSE (SELECT l.created_at FROM leads l
                 WHERE l.organization_id = o.organization_id AND l.id = o.lead_id)
           END) AT TIME ZONE 'UTC')::date) FILTER (WHERE o.stage_kind = 'won'), 0)
FROM opportunities o
WHERE o.deleted_at IS NULL AND o.close_date IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6
"""
BACKFILL_CREATED = """
INSERT INTO deal_created_rollups (organization_id, day, currency, won, deals, priced,
    amount)
SELECT organization_id, (created_at AT TIME ZONE 'UTC')::date, currency, stage_kind = 'won',
       count(*), count(amount), coalesce(sum(amount), 0)
FROM opportunities
WHERE deleted_at IS NULL
GROUP BY 1, 2, 3, 4
"""


def _organization_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=f"fk_{table}_organization_id_organizations",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "deal_close_rollups",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("category_override", sa.String(length=16), nullable=False),
        sa.Column("deals", sa.Integer(), nullable=False),
        sa.Column("priced", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=28, scale=2), nullable=False),
        sa.Column("cycle_days", sa.BigInteger(), nullable=False),
        _organization_fk("deal_close_rollups"),
        sa.ForeignKeyConstraint(
            ["organization_id", "stage_id"],
            ["pipeline_stages.organization_id", "pipeline_stages.id"],
            name="fk_deal_close_rollups_organization_id_stage_id_pipeline_stages",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id",
            "day",
            "stage_id",
            "type",
            "currency",
            "category_override",
            name="pk_deal_close_rollups",
        ),
    )
    op.create_table(
        "deal_created_rollups",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("won", sa.Boolean(), nullable=False),
        sa.Column("deals", sa.Integer(), nullable=False),
        sa.Column("priced", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=28, scale=2), nullable=False),
        _organization_fk("deal_created_rollups"),
        sa.PrimaryKeyConstraint(
            "organization_id", "day", "currency", "won", name="pk_deal_created_rollups"
        ),
    )
    op.execute(BACKFILL_CLOSES)
    op.execute(BACKFILL_CREATED)
    _leads_by_creation(include=["converted_at", "deleted_at"])


def _leads_by_creation(include: list[str]) -> None:
    op.drop_index("ix_leads_organization_id_created_at", table_name="leads")
    op.create_index(
        "ix_leads_organization_id_created_at",
        "leads",
        ["organization_id", "created_at", "id"],
        postgresql_include=include,
    )


def downgrade() -> None:
    _leads_by_creation(include=[])
    op.drop_table("deal_created_rollups")
    op.drop_table("deal_close_rollups")
