"""Jinja filters and globals shared by shop and admin templates."""
from flask import current_app

from kamen.money import format_money, format_plain
from kamen.timeutil import to_local


def register_templating(app):
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["plain"] = format_plain
    app.jinja_env.filters["local_dt"] = _local_dt

    @app.context_processor
    def _shop_globals():
        return {
            "shop_name": current_app.config["SHOP_NAME"],
        }


def _local_dt(dt, fmt="%Y-%m-%d %H:%M"):
    local = to_local(dt)
    return local.strftime(fmt) if local else ""
