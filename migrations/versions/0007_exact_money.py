"""exact money on SQLite: money, percent and step columns hold scaled integers

SQLite stored NUMERIC columns as binary floats; ExactDecimal (kamen/models/types.py)
keeps them as integers there (yuan -> cents). Existing values are rounded to their
2 decimals and scaled before the column type changes. PostgreSQL keeps NUMERIC:
nothing to do there.

Revision ID: 0007_exact_money
Revises: 0011_orders
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_exact_money'
down_revision = '0011_orders'
branch_labels = None
depends_on = None

# table -> [(column, precision, server default as written by 0002/0009 or None)]; every column has scale 2.
COLUMNS = {
    'products': [('face_value', 12, None), ('cost_price', 12, None), ('market_price', 12, None),
                 ('sale_price', 12, None), ('promo_price', 12, None), ('pending_cost', 12, None)],
    'suppliers': [('markup_percent', 7, '5'), ('markup_fixed', 12, '0'), ('markup_step', 4, '0.01'),
                  ('min_margin', 12, '0'), ('price_jump_percent', 7, '30'), ('balance_alert_below', 12, None)],
    'downstream_stations': [('markup_percent', 7, None), ('markup_fixed', 12, None), ('balance', 12, None)],
    'import_batches': [('markup_percent', 7, None), ('markup_fixed', 12, None), ('markup_step', 4, None),
                       ('max_price_change', 7, None)],
    'demo_pay_trades': [('money', 12, None)],
    'coupons': [('value', 12, None), ('min_amount', 12, None)],
    'orders': [('unit_price', 12, None), ('discount', 12, None), ('amount', 12, None), ('cost', 12, None),
               ('paid_amount', 12, None)],
}


def _cents(default):
    return None if default is None else str(round(float(default) * 100))


def upgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table, columns in COLUMNS.items():
        # Scale first: the table copy below casts to INTEGER, which would truncate 0.7999999.
        op.execute(sa.text(f'UPDATE {table} SET ' + ', '.join(
            f'{name} = CAST(ROUND({name} * 100) AS INTEGER)' for name, _, _ in columns)))
        with op.batch_alter_table(table) as batch_op:
            for name, precision, default in columns:
                batch_op.alter_column(name, existing_type=sa.Numeric(precision, 2), type_=sa.BigInteger(),
                                      server_default=_cents(default), existing_server_default=default)


def downgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            for name, precision, default in columns:
                batch_op.alter_column(name, existing_type=sa.BigInteger(), type_=sa.Numeric(precision, 2),
                                      server_default=default, existing_server_default=_cents(default))
        op.execute(sa.text(f'UPDATE {table} SET ' + ', '.join(
            f'{name} = {name} / 100.0' for name, _, _ in columns)))
