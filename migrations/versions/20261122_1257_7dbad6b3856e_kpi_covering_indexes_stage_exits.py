"""KPI covering indexes; deals keep their stage's kind; stage history rows learn how the
deal left the stage

Revision ID: 7dbad6b3856e
Revises: 79126affdbd1
Create Date: 2026-11-22 12:57:41.398517+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7dbad6b3856e"
down_revision: str | None = "79126affdbd1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEAL_COLUMNS = [
    "stage_id",
    "stage_kind",
    "amount",
    "currency",
    "type",
    "source",
    "owner_id",
    "account_id",
    "pipeline_id",
    "lead_id",
    "forecast_category_override",
]
LEAD_COLUMNS = ["owner_id", "territory_id", "segment", "source", "sal_at"]
HISTORY_COLUMNS = [
    "opportunity_id",
    "to_stage_id",
    "from_stage_id",
    "direction",
    "days_in_previous_stage",
    "exit_direction",
]


def upgrade() -> None:
    op.add_column(
        "opportunities",
        sa.Column("stage_kind", sa.String(length=8), server_default=sa.text("'open'")),
    )
    op.execute(
        """
        UPDATE opportunities AS o SET stage_kind = s.kind
        FROM pipeline_stages AS s
        WHERE s.organization_id = o.organization_id AND s.id = o.stage_id AND s.kind <> 'open'
        """
    )
    op.alter_column("opportunities", "stage_kind", nullable=False)
    op.create_check_constraint(
        op.f("ck_opportunities_stage_kind"),
        "opportunities",
        "stage_kind IN ('open', 'won', 'lost')",
    )
    op.add_column("opportunity_stage_history", sa.Column("exit_direction", sa.String(length=16)))
    op.add_column("opportunity_stage_history", sa.Column("exited_at", sa.DateTime(timezone=True)))
    # Each row learns the direction and time of the deal's next move.
    op.execute(
        """
        UPDATE opportunity_stage_history AS h
        SET exit_direction = n.next_direction, exited_at = n.next_at
        FROM (
            SELECT organization_id, id,
                   lead(direction) OVER w AS next_direction,
                   lead(moved_at) OVER w AS next_at
            FROM opportunity_stage_history
            WINDOW w AS (PARTITION BY organization_id, opportunity_id ORDER BY moved_at, id)
        ) AS n
        WHERE h.organization_id = n.organization_id AND h.id = n.id
          AND n.next_direction IS NOT NULL
        """
    )
    op.drop_index(
        "ix_stage_history_organization_id_moved_at", table_name="opportunity_stage_history"
    )
    op.create_index(
        "ix_stage_history_organization_id_moved_at",
        "opportunity_stage_history",
        ["organization_id", "moved_at"],
        postgresql_include=HISTORY_COLUMNS,
    )
    op.drop_index("ix_activities_organization_id_occurred_at", table_name="activities")
    op.create_index(
        "ix_activities_organization_id_occurred_at",
        "activities",
        ["organization_id", "occurred_at", "id"],
        postgresql_include=["duration_minutes", "selling", "owner_id"],
    )
    op.create_index(
        "ix_accounts_kpi_customers",
        "accounts",
        ["organization_id", "became_customer_at"],
        postgresql_include=["churned_at", "owner_id", "segment", "territory_id"],
        postgresql_where=sa.text("became_customer_at IS NOT NULL AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_leads_kpi_mql_at",
        "leads",
        ["organization_id", "mql_at"],
        postgresql_include=[*LEAD_COLUMNS, "sql_at", "converted_opportunity_id"],
        postgresql_where=sa.text("mql_at IS NOT NULL AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_leads_kpi_sql_at",
        "leads",
        ["organization_id", "sql_at"],
        postgresql_include=LEAD_COLUMNS,
        postgresql_where=sa.text("sql_at IS NOT NULL AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_opportunities_kpi_close_date",
        "opportunities",
        ["organization_id", "close_date"],
        postgresql_include=[*DEAL_COLUMNS, "created_at"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_opportunities_kpi_won",
        "opportunities",
        ["organization_id", "close_date"],
        postgresql_include=[*DEAL_COLUMNS, "created_at"],
        postgresql_where=sa.text("stage_kind = 'won' AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_opportunities_kpi_created_at",
        "opportunities",
        ["organization_id", "created_at"],
        postgresql_include=[*DEAL_COLUMNS, "close_date"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_opportunities_kpi_created_at", table_name="opportunities")
    op.drop_index("ix_opportunities_kpi_won", table_name="opportunities")
    op.drop_index("ix_opportunities_kpi_close_date", table_name="opportunities")
    op.drop_index("ix_leads_kpi_sql_at", table_name="leads")
    op.drop_index("ix_leads_kpi_mql_at", table_name="leads")
    op.drop_index("ix_accounts_kpi_customers", table_name="accounts")
    op.drop_index("ix_activities_organization_id_occurred_at", table_name="activities")
    op.create_index(
        "ix_activities_organization_id_occurred_at",
        "activities",
        ["organization_id", "occurred_at", "id"],
    )
    op.drop_index(
        "ix_stage_history_organization_id_moved_at", table_name="opportunity_stage_history"
    )
    op.create_index(
        "ix_stage_history_organization_id_moved_at",
        "opportunity_stage_history",
        ["organization_id", "moved_at"],
    )
    op.drop_column("opportunity_stage_history", "exited_at")
    op.drop_column("opportunity_stage_history", "exit_direction")
    op.drop_constraint(op.f("ck_opportunities_stage_kind"), "opportunities", type_="check")
    op.drop_column("opportunities", "stage_kind")
