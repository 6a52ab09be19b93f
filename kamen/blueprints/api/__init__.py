"""Machine-facing endpoints: the upstream API for 分站, the import API for scripts and
suppliers' order callbacks.

All authenticate every request themselves (signatures, tokens), so CSRF,
which protects browser sessions, does not apply here.
"""
from flask import Blueprint

from kamen.extensions import csrf

bp = Blueprint("api", __name__)
csrf.exempt(bp)

from kamen.blueprints.api import imports, supplier_callbacks, tickets, upstream  # noqa: E402,F401
