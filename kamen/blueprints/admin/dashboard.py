"""Back-office home: the shop at a glance."""
from flask import current_app, render_template

from kamen.blueprints.admin import bp
from kamen.extensions import db
from kamen.services.stats import catalog_stats


@bp.get("/")
def dashboard():
    stats = catalog_stats(db.session, current_app.config["LOW_STOCK_THRESHOLD"])
    schedules_on = bool(current_app.config["REDIS_URL"])
    return render_template("admin/dashboard.html", stats=stats, schedules_on=schedules_on)
