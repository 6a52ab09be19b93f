"""Admin login and logout."""
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.forms import LoginForm
from kamen.extensions import db
from kamen.services.auth import LoginRefused, authenticate


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = authenticate(db.session, form.username.data.strip(), form.password.data,
                                request.remote_addr or "-", **login_limits())
        except LoginRefused as exc:
            error = str(exc)
        else:
            login_user(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
    status = 200 if error is None and not form.errors else 400
    return render_template("admin/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    logout_user()
    flash("已退出登录。", "info")
    return redirect(url_for("admin.login"))


def login_limits():
    """How many password checks per IP or username, in how many minutes (every password check obeys them)."""
    return {"max_failures": current_app.config["LOGIN_MAX_FAILURES"],
            "lock_minutes": current_app.config["LOGIN_LOCK_MINUTES"]}


def _safe_next(target):
    """Only same-site paths; never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("admin.dashboard")
