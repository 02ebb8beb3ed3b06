"""personal data erasure

Revision ID: 40157be66d98
Revises: c0c3nurture
Create Date: 2026-11-22 14:07:25.808025+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "40157be66d98"
down_revision: str | None = "c0c3nurture"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("contacts", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("leads", "erased_at")
    op.drop_column("contacts", "erased_at")
