"""Back-office home: the shop at a glance, notifications, suppliers to re-check."""
from flask import current_app, redirect, render_template, request, url_for

from kamen import queue
from kamen.blueprints.admin import bp
from kamen.services.settings import low_stock_threshold
from kamen.extensions import db
from kamen.services import dashboard as dashboard_service
from kamen.services import merchandising, operations
from kamen.services.order_reports import today_totals
from kamen.timeutil import to_local, utcnow


@bp.get("/")
def dashboard():
    home = dashboard_service.dashboard(db.session, low_stock_threshold(db.session))
    return render_template(
        "admin/dashboard.html",
        stats=home.stats,
        notes=home.notes,
        recheck=home.recheck,
        today=today_totals(db.session),
        today_date=to_local(utcnow()).date().isoformat(),
        schedules_on=bool(current_app.config["REDIS_URL"]),
        ops=operations.overview_or_none(queue.redis_connection(), queue.queue_name()),
        merch=merchandising.report(db.session, days=_report_days()),
    )


REPORT_DAYS = (7, 30, 90)


def _report_days():
    days = request.args.get("days", 30, type=int)
    return days if days in REPORT_DAYS else 30


@bp.post("/notifications/read")
def notifications_read():
    dashboard_service.mark_all_read(db.session)
    return redirect(url_for("admin.dashboard"))
