"""storefront: product pictures, pinyin search keys, 推荐位, views while sold out

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


def upgrade():
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
