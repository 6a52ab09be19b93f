"""Columns of a row that owns a background job (an import batch, a sync run, …).

The row, not Redis, is the job's reason to exist: it says which job it waits
for, whether enqueueing it worked, and who holds its lease. A job takes the
lease with one conditional UPDATE and renews ``heartbeat_at`` as it works, so
a job picked up twice works once and a dead one is found by the sweeper.
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column


class JobLease:
    job_id: Mapped[str | None] = mapped_column(sa.String(64))  # the queue's id of the latest job asked for
    job_requested_at: Mapped[datetime | None]  # when that job was asked for
    job_enqueued_at: Mapped[datetime | None]  # None while the queue could not take it (Redis away)
    job_token: Mapped[str | None] = mapped_column(sa.String(32))  # lease holder; None = free
    heartbeat_at: Mapped[datetime | None]  # the lease holder's last sign of life
    job_resumes: Mapped[int] = mapped_column(default=0)  # times the sweeper restarted a dead job
