"""Entry point for gunicorn from the repository root: `gunicorn wsgi:app` (same as kamen.wsgi:app)."""
from kamen.wsgi import app  # noqa: F401
