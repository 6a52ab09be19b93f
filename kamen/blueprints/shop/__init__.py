from flask import Blueprint

bp = Blueprint("shop", __name__)

from kamen.blueprints.shop import routes  # noqa: E402,F401
from kamen.blueprints.shop import orders  # noqa: E402,F401
from kamen.blueprints.shop import tickets  # noqa: E402,F401
