"""nurture programs and enrollments

Revision ID: c0c3nurture
Revises: c0b2signals
Create Date: 2026-11-22 14:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c0c3nurture"
down_revision: str | None = "c0b2signals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nurture_programs",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("entry_rule", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
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
            "target IN ('lead', 'opportunity', 'account')", name=op.f("ck_nurture_programs_target")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_nurture_programs_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_nurture_programs")),
        sa.UniqueConstraint(
            "organization_id", "name", name=op.f("uq_nurture_programs_organization_id_name")
        ),
    )
    op.create_table(
        "nurture_enrollments",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=True),
        sa.Column("opportunity_id", sa.UUID(), nullable=True),
        sa.Column("account_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_step", sa.Integer(), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_reason", sa.String(length=64), nullable=True),
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
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'exited')",
            name=op.f("ck_nurture_enrollments_status"),
        ),
        sa.CheckConstraint(
            "num_nonnulls(lead_id, opportunity_id, account_id) = 1",
            name=op.f("ck_nurture_enrollments_one_record"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "account_id"],
            ["accounts.organization_id", "accounts.id"],
            name=op.f("fk_nurture_enrollments_organization_id_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "lead_id"],
            ["leads.organization_id", "leads.id"],
            name=op.f("fk_nurture_enrollments_organization_id_lead_id_leads"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "opportunity_id"],
            ["opportunities.organization_id", "opportunities.id"],
            name=op.f("fk_nurture_enrollments_organization_id_opportunity_id_opportunities"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "program_id"],
            ["nurture_programs.organization_id", "nurture_programs.id"],
            name=op.f("fk_nurture_enrollments_organization_id_program_id_nurture_programs"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_nurture_enrollments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_nurture_enrollments")),
        sa.UniqueConstraint(
            "organization_id", "program_id", "account_id", name="uq_nurture_account"
        ),
        sa.UniqueConstraint("organization_id", "program_id", "lead_id", name="uq_nurture_lead"),
        sa.UniqueConstraint(
            "organization_id", "program_id", "opportunity_id", name="uq_nurture_opportunity"
        ),
    )
    op.create_index(
        "ix_nurture_enrollments_due",
        "nurture_enrollments",
        ["organization_id", "next_due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
    )
    # Every organization gets the default programs (inactive), as new ones do.
    op.execute(
        """
        INSERT INTO nurture_programs
            (organization_id, id, name, description, target, entry_rule, steps, is_active, version)
        SELECT o.id, gen_random_uuid(), p.name, p.description, 'lead',
               p.entry_rule::jsonb, p.steps::jsonb, false, 1
        FROM organizations o CROSS JOIN (VALUES
            ('SMB lead nurture', 'Short, self-serve sequence for small companies.',
             '{"statuses": ["new", "mql"], "segments": ["smb"]}',
             '[{"content_key": "education-getting-started", "wait_days": 0},
               {"content_key": "case-study-smb", "wait_days": 5},
               {"content_key": "webinar-invitation", "wait_days": 7}]'),
            ('Enterprise lead nurture',
             'Longer, executive sequence for mid-market and enterprise accounts.',
             '{"statuses": ["new", "mql"], "segments": ["mid_market", "enterprise"]}',
             '[{"content_key": "industry-report", "wait_days": 0},
               {"content_key": "case-study-enterprise", "wait_days": 10},
               {"content_key": "roi-guide", "wait_days": 14},
               {"content_key": "executive-roundtable-invitation", "wait_days": 21}]')
        ) AS p(name, description, entry_rule, steps)
        """
    )


def downgrade() -> None:
    op.drop_index(
        "ix_nurture_enrollments_due",
        table_name="nurture_enrollments",
        postgresql_where=sa.text("status = 'active'"),
    )
    op.drop_table("nurture_enrollments")
    op.drop_table("nurture_programs")
