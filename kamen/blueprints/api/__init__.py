from flask import Blueprint

bp = Blueprint("api", __name__)

from kamen.blueprints.api import upstream  # noqa: E402,F401
