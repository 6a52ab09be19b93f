"""Downstream stations (分站) that buy from this shop through the upstream API."""
import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.forms import StationForm
from kamen.extensions import db
from kamen.models import DownstreamStation
from kamen.money import MoneyError
from kamen.services import stations as station_service


@bp.route("/stations", methods=["GET", "POST"])
def stations():
    form = StationForm()
    new_secret = None
    if form.validate_on_submit():
        station, new_secret = station_service.create_station(
            db.session, form.name.data.strip(), form.markup_percent.data, form.markup_fixed.data
        )
        flash(f"分站“{station.name}”已创建。密钥只显示这一次，请立即复制给分站管理员。", "success")
        form = StationForm(formdata=None)
    rows = db.session.scalars(sa.select(DownstreamStation).order_by(DownstreamStation.id)).all()
    status = 400 if form.errors else 200
    return render_template(
        "admin/stations.html", rows=rows, form=form, new_secret=new_secret,
        api_base=request.host_url.rstrip("/"),
    ), status


def _station_or_404(station_id):
    return db.session.get(DownstreamStation, station_id) or abort(404)


@bp.route("/stations/<int:station_id>", methods=["GET", "POST"])
def station_detail(station_id):
    station = _station_or_404(station_id)
    form = StationForm(obj=station)
    if form.validate_on_submit():
        form.populate_obj(station)
        station.name = station.name.strip()
        db.session.commit()
        flash("分站设置已保存。", "success")
        return redirect(url_for("admin.station_detail", station_id=station.id))
    return render_template("admin/station_detail.html", station=station, form=form, new_secret=None), (
        400 if form.errors else 200
    )


@bp.post("/stations/<int:station_id>/top-up")
def station_top_up(station_id):
    station = _station_or_404(station_id)
    try:
        balance = station_service.top_up(db.session, station, request.form.get("amount", ""))
    except (MoneyError, station_service.StationInvalid) as exc:
        flash(str(exc), "error")
    else:
        flash(f"已调整余额，当前余额 ¥{balance}。", "success")
    return redirect(url_for("admin.station_detail", station_id=station.id))


@bp.post("/stations/<int:station_id>/rotate")
def station_rotate(station_id):
    station = _station_or_404(station_id)
    secret = station_service.rotate_secret(db.session, station)
    flash("已生成新密钥，旧密钥立即失效。新密钥只显示这一次。", "warning")
    return render_template("admin/station_detail.html", station=station, form=StationForm(obj=station), new_secret=secret)
