"""Back office. One blueprint, split over files by area."""
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, request, url_for
from flask_login import current_user

from kamen.blueprints.common import is_htmx

bp = Blueprint("admin", __name__)

PUBLIC_ENDPOINTS = {"admin.login"}


@bp.before_request
def _require_login():
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    if is_htmx():
        # Logged out meanwhile (password changed elsewhere, account deactivated):
        # the whole page goes to the login, never the login form into a table cell.
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        back_to = page.path + (f"?{page.query}" if page.query else "")
        return Response(status=401, headers={"HX-Redirect": url_for("admin.login", next=back_to or None)})
    return redirect(url_for("admin.login", next=request.full_path if request.method == "GET" else None))


@bp.before_request
def _sweep_embedded_jobs():
    """Without Redis there is no cron: the back office resumes unfinished jobs itself."""
    from kamen.extensions import db
    from kamen.services.sweeper import sweep_embedded

    sweep_embedded(db.session)


@bp.context_processor
def _admin_globals():
    from kamen.extensions import db
    from kamen.services.products import INLINE_FIELDS
    from kamen.services.settings import low_stock_threshold

    return {"inline_fields": INLINE_FIELDS, "run_status_labels": RUN_STATUS_LABELS,
            "default_threshold": low_stock_threshold(db.session)}


RUN_STATUS_LABELS = {"queued": "排队中", "running": "同步中", "succeeded": "成功", "failed": "失败"}


from kamen.blueprints.admin import (  # noqa: E402,F401
    accounts,
    auth,
    card_codes,
    categories,
    coupons,
    dashboard,
    imports,
    launch,
    orders,
    payment_channels,
    products,
    settings,
    sources,
    stations,
    storefront,
    suppliers,
    tickets,
)
