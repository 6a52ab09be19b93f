"""Every route, from app.url_map: back office behind the login, every form POST behind CSRF.

A new route cannot forget either: it is swept the moment it exists. Public
routes are not found by accident but listed below, each with its reason.
"""
import uuid
from urllib.parse import urlsplit

import pytest

from kamen import create_app
from kamen.extensions import db
from tests.helpers import AuthActions, CSRFClient

# Blueprints anyone may call without an admin login (None: Flask's own static
# files). Routes under /admin are back office whatever their blueprint.
PUBLIC_BLUEPRINTS = {
    None: "static files",
    "shop": "the storefront: customers browse, buy and look up orders without an account",
    "api": "machine APIs (分站 upstream API, import API): each request carries its own signature or token",
    "health": "load-balancer health checks (/healthz, /readyz) answer without a login",
    "demopay": "the demo 易支付 gateway: a separate site speaking 易支付 to the shop",
}
PUBLIC_ADMIN_ENDPOINTS = {"admin.login": "the login page itself"}

# POSTs that take no CSRF token, because they authenticate every request
# themselves (signature, token) and are called by machines, not browsers.
CSRF_EXEMPT_BLUEPRINTS = {
    "api": "signed (分站) or token-authenticated (import scripts) machine requests",
}
CSRF_EXEMPT_ENDPOINTS = {
    "shop.buy": "the buy form: product pages set no session (cacheable), so it checks Origin/Referer instead of a token",
    "shop.pay_notify": "the payment gateway's server-to-server notify, verified by its 易支付 signature",
    "demopay.submit": "易支付 submit.php: the merchant's signed payment request, posted from the shop's pages",
    "demopay.mapi": "易支付 mapi.php: the merchant's signed server-to-server payment request",
    "demopay.api": "易支付 api.php: merchant queries authenticated by pid + key",
}

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def every_route(app, db_url, tmp_path, redis_url):
    """The app with every optional part switched on (the demo gateway; with Redis,
    the job dashboard under /admin/jobs), on the test's database."""
    full = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "INSTANCE_PATH": str(tmp_path / "every-route"),
                       "SECRET_KEY": "test-secret", "TESTING": True, "JOBS_SYNC": True, "REDIS_URL": redis_url,
                       "JOB_QUEUE": f"sweep-{uuid.uuid4().hex}", "DEMO_GATEWAY": True})
    full.test_client_class = CSRFClient
    yield full
    with full.app_context():
        db.engine.dispose()


def _blueprint(endpoint):
    return endpoint.rpartition(".")[0] or None


def _path(rule):
    """The rule's URL with placeholder values: views are never reached, so no rows are needed."""
    values = dict(rule.defaults or {})
    for name in rule.arguments - set(values):
        converter = rule._converters[name]
        kind = type(converter).__name__
        if kind in ("IntegerConverter", "FloatConverter"):
            values[name] = 0
        elif kind == "AnyConverter":
            values[name] = sorted(converter.items)[0]
        else:
            values[name] = "x"
    return rule.build(values)[1]


def _routes(app):
    return list(app.url_map.iter_rules())


def _is_back_office(rule):
    return rule.rule.startswith("/admin") and rule.endpoint not in PUBLIC_ADMIN_ENDPOINTS


def test_every_route_is_back_office_or_listed_as_public(every_route):
    assert "demopay.submit" in every_route.view_functions  # the optional parts are swept too
    assert any(r.rule.startswith("/admin/jobs/") and r.endpoint.startswith("rq_dashboard") for r in _routes(every_route))
    unlisted = [f"{r.rule} ({r.endpoint})" for r in _routes(every_route)
                if not r.rule.startswith("/admin") and _blueprint(r.endpoint) not in PUBLIC_BLUEPRINTS]
    assert unlisted == [], "put back-office pages under /admin, or list the blueprint in PUBLIC_BLUEPRINTS"


def test_every_back_office_route_sends_anonymous_visitors_to_the_login(every_route):
    client = every_route.test_client()
    swept = 0
    for rule in _routes(every_route):
        if not _is_back_office(rule):
            continue
        path = _path(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            kwargs = {"data": {"csrf_token": client.csrf_token()}} if method in WRITE_METHODS else {}
            response = client.open(path, method=method, **kwargs)
            if response.status_code == 308:  # the rule's canonical URL (a default filled in)
                response = client.open(response.headers["Location"], method=method, **kwargs)
            assert response.status_code == 302, f"{method} {path}: {response.status_code}"
            assert urlsplit(response.headers["Location"]).path == "/admin/login", f"{method} {path}"
            swept += 1
            if _blueprint(rule.endpoint) != "admin":
                continue  # a mounted third-party page (the job dashboard) speaks no htmx
            # From htmx: a 401 that sends the whole page to the login (never the form into a cell).
            response = client.open(path, method=method, headers={"HX-Request": "true"}, **kwargs)
            assert response.status_code == 401, f"htmx {method} {path}: {response.status_code}"
            assert urlsplit(response.headers["HX-Redirect"]).path == "/admin/login", f"htmx {method} {path}"
    assert swept >= 50  # the sweep really saw the back office


def test_every_post_without_a_csrf_token_is_refused(every_route):
    client = every_route.test_client()
    AuthActions(client, every_route).login()
    swept = 0
    for rule in _routes(every_route):
        writes = sorted(set(WRITE_METHODS) & rule.methods)
        if not writes or rule.endpoint in CSRF_EXEMPT_ENDPOINTS or _blueprint(rule.endpoint) in CSRF_EXEMPT_BLUEPRINTS:
            continue
        for method in writes:
            response = client.open(_path(rule), method=method, data={"x": "1"})
            assert response.status_code == 400, f"{method} {rule.rule}: {response.status_code}"
            swept += 1
    assert swept >= 30
    assert client.get("/admin/").status_code == 200  # still logged in: the 400s were CSRF, not a logout


@pytest.mark.parametrize("path", ["/admin/login", "/admin/logout"])
def test_login_and_logout_need_the_token_too(client, auth, path):
    auth.create()
    response = client.post(path, data={"username": "boss", "password": "correct-horse-42"}, csrf=False)
    assert response.status_code == 400
