"""Back office. One blueprint, split over files by area."""
from flask import Blueprint, redirect, request, url_for
from flask_login import current_user

bp = Blueprint("admin", __name__)

PUBLIC_ENDPOINTS = {"admin.login"}


@bp.before_request
def _require_login():
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        return redirect(url_for("admin.login", next=request.full_path if request.method == "GET" else None))
    return None


@bp.context_processor
def _admin_globals():
    from kamen.services.products import INLINE_FIELDS

    return {"inline_fields": INLINE_FIELDS, "run_status_labels": RUN_STATUS_LABELS}


RUN_STATUS_LABELS = {"queued": "排队中", "running": "同步中", "succeeded": "成功", "failed": "失败"}


from kamen.blueprints.admin import (  # noqa: E402,F401
    auth,
    card_codes,
    categories,
    coupons,
    dashboard,
    imports,
    orders,
    payment_channels,
    products,
    settings,
    stations,
    suppliers,
)
