"""Settings: alert channels (robot webhook, email) and API tokens for upload scripts."""
import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.forms import AlertSettingsForm, ForwardingSettingsForm
from kamen.extensions import db
from kamen.models import ApiToken
from kamen.services import alerts, api_tokens, forwarding, settings


@bp.route("/settings/alerts", methods=["GET", "POST"])
def alert_settings():
    current = {**settings.get(db.session, "alerts"), "low_stock_threshold": settings.low_stock_threshold(db.session)}
    form = AlertSettingsForm(data={k: v for k, v in current.items() if k not in alerts.SECRET_FIELDS})
    if form.validate_on_submit():
        values = {name: field.data for name, field in form._fields.items() if name not in ("csrf_token",)}
        alerts.save_settings(db.session, values)
        flash("告警设置已保存。", "success")
        return redirect(url_for("admin.alert_settings"))
    return render_template("admin/alert_settings.html", form=form, secret_states=alerts.secret_states(db.session)), (
        400 if form.errors else 200
    )


@bp.route("/settings/forwarding", methods=["GET", "POST"])
def forwarding_settings():
    form = ForwardingSettingsForm(data=forwarding.forwarding_settings(db.session))
    if form.validate_on_submit():
        try:
            forwarding.save_settings(db.session, {name: getattr(form, name).data for name in forwarding.SETTING_FIELDS})
        except forwarding.ForwardRefused as exc:
            form.form_errors.append(str(exc))
        else:
            flash("代发设置已保存。", "success")
            return redirect(url_for("admin.forwarding_settings"))
    return render_template("admin/forwarding_settings.html", form=form), 400 if form.errors or form.form_errors else 200


@bp.post("/settings/alerts/test")
def alert_test():
    note = alerts.raise_alert(db.session, "test", "测试告警", ["这是一条测试消息，收到说明告警渠道配置正确。"])
    if "发送失败" in note.body:
        flash(note.body.split("\n\n", 1)[-1], "error")
    else:
        flash("测试告警已发送（同时记录在概览页的通知中）。", "success")
    return redirect(url_for("admin.alert_settings"))


@bp.route("/settings/api-tokens", methods=["GET", "POST"])
def api_token_settings():
    secret = None
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        if not name:
            flash("请填写令牌名称（如：每日价格表脚本）", "error")
        else:
            _token, secret = api_tokens.create_token(db.session, name)
            flash("令牌已创建，只显示这一次，请立即复制。", "success")
    tokens = db.session.scalars(sa.select(ApiToken).order_by(ApiToken.id)).all()
    return render_template("admin/api_tokens.html", tokens=tokens, secret=secret,
                           upload_url=url_for("api.import_products", _external=True))


@bp.post("/settings/api-tokens/<int:token_id>/revoke")
def api_token_revoke(token_id):
    api_tokens.revoke(db.session, token_id)
    flash("令牌已作废。", "success")
    return redirect(url_for("admin.api_token_settings"))
