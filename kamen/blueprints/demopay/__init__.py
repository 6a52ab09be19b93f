"""The built-in 易支付 V1 demo gateway, mounted at /demopay/ when
``DEMO_GATEWAY`` is on. The shop's merchant code talks to it over HTTP
exactly as to a real gateway; it shares nothing else with the shop."""
from flask import Blueprint

bp = Blueprint("demopay", __name__)

from kamen.blueprints.demopay import routes  # noqa: E402,F401
