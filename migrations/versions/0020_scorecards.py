"""supplier scorecards: balance samples for the balance trend

Revision ID: 0020_scorecards
Revises: 0016_reimport
"""
from alembic import op
import sqlalchemy as sa

from kamen.models.types import Money


revision = "0020_scorecards"
down_revision = "0016_reimport"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "supplier_balance_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("balance", Money, nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_balance_samples_supplier_time", "supplier_balance_samples", ["supplier_id", "checked_at"])


def downgrade():
    op.drop_index("ix_balance_samples_supplier_time", table_name="supplier_balance_samples")
    op.drop_table("supplier_balance_samples")
