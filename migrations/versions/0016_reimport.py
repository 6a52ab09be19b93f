"""weekly re-import: file hash, column samples, remembered fixes, template options

Revision ID: 0016_reimport
Revises: 0015_import_pricing
"""
from alembic import op
import sqlalchemy as sa


revision = "0016_reimport"
down_revision = "0015_import_pricing"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("samples", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.create_index(batch_op.f("ix_import_batches_file_hash"), ["file_hash"], unique=False)
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auto_fixed", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("mapping_templates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=True))
    op.create_table(
        "import_fixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=20), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("supplier_id", "source_hash", "field"),
    )


def downgrade():
    op.drop_table("import_fixes")
    with op.batch_alter_table("mapping_templates", schema=None) as batch_op:
        batch_op.drop_column("options")
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.drop_column("auto_fixed")
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_batches_file_hash"))
        batch_op.drop_column("samples")
        batch_op.drop_column("file_hash")
