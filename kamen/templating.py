"""Jinja filters and globals shared by shop and admin templates."""
from flask import current_app

from kamen.money import format_money, format_plain
from kamen.timeutil import to_local


def register_templating(app):
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["plain"] = format_plain
    app.jinja_env.filters["local_dt"] = _local_dt
    app.jinja_env.filters["duration"] = duration

    @app.context_processor
    def _shop_globals():
        return {
            "shop_name": current_app.config["SHOP_NAME"],
        }


def _local_dt(dt, fmt="%Y-%m-%d %H:%M"):
    local = to_local(dt)
    return local.strftime(fmt) if local else ""


def duration(seconds):
    """Seconds as an operator reads them: 45 秒, 3 分 20 秒, 2 小时 5 分, 1 天 3 小时."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} 秒"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} 分 {secs} 秒" if secs else f"{minutes} 分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} 小时 {minutes} 分" if minutes else f"{hours} 小时"
    days, hours = divmod(hours, 24)
    return f"{days} 天 {hours} 小时" if hours else f"{days} 天"
