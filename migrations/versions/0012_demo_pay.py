"""demo gateway trades

Revision ID: 0012_demo_pay
Revises: 0004
Create Date: 2026-12-01 15:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_demo_pay'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'demo_pay_trades',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('trade_no', sa.String(length=32), nullable=False),
        sa.Column('pid', sa.String(length=32), nullable=False),
        sa.Column('out_trade_no', sa.String(length=64), nullable=False),
        sa.Column('type', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('money', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('param', sa.Text(), nullable=False),
        sa.Column('notify_url', sa.String(length=512), nullable=False),
        sa.Column('return_url', sa.String(length=512), nullable=False),
        sa.Column('client_ip', sa.String(length=45), nullable=False),
        sa.Column('status', sa.Enum('pending', 'paid', 'cancelled', name='demotradestatus', native_enum=False,
                                    create_constraint=False, length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('paid_at', sa.DateTime(), nullable=True),
        sa.Column('notify_attempts', sa.Integer(), nullable=False),
        sa.Column('notify_next_at', sa.DateTime(), nullable=True),
        sa.Column('notify_last_at', sa.DateTime(), nullable=True),
        sa.Column('notify_last_answer', sa.String(length=255), nullable=False),
        sa.Column('notified_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('pid', 'out_trade_no', name='uq_demo_pay_trades_pid_out_trade_no'),
        sa.UniqueConstraint('trade_no'),
    )
    with op.batch_alter_table('demo_pay_trades', schema=None) as batch_op:
        batch_op.create_index('ix_demo_pay_trades_notify_due', ['notify_next_at'], unique=False)


def downgrade():
    with op.batch_alter_table('demo_pay_trades', schema=None) as batch_op:
        batch_op.drop_index('ix_demo_pay_trades_notify_due')
    op.drop_table('demo_pay_trades')
