"""一键代发: forward attempts, product sources, order and supplier forwarding columns

Revision ID: 0013_forwarding
Revises: 0007_exact_money
"""
from alembic import op
import sqlalchemy as sa

from kamen.models.types import Money, Percent


revision = '0013_forwarding'
down_revision = '0018_storefront'
branch_labels = None
depends_on = None

ATTEMPT_STATUS = sa.Enum('sending', 'retry', 'accepted', 'processing', 'unknown', 'success', 'partial', 'failed',
                         'refused', name='attemptstatus', native_enum=False, create_constraint=False, length=16)


def upgrade():
    op.create_table(
        'forward_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('attempt_no', sa.Integer(), nullable=False),
        sa.Column('supplier_id', sa.Integer(), nullable=False),
        sa.Column('source_product_id', sa.Integer(), nullable=True),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('idempotency_key', sa.String(length=64), nullable=False),
        sa.Column('supplier_order_id', sa.String(length=64), nullable=True),
        sa.Column('status', ATTEMPT_STATUS, nullable=False),
        sa.Column('accepted', sa.Boolean(), nullable=False),
        sa.Column('max_unit_cost', Money, nullable=False),
        sa.Column('unit_cost', Money, nullable=True),
        sa.Column('message', sa.String(length=300), nullable=False),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('next_poll_at', sa.DateTime(), nullable=True),
        sa.Column('polls', sa.Integer(), nullable=False),
        sa.Column('alerted_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id']),
        sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id']),
        sa.ForeignKeyConstraint(['source_product_id'], ['products.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('order_id', 'attempt_no', name='uq_forward_attempts_order_attempt'),
        sa.UniqueConstraint('supplier_id', 'idempotency_key', name='uq_forward_attempts_supplier_key'),
    )
    with op.batch_alter_table('forward_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_forward_attempts_order_id', ['order_id'], unique=False)
        batch_op.create_index('ix_forward_attempts_next_poll_at', ['next_poll_at'], unique=False)

    op.create_table(
        'product_sources',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('source_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('product_id <> source_id', name='product_source_not_itself'),
        sa.ForeignKeyConstraint(['product_id'], ['products.id']),
        sa.ForeignKeyConstraint(['source_id'], ['products.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('product_id', 'source_id', name='uq_product_sources_pair'),
    )
    with op.batch_alter_table('product_sources', schema=None) as batch_op:
        batch_op.create_index('ix_product_sources_product_id', ['product_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refund_amount', Money, nullable=True))
        batch_op.add_column(sa.Column('forward_requested_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('apology_coupon_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_orders_forward_requested_at', ['forward_requested_at'], unique=False)
        batch_op.create_foreign_key('fk_orders_apology_coupon_id_coupons', 'coupons', ['apology_coupon_id'], ['id'])

    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('own_stock', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('source_order', sa.String(length=8), nullable=False,
                                      server_default='priority'))

    # 5 %: SQLite holds percent columns scaled by 100 (kamen/models/types.py).
    drift = '500' if op.get_bind().dialect.name == 'sqlite' else '5'
    with op.batch_alter_table('suppliers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_price_drift_percent', Percent, nullable=False, server_default=drift))


def downgrade():
    with op.batch_alter_table('suppliers', schema=None) as batch_op:
        batch_op.drop_column('order_price_drift_percent')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('source_order')
        batch_op.drop_column('own_stock')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint('fk_orders_apology_coupon_id_coupons', type_='foreignkey')
        batch_op.drop_index('ix_orders_forward_requested_at')
        batch_op.drop_column('apology_coupon_id')
        batch_op.drop_column('forward_requested_at')
        batch_op.drop_column('refund_amount')
    with op.batch_alter_table('product_sources', schema=None) as batch_op:
        batch_op.drop_index('ix_product_sources_product_id')
    op.drop_table('product_sources')
    with op.batch_alter_table('forward_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_forward_attempts_next_poll_at')
        batch_op.drop_index('ix_forward_attempts_order_id')
    op.drop_table('forward_attempts')
