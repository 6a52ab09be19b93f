"""Back-office home: the shop at a glance, notifications, suppliers to re-check."""
import sqlalchemy as sa
from flask import current_app, redirect, render_template, url_for

from kamen import queue
from kamen.blueprints.admin import bp
from kamen.extensions import db
from kamen.models import Notification
from kamen.services import operations
from kamen.services.order_reports import today_totals
from kamen.services.stats import catalog_stats
from kamen.services.syncing import overdue_manual_suppliers
from kamen.timeutil import to_local, utcnow


@bp.get("/")
def dashboard():
    stats = catalog_stats(db.session, current_app.config["LOW_STOCK_THRESHOLD"])
    notes = db.session.scalars(
        sa.select(Notification).where(Notification.read_at.is_(None)).order_by(Notification.id.desc()).limit(20)
    ).all()
    return render_template(
        "admin/dashboard.html",
        stats=stats,
        today=today_totals(db.session),
        today_date=to_local(utcnow()).date().isoformat(),
        notes=notes,
        recheck=overdue_manual_suppliers(db.session, utcnow()),
        schedules_on=bool(current_app.config["REDIS_URL"]),
        ops=operations.overview_or_none(queue.redis_connection(), queue.queue_name()),
    )


@bp.post("/notifications/read")
def notifications_read():
    db.session.execute(sa.update(Notification).where(Notification.read_at.is_(None)).values(read_at=utcnow()))
    db.session.commit()
    return redirect(url_for("admin.dashboard"))
