"""daily roll-ups of stage history and activities for the unfiltered KPIs

Revision ID: 5a7e1c2d9b40
Revises: 40157be66d98
Create Date: 2026-11-23 00:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a7e1c2d9b40"
down_revision: str | None = "40157be66d98"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The existing history, summed as app/metrics/rollups.py counts it from now on.
BACKFILL_ENTRIES = """
INSERT INTO stage_entry_rollups (organization_id, day, stage_id, entered, advanced)
SELECT organization_id, (moved_at AT TIME ZONE 'UTC')::date, to_stage_id, count(*),
       count(*) FILTER (WHERE exit_direction IN ('forward', 'won'))
FROM opportunity_stage_history
WHERE direction NOT IN ('won', 'lost')
GROUP BY 1, 2, 3
"""
BACKFILL_EXITS = """
INSERT INTO stage_exit_rollups (organization_id, day, stage_id, whole_days, exits, hundredths)
SELECT organization_id, (moved_at AT TIME ZONE 'UTC')::date, from_stage_id,
       floor(days_in_previous_stage)::integer, count(*),
       sum((days_in_previous_stage * 100)::bigint)
FROM opportunity_stage_history
WHERE days_in_previous_stage IS NOT NULL AND direction <> 'reopen' AND from_stage_id IS NOT NULL
GROUP BY 1, 2, 3, 4
"""
BACKFILL_ACTIVITIES = """
INSERT INTO activity_rollups
    (organization_id, day, activities, logged_minutes, selling_minutes, without_duration)
SELECT organization_id, (occurred_at AT TIME ZONE 'UTC')::date, count(*),
       coalesce(sum(coalesce(duration_minutes, 0)), 0),
       coalesce(sum(coalesce(duration_minutes, 0)) FILTER (WHERE selling), 0),
       count(*) FILTER (WHERE duration_minutes IS NULL)
FROM activities
GROUP BY 1, 2
"""


def _stage_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id", "stage_id"],
        ["pipeline_stages.organization_id", "pipeline_stages.id"],
        name=f"fk_{table}_organization_id_stage_id_pipeline_stages",
    )


def _organization_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=f"fk_{table}_organization_id_organizations",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "stage_entry_rollups",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("entered", sa.Integer(), nullable=False),
        sa.Column("advanced", sa.Integer(), nullable=False),
        _organization_fk("stage_entry_rollups"),
        _stage_fk("stage_entry_rollups"),
        sa.PrimaryKeyConstraint(
            "organization_id", "day", "stage_id", name="pk_stage_entry_rollups"
        ),
    )
    op.create_table(
        "stage_exit_rollups",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("whole_days", sa.Integer(), nullable=False),
        sa.Column("exits", sa.Integer(), nullable=False),
        sa.Column("hundredths", sa.BigInteger(), nullable=False),
        _organization_fk("stage_exit_rollups"),
        _stage_fk("stage_exit_rollups"),
        sa.PrimaryKeyConstraint(
            "organization_id", "day", "stage_id", "whole_days", name="pk_stage_exit_rollups"
        ),
    )
    op.create_table(
        "activity_rollups",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("activities", sa.Integer(), nullable=False),
        sa.Column("logged_minutes", sa.BigInteger(), nullable=False),
        sa.Column("selling_minutes", sa.BigInteger(), nullable=False),
        sa.Column("without_duration", sa.Integer(), nullable=False),
        _organization_fk("activity_rollups"),
        sa.PrimaryKeyConstraint("organization_id", "day", name="pk_activity_rollups"),
    )
    op.create_index(
        "ix_stage_history_exit_duration",
        "opportunity_stage_history",
        [
            "organization_id",
            "from_stage_id",
            sa.text("floor(days_in_previous_stage)"),
            "moved_at",
        ],
        postgresql_include=["days_in_previous_stage"],
        postgresql_where=sa.text("days_in_previous_stage IS NOT NULL AND direction <> 'reopen'"),
    )
    op.execute(BACKFILL_ENTRIES)
    op.execute(BACKFILL_EXITS)
    op.execute(BACKFILL_ACTIVITIES)


def downgrade() -> None:
    op.drop_index("ix_stage_history_exit_duration", table_name="opportunity_stage_history")
    op.drop_table("activity_rollups")
    op.drop_table("stage_exit_rollups")
    op.drop_table("stage_entry_rollups")
