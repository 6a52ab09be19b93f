"""The job view at /admin/jobs: rq-dashboard (a maintained package), mounted
behind the admin login. Without Redis (embedded mode) there is no queue to
show and the page says so.

rq-dashboard's own pages post with their own JavaScript and no CSRF token, so
its blueprint is exempt from the token check; instead a POST must come from
this site (Origin or Referer on our host) and, like every request there, from
a logged-in admin. The session cookie is SameSite=Lax as well.
"""
from urllib.parse import urlsplit

from flask import abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from kamen.extensions import csrf

PREFIX = "/admin/jobs"


def register_job_view(app):
    if app.config["WORKER"]:
        return
    if not app.config["REDIS_URL"]:
        app.add_url_rule(f"{PREFIX}/", "jobs_off", login_required(_jobs_off))
        return
    import rq_dashboard
    from rq_dashboard.web import setup_rq_connection

    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", app.config["REDIS_URL"])
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 5000)
    with app.app_context():
        setup_rq_connection(app)
    blueprint = rq_dashboard.blueprint
    if not getattr(blueprint, "_kamen_guarded", False):  # one blueprint object serves every app of the process
        blueprint.before_request(_admins_only)
        blueprint._kamen_guarded = True
    csrf.exempt(blueprint)
    app.register_blueprint(blueprint, url_prefix=PREFIX)


def _admins_only():
    if not current_user.is_authenticated:
        return redirect(url_for("admin.login", next=request.full_path if request.method == "GET" else None))
    if request.method not in ("GET", "HEAD") and not _same_origin():
        abort(400)
    return None


def _same_origin():
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return bool(source) and urlsplit(source).netloc == request.host


def _jobs_off():
    return render_template("admin/jobs_off.html")
