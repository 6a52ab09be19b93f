"""station orders: 分站 orders paid from their balance, and their callbacks

Revision ID: 0014_station_orders
Revises: 0013_forwarding
"""
from alembic import op
import sqlalchemy as sa


revision = "0014_station_orders"
down_revision = "0013_forwarding"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("station_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("station_order_no", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("station_notify_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("station_notify_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("station_notify_next_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("station_notified_status", sa.String(length=16), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_orders_station_id_downstream_stations"), "downstream_stations",
                                    ["station_id"], ["id"])
        batch_op.create_unique_constraint("uq_orders_station_order_no", ["station_id", "station_order_no"])
        batch_op.create_index("ix_orders_station_id", ["station_id"], unique=False)
        batch_op.create_index("ix_orders_station_notify_next_at", ["station_notify_next_at"], unique=False)


def downgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_station_notify_next_at")
        batch_op.drop_index("ix_orders_station_id")
        batch_op.drop_constraint("uq_orders_station_order_no", type_="unique")
        batch_op.drop_constraint(batch_op.f("fk_orders_station_id_downstream_stations"), type_="foreignkey")
        batch_op.drop_column("station_notified_status")
        batch_op.drop_column("station_notify_next_at")
        batch_op.drop_column("station_notify_attempts")
        batch_op.drop_column("station_notify_url")
        batch_op.drop_column("station_order_no")
        batch_op.drop_column("station_id")
