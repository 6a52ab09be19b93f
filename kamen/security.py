"""Security headers on every response: CSP, framing, referrer, HSTS.

The policy forbids inline script and inline style, so templates carry no
``<script>`` code, no ``on…=`` handlers and no ``style=`` attributes: page
behaviour lives in ``static/js``, looks in ``static/css``, and htmx is told
not to inject its indicator ``<style>`` (``includeIndicatorStyles: false`` in
the admin's ``htmx-config`` meta tag; the indicator rules are in admin.css).
"""

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https:",  # goods pictures may come from a supplier's CDN
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ]
)

# The one place to relax the policy for a third-party page mounted inside the
# app: such pages ship inline scripts, styles and client-side templates
# (underscore's, which compile with eval) that we do not control. Keys are URL
# path prefixes, values the policy for everything under that prefix. Such a
# page must sit behind the admin login; never list a page of our own here.
RELAXED_THIRD_PARTY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ]
)
RELAXED_POLICIES = {
    "/admin/jobs": RELAXED_THIRD_PARTY_POLICY,  # rq-dashboard, for admins only
}

from flask import request

HSTS = "max-age=31536000; includeSubDomains"


def policy_for(path):
    for prefix, policy in RELAXED_POLICIES.items():
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return policy
    return POLICY


def register_security_headers(app):
    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy_for(request.path))
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if app.config["HTTPS"]:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
