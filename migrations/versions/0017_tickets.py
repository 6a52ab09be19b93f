"""after-sales tickets

Revision ID: 0017_tickets
Revises: 0007_exact_money
Create Date: 2026-12-01 17:37:28.251256

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017_tickets'
down_revision = '0014_station_orders'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_no', sa.String(length=24), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('station_id', sa.Integer(), nullable=True),
    sa.Column('station_order_no', sa.String(length=64), nullable=True),
    sa.Column('station_ticket_no', sa.String(length=32), nullable=True),
    sa.Column('callback_url', sa.String(length=500), nullable=False),
    sa.Column('callback_state', sa.String(length=12), nullable=False),
    sa.Column('callback_attempts', sa.Integer(), nullable=False),
    sa.Column('callback_next_at', sa.DateTime(), nullable=True),
    sa.Column('callback_error', sa.Text(), nullable=False),
    sa.Column('kind', sa.Enum('invalid_code', 'not_received', 'wrong_account', 'other', name='ticketkind', native_enum=False, create_constraint=False, length=16), nullable=False),
    sa.Column('responsibility', sa.Enum('supplier', 'shop', 'buyer', name='responsibility', native_enum=False, create_constraint=False, length=16), nullable=False),
    sa.Column('status', sa.Enum('open', 'supplier', 'processing', 'resolved', 'rejected', name='ticketstatus', native_enum=False, create_constraint=False, length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('contact', sa.String(length=64), nullable=False),
    sa.Column('product_name', sa.String(length=200), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=True),
    sa.Column('supplier_order_key', sa.String(length=64), nullable=True),
    sa.Column('supplier_order_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('first_response_due', sa.DateTime(), nullable=False),
    sa.Column('resolve_due', sa.DateTime(), nullable=False),
    sa.Column('first_responded_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('first_overdue_alerted_at', sa.DateTime(), nullable=True),
    sa.Column('resolve_overdue_alerted_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.Enum('reissue', 'refund', 'coupon', 'rejected', 'answered', name='outcome', native_enum=False, create_constraint=False, length=16), nullable=True),
    sa.Column('outcome_note', sa.String(length=300), nullable=False),
    sa.Column('reissued_encrypted', sa.Text(), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=True),
    sa.Column('forward_state', sa.String(length=12), nullable=False),
    sa.Column('forward_attempts', sa.Integer(), nullable=False),
    sa.Column('forward_next_at', sa.DateTime(), nullable=True),
    sa.Column('forward_error', sa.Text(), nullable=False),
    sa.Column('upstream_ticket_no', sa.String(length=32), nullable=True),
    sa.Column('upstream_status', sa.String(length=16), nullable=False),
    sa.Column('supplier_codes_encrypted', sa.Text(), nullable=False),
    sa.Column('job_id', sa.String(length=64), nullable=True),
    sa.Column('job_requested_at', sa.DateTime(), nullable=True),
    sa.Column('job_enqueued_at', sa.DateTime(), nullable=True),
    sa.Column('job_token', sa.String(length=32), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('job_resumes', sa.Integer(), nullable=False),
    sa.CheckConstraint('order_id IS NOT NULL OR station_id IS NOT NULL', name=op.f('ck_tickets_ticket_has_an_order')),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_tickets_coupon_id_coupons')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_tickets_order_id_orders')),
    sa.ForeignKeyConstraint(['station_id'], ['downstream_stations.id'], name=op.f('fk_tickets_station_id_downstream_stations')),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_tickets_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('ticket_no', name=op.f('uq_tickets_ticket_no'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_callback_next_at'), ['callback_next_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_forward_next_at'), ['forward_next_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_station_id'), ['station_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_status'), ['status'], unique=False)
        batch_op.create_index('ux_tickets_one_open_per_order', ['order_id'], unique=True, postgresql_where=sa.text("status IN ('open', 'supplier', 'processing')"), sqlite_where=sa.text("status IN ('open', 'supplier', 'processing')"))
        batch_op.create_index('ux_tickets_one_open_per_station_order', ['station_id', 'station_order_no'], unique=True, postgresql_where=sa.text("status IN ('open', 'supplier', 'processing')"), sqlite_where=sa.text("status IN ('open', 'supplier', 'processing')"))

    op.create_table('ticket_attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('mimetype', sa.String(length=32), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_attachments_ticket_id_tickets')),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_ticket_attachments_upload_id_uploads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_attachments'))
    )
    with op.batch_alter_table('ticket_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_attachments_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('ticket_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('author', sa.String(length=12), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('source_ref', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_events_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_events')),
    sa.UniqueConstraint('ticket_id', 'source_ref', name='uq_ticket_events_source_ref')
    )
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_events_ticket_id'), ['ticket_id'], unique=False)



def downgrade():
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_events_ticket_id'))

    op.drop_table('ticket_events')
    with op.batch_alter_table('ticket_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_attachments_ticket_id'))

    op.drop_table('ticket_attachments')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ux_tickets_one_open_per_station_order', postgresql_where=sa.text("status IN ('open', 'supplier', 'processing')"), sqlite_where=sa.text("status IN ('open', 'supplier', 'processing')"))
        batch_op.drop_index('ux_tickets_one_open_per_order', postgresql_where=sa.text("status IN ('open', 'supplier', 'processing')"), sqlite_where=sa.text("status IN ('open', 'supplier', 'processing')"))
        batch_op.drop_index(batch_op.f('ix_tickets_status'))
        batch_op.drop_index(batch_op.f('ix_tickets_station_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_order_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_forward_next_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_created_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_callback_next_at'))

    op.drop_table('tickets')
