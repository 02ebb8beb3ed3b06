"""engagement signals

Revision ID: c0b2signals
Revises: c0a1campaigns
Create Date: 2026-11-22 14:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c0b2signals"
down_revision: str | None = "c0a1campaigns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=True),
        sa.Column("account_id", sa.UUID(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "type IN ('trial_started', 'feature_used', 'seats_added', 'active_users', "
            "'web_visit', 'email_opened', 'content_downloaded', 'other')",
            name=op.f("ck_signals_type"),
        ),
        sa.CheckConstraint(
            "lead_id IS NOT NULL OR contact_id IS NOT NULL OR account_id IS NOT NULL",
            name=op.f("ck_signals_subject"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_signals_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "lead_id"],
            ["leads.organization_id", "leads.id"],
            name=op.f("fk_signals_organization_id_lead_id_leads"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name=op.f("fk_signals_organization_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "account_id"],
            ["accounts.organization_id", "accounts.id"],
            name=op.f("fk_signals_organization_id_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_signals")),
        sa.UniqueConstraint(
            "organization_id",
            "source",
            "external_id",
            name=op.f("uq_signals_organization_id_source_external_id"),
        ),
    )
    op.create_index(
        "ix_signals_organization_id_lead_id",
        "signals",
        ["organization_id", "lead_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_signals_organization_id_account_id",
        "signals",
        ["organization_id", "account_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_signals_organization_id_contact_id",
        "signals",
        ["organization_id", "contact_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_signals_organization_id_occurred_at",
        "signals",
        ["organization_id", "occurred_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_signals_organization_id_occurred_at", table_name="signals")
    op.drop_index("ix_signals_organization_id_contact_id", table_name="signals")
    op.drop_index("ix_signals_organization_id_account_id", table_name="signals")
    op.drop_index("ix_signals_organization_id_lead_id", table_name="signals")
    op.drop_table("signals")
