"""Entry point for gunicorn from any directory: `gunicorn kamen.wsgi:app`."""
from kamen import create_app

app = create_app()
