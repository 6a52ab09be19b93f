"""Request helpers every blueprint shares."""
from flask import request


def is_htmx():
    """The request comes from HTMX swapping part of a page (not a full page load)."""
    return request.headers.get("HX-Request") == "true"
