"""supplier guards: price-jump limit, reply-sign switch, balance alert, pending cost

Revision ID: 0009_supplier_guards
Revises: 0005_uploads
"""
from alembic import op
import sqlalchemy as sa


revision = "0009_supplier_guards"
down_revision = "0006_job_leases"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("price_jump_percent", sa.Numeric(precision=7, scale=2), nullable=False,
                                      server_default="30"))
        batch_op.add_column(sa.Column("verify_reply_sign", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("balance_alert_below", sa.Numeric(precision=12, scale=2), nullable=True))
        batch_op.add_column(sa.Column("balance_alerted", sa.Boolean(), nullable=False, server_default=sa.false()))
    # An interval of 0 hours reminded every minute; it is refused from now on.
    op.execute("UPDATE suppliers SET recheck_hours = 8 WHERE recheck_hours < 1")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_cost", sa.Numeric(precision=12, scale=2), nullable=True))


def downgrade():
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("pending_cost")
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.drop_column("balance_alerted")
        batch_op.drop_column("balance_alert_below")
        batch_op.drop_column("verify_reply_sign")
        batch_op.drop_column("price_jump_percent")
