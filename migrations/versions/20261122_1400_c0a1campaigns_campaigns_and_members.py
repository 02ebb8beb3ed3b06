"""campaigns and campaign members

Revision ID: c0a1campaigns
Revises: 7dbad6b3856e
Create Date: 2026-11-22 14:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0a1campaigns"
down_revision: str | None = "7dbad6b3856e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("budget", sa.Numeric(precision=20, scale=2), nullable=True),
        sa.Column(
            "actual_cost",
            sa.Numeric(precision=20, scale=2),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('planned', 'active', 'completed', 'cancelled')",
            name=op.f("ck_campaigns_status"),
        ),
        sa.CheckConstraint(
            "type IN ('webinar', 'event', 'content', 'email', 'paid', 'partner')",
            name=op.f("ck_campaigns_type"),
        ),
        sa.CheckConstraint("actual_cost >= 0", name=op.f("ck_campaigns_actual_cost_not_negative")),
        sa.CheckConstraint(
            "budget IS NULL OR budget >= 0", name=op.f("ck_campaigns_budget_not_negative")
        ),
        sa.CheckConstraint(
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date",
            name=op.f("ck_campaigns_period"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_campaigns_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint(
            "organization_id", "name", name=op.f("uq_campaigns_organization_id_name")
        ),
    )
    op.create_index(
        "ix_campaigns_organization_id_created_at",
        "campaigns",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "campaign_members",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('sent', 'responded', 'attended', 'registered', 'no_show', 'unsubscribed')",
            name=op.f("ck_campaign_members_status"),
        ),
        sa.CheckConstraint(
            "(lead_id IS NULL) <> (contact_id IS NULL)", name=op.f("ck_campaign_members_one_member")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "campaign_id"],
            ["campaigns.organization_id", "campaigns.id"],
            name=op.f("fk_campaign_members_organization_id_campaign_id_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name=op.f("fk_campaign_members_organization_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "lead_id"],
            ["leads.organization_id", "leads.id"],
            name=op.f("fk_campaign_members_organization_id_lead_id_leads"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_campaign_members_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_campaign_members")),
        sa.UniqueConstraint(
            "organization_id",
            "campaign_id",
            "contact_id",
            name=op.f("uq_campaign_members_organization_id_campaign_id_contact_id"),
        ),
        sa.UniqueConstraint(
            "organization_id",
            "campaign_id",
            "lead_id",
            name=op.f("uq_campaign_members_organization_id_campaign_id_lead_id"),
        ),
    )
    op.create_index(
        "ix_campaign_members_campaign",
        "campaign_members",
        ["organization_id", "campaign_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_campaign_members_contact",
        "campaign_members",
        ["organization_id", "contact_id"],
        unique=False,
    )
    op.create_index(
        "ix_campaign_members_lead", "campaign_members", ["organization_id", "lead_id"], unique=False
    )
    op.add_column("leads", sa.Column("campaign_id", sa.UUID(), nullable=True))
    op.create_index(
        "ix_leads_organization_id_campaign_id",
        "leads",
        ["organization_id", "campaign_id"],
        unique=False,
    )
    op.create_foreign_key(
        op.f("fk_leads_organization_id_campaign_id_campaigns"),
        "leads",
        "campaigns",
        ["organization_id", "campaign_id"],
        ["organization_id", "id"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_leads_organization_id_campaign_id_campaigns"), "leads", type_="foreignkey"
    )
    op.drop_index("ix_leads_organization_id_campaign_id", table_name="leads")
    op.drop_column("leads", "campaign_id")
    op.drop_index("ix_campaign_members_lead", table_name="campaign_members")
    op.drop_index("ix_campaign_members_contact", table_name="campaign_members")
    op.drop_index("ix_campaign_members_campaign", table_name="campaign_members")
    op.drop_table("campaign_members")
    op.drop_index("ix_campaigns_organization_id_created_at", table_name="campaigns")
    op.drop_table("campaigns")
