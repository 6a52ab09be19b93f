"""import pricing, delivery and categories: price basis, waiting categories, category rules

Revision ID: 0015_import_pricing
Revises: 0007_exact_money
"""
from alembic import op
import sqlalchemy as sa


revision = "0015_import_pricing"
down_revision = "0017_tickets"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("price_basis", sa.String(length=12), nullable=False, server_default="file"))
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("price_basis", sa.String(length=12), nullable=False, server_default="file"))
        batch_op.add_column(sa.Column("new_categories", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category_path", sa.String(length=200), nullable=True))
    op.create_table(
        "category_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("keyword", sa.String(length=40), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["category_id"], ["categories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("keyword"),
    )
    op.create_index("ix_category_rules_category_id", "category_rules", ["category_id"])


def downgrade():
    op.drop_index("ix_category_rules_category_id", table_name="category_rules")
    op.drop_table("category_rules")
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.drop_column("category_path")
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_column("new_categories")
        batch_op.drop_column("price_basis")
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.drop_column("price_basis")
