"""job leases: the row owns its job (lease, heartbeat, enqueue state); one active sync run per supplier

Revision ID: 0006_job_leases
Revises: 0005_uploads
Create Date: 2026-12-01 14:48:38.632047

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_job_leases'
down_revision = '0005_uploads'
branch_labels = None
depends_on = None


ACTIVE = sa.text("status IN ('queued', 'running')")


def _job_columns():
    """The JobLease columns (kamen/models/jobs.py) every job-owning table has."""
    return [
        sa.Column('job_id', sa.String(length=64), nullable=True),
        sa.Column('job_requested_at', sa.DateTime(), nullable=True),
        sa.Column('job_enqueued_at', sa.DateTime(), nullable=True),
        sa.Column('job_token', sa.String(length=32), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
        sa.Column('job_resumes', sa.Integer(), nullable=False, server_default='0'),
    ]


def upgrade():
    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('step', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('auto_options', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('purged_at', sa.DateTime(), nullable=True))
        for column in _job_columns():
            batch_op.add_column(column)

    # Before the unique index: only the newest active run of a supplier stays active.
    op.execute(
        "UPDATE sync_runs SET status = 'failed', message = '运行超时，已视为失败（可能是进程重启）' "
        "WHERE status IN ('queued', 'running') AND id NOT IN "
        "(SELECT max(id) FROM sync_runs WHERE status IN ('queued', 'running') GROUP BY supplier_id)"
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        for column in _job_columns():
            batch_op.add_column(column)
        batch_op.create_index('ux_sync_runs_one_active', ['supplier_id'], unique=True, postgresql_where=ACTIVE,
                              sqlite_where=ACTIVE)


def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ux_sync_runs_one_active', postgresql_where=ACTIVE, sqlite_where=ACTIVE)
        for column in _job_columns():
            batch_op.drop_column(column.name)

    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        for column in _job_columns():
            batch_op.drop_column(column.name)
        batch_op.drop_column('purged_at')
        batch_op.drop_column('auto_options')
        batch_op.drop_column('step')
