"""storefront: product pictures, pinyin search keys, 推荐位, views while sold out, 上线测试 runs

The home page's pinned list becomes the 推荐位 (featured_rank), and its best
sellers no longer split by is_pinned, so both home indexes change. Existing
products get their search key here, from the same function the app uses.

Revision ID: 0018_storefront
Revises: 0007_exact_money
"""
from alembic import op
import sqlalchemy as sa

from kamen.search_keys import search_key


revision = '0018_storefront'
down_revision = '0007_exact_money'
branch_labels = None
depends_on = None


def _job_columns():
    """The JobLease columns (kamen/models/jobs.py), as 0006 adds them."""
    return [
        sa.Column('job_id', sa.String(length=64), nullable=True),
        sa.Column('job_requested_at', sa.DateTime(), nullable=True),
        sa.Column('job_enqueued_at', sa.DateTime(), nullable=True),
        sa.Column('job_token', sa.String(length=32), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
        sa.Column('job_resumes', sa.Integer(), nullable=False, server_default='0'),
    ]


def upgrade():
    op.create_table(
        'launch_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('label', sa.String(length=120), nullable=False),
        sa.Column('allow_supplier_orders', sa.Boolean(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('passed', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('delisted', sa.Integer(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        *_job_columns(),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_launch_runs_status', 'launch_runs', ['status'], unique=False)
    op.create_table(
        'launch_checks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=True),
        sa.Column('product_name', sa.String(length=200), nullable=False),
        sa.Column('why', sa.String(length=60), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('problems', sa.JSON(), nullable=False),
        sa.Column('notes', sa.JSON(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('order_no', sa.String(length=32), nullable=True),
        sa.Column('promised_minutes', sa.Integer(), nullable=True),
        sa.Column('delivery_seconds', sa.Integer(), nullable=True),
        sa.Column('checked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['run_id'], ['launch_runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_launch_checks_run_id', 'launch_checks', ['run_id'], unique=False)
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('out_of_stock_views', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('search_key', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('image_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cover_url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('featured_rank', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_products_image_id_uploads', 'uploads', ['image_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_index('ix_products_home_pinned')
        batch_op.drop_index('ix_products_best_sellers')
        batch_op.create_index('ix_products_best_sellers', ['is_listed', 'sales_count', 'sort_weight', 'id'], unique=False)
        batch_op.create_index('ix_products_featured', ['featured_rank'], unique=False)

    products = sa.table('products', sa.column('id', sa.Integer), sa.column('name', sa.String),
                        sa.column('code', sa.String), sa.column('search_key', sa.Text))
    bind = op.get_bind()
    rows = bind.execute(sa.select(products.c.id, products.c.name, products.c.code)).all()
    if rows:
        bind.execute(products.update().where(products.c.id == sa.bindparam('pid')).values(search_key=sa.bindparam('key')),
                     [{'pid': r.id, 'key': search_key(r.name, r.code)} for r in rows])


def downgrade():
    op.drop_index('ix_launch_checks_run_id', table_name='launch_checks')
    op.drop_table('launch_checks')
    op.drop_index('ix_launch_runs_status', table_name='launch_runs')
    op.drop_table('launch_runs')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index('ix_products_featured')
        batch_op.drop_index('ix_products_best_sellers')
        batch_op.create_index('ix_products_best_sellers', ['is_listed', 'is_pinned', 'sales_count', 'sort_weight', 'id'], unique=False)
        batch_op.create_index('ix_products_home_pinned', ['is_listed', 'is_pinned', 'sort_weight', 'id'], unique=False)
        batch_op.drop_constraint('fk_products_image_id_uploads', type_='foreignkey')
        batch_op.drop_column('featured_rank')
        batch_op.drop_column('cover_url')
        batch_op.drop_column('image_id')
        batch_op.drop_column('search_key')
        batch_op.drop_column('out_of_stock_views')
