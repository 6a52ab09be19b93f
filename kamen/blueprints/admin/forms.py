"""WTForms for the back office (flask-wtf adds CSRF to each)."""
from datetime import datetime
from decimal import Decimal

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField, HiddenField, PasswordField, SelectChoice, SelectField, SelectMultipleField, StringField, TextAreaField,
)
from wtforms.widgets import CheckboxInput, ListWidget
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp, ValidationError

from kamen.models import DeliveryType, PriceBasis, StockMode, SupplierKind
from kamen.money import MoneyError, parse_money
from kamen.outbound import AddressRefused, check_host, check_url
from kamen.services import delivery, pricing
from kamen.services.products import ProductInvalid, parse_whole


class _ParsedField(StringField):
    """A text input parsed by one of kamen's parsers, with Chinese messages.

    Empty input gives None unless ``required``."""

    def __init__(self, label=None, required=False, **kwargs):
        super().__init__(label, **kwargs)
        self.required = required

    def process_formdata(self, valuelist):
        raw = (valuelist[0] if valuelist else "").strip()
        self.raw_data = [raw]
        if not raw:
            self.data = None
            if self.required:
                raise ValueError(f"请输入{self.label.text}")
            return
        self.data = self.parse(raw)

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)


class MoneyField(_ParsedField):
    def parse(self, raw):
        try:
            return parse_money(raw, field=self.label.text)
        except MoneyError as exc:
            raise ValueError(str(exc)) from exc


class WholeField(_ParsedField):
    def parse(self, raw):
        try:
            return parse_whole(raw, self.label.text)
        except ProductInvalid as exc:
            raise ValueError(str(exc)) from exc


class SignedWholeField(_ParsedField):
    def parse(self, raw):
        try:
            return int(raw)
        except ValueError as exc:
            raise ValueError(f"{self.label.text}必须是整数") from exc


class LocalDateTimeField(_ParsedField):
    """<input type=datetime-local>: shop-local time, converted by the view."""

    def __init__(self, label=None, **kwargs):
        kwargs.setdefault("render_kw", {"type": "datetime-local"})
        super().__init__(label, **kwargs)

    def parse(self, raw):
        for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"):
            try:
                return datetime.strptime(raw, fmt)
            except ValueError:
                continue
        raise ValueError(f"{self.label.text}格式错误，应为 2026-12-31 23:59")

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return self.data.strftime("%Y-%m-%dT%H:%M") if self.data else ""


class PresetsField(SelectMultipleField):
    """Checkboxes of buyer-field presets (services/delivery.py), a stale one refused in Chinese."""

    def pre_validate(self, form):
        known = {choice.value for choice in self.choices}
        if any(value not in known for value in self.data or ()):
            raise ValidationError("买家填写项选择无效，请刷新后重试")


class ChoiceField(SelectField):
    """SelectField taking (value, label) pairs, with Chinese messages for a
    tampered or stale choice."""

    def set_choices(self, pairs):
        self.choices = [SelectChoice(value, label) for value, label in pairs]

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError(f"{self.label.text}选择无效") from exc

    def pre_validate(self, form):
        if self.data not in {choice.value for choice in self.choices}:
            raise ValidationError(f"{self.label.text}选择无效，请刷新后重试")


def _markup_limits(_form, field):
    """The markup limits every markup input shares (pricing.check_markup)."""
    if field.data is None:
        return
    percent, fixed = (field.data, 0) if field.name == "markup_percent" else (0, field.data)
    try:
        pricing.check_markup(percent, fixed)
    except pricing.PriceRuleError as exc:
        raise ValidationError(str(exc)) from exc


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名"), Length(max=64, message="最多 64 个字符")])
    password = PasswordField("密码", validators=[DataRequired("请输入密码")])
    remember = BooleanField("保持登录 30 天（公用电脑请勿勾选）")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("当前密码", validators=[DataRequired("请输入当前密码")])
    new_password = PasswordField("新密码", validators=[DataRequired("请输入新密码"),
                                                     Length(min=8, message="新密码至少 8 位")])
    confirm_password = PasswordField("再输一次新密码", validators=[
        DataRequired("请再输一次新密码"), EqualTo("new_password", message="两次输入的新密码不一致")])


class AddAdminForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名"), Length(max=64, message="最多 64 个字符")])


class CategoryForm(FlaskForm):
    name = StringField("名称", validators=[DataRequired("请输入分类名称"), Length(max=60, message="最多 60 个字")])
    parent_id = ChoiceField("上级分类", coerce=int)
    sort_order = SignedWholeField("排序（小的在前）", required=True, default=0)
    is_visible = BooleanField("在商城显示", default=True)


class ProductForm(FlaskForm):
    supplier_id = ChoiceField("货源", coerce=int)
    code = StringField(
        "商品编码",
        validators=[
            DataRequired("请输入商品编码"),
            Length(max=64, message="最多 64 个字符"),
            Regexp(r"^[A-Za-z0-9._\-]+$", message="商品编码只能包含字母、数字、点、横线和下划线"),
        ],
    )
    name = StringField("商品名称", validators=[DataRequired("请输入商品名称"), Length(max=200, message="最多 200 个字")])
    category_id = ChoiceField("分类", coerce=int)
    face_value = MoneyField("面值")
    tier_label = StringField("面值档位", validators=[Optional(), Length(max=32, message="最多 32 个字")])
    cost_price = MoneyField("供货价", required=True)
    market_price = MoneyField("市场价")
    sale_price = MoneyField("售价", required=True)
    promo_price = MoneyField("折扣价")
    promo_start = LocalDateTimeField("活动开始")
    promo_end = LocalDateTimeField("活动结束")
    stock_mode = ChoiceField("库存方式", choices=[SelectChoice(v, label) for v, label in StockMode.choices()])
    stock = WholeField("库存", required=True, default=0)
    low_stock_threshold = WholeField("预警阈值")
    delivery_type = ChoiceField("发货方式", choices=[SelectChoice(v, label) for v, label in DeliveryType.choices()])
    delivery_minutes = WholeField("预计到账（分钟）", required=True, default=5)
    min_per_order = WholeField("每单最少购买", default=1)
    max_per_order = WholeField("每单最多购买", default=100)
    buyer_presets = PresetsField(
        "买家需填写", choices=[SelectChoice(key, p.label) for key, p in delivery.PRESETS.items()],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
    )
    buyer_fields = TextAreaField("其他填写项（高级）")
    description = TextAreaField("商品说明", validators=[Optional(), Length(max=5000, message="最多 5000 个字")])
    is_listed = BooleanField("上架", default=True)
    is_pinned = BooleanField("置顶推荐")
    sort_weight = SignedWholeField("排序权重（大的在前）", required=True, default=0)
    # The values the page showed (JSON): only fields the admin changed are written.
    original = HiddenField()


INTERVALS = [(0, "关闭"), (15, "每 15 分钟"), (30, "每 30 分钟"), (60, "每小时"), (120, "每 2 小时"), (360, "每 6 小时")]


class SupplierForm(FlaskForm):
    name = StringField("货源名称", validators=[DataRequired("请输入货源名称"), Length(max=100, message="最多 100 个字")])
    code = StringField(
        "货源代号",
        validators=[
            DataRequired("请输入货源代号"),
            Length(max=32, message="最多 32 个字符"),
            Regexp(r"^[a-z0-9_-]+$", message="货源代号只能包含小写字母、数字、横线和下划线"),
        ],
    )
    kind = ChoiceField("对接方式", choices=[SelectChoice(v, label) for v, label in SupplierKind.choices()])
    base_url = StringField(
        "接口地址",
        validators=[Optional(), Length(max=255), Regexp(r"^https?://\S+$", message="接口地址应以 http:// 或 https:// 开头")],
    )
    app_id = StringField("AppID / AppKey", validators=[Optional(), Length(max=64, message="最多 64 个字符")])
    secret = PasswordField("密钥（留空则不修改）")
    markup_percent = MoneyField("加价百分比 %", required=True, default=Decimal("5"), validators=[_markup_limits])
    markup_fixed = MoneyField("固定加价（元）", required=True, default=Decimal("0"), validators=[_markup_limits])
    markup_step = ChoiceField("取整", choices=[SelectChoice("0.01", "精确到分"), SelectChoice("0.1", "精确到角")])
    min_margin = MoneyField("最低利润（元）", required=True, default=Decimal("0"))
    price_basis = ChoiceField("导入时的定价方式", default=PriceBasis.FILE.value,
                              choices=[SelectChoice(v, label) for v, label in PriceBasis.choices()])
    auto_list = BooleanField("新商品自动上架（否则进入待审核）")
    default_category_id = ChoiceField("新商品默认分类", coerce=int)
    sync_interval_minutes = ChoiceField("自动同步", coerce=int, choices=[SelectChoice(v, label) for v, label in INTERVALS])
    nightly_sync_at = StringField(
        "每晚全量同步时间",
        default="02:00",
        validators=[Optional(), Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", message="时间格式应为 HH:MM，如 02:00")],
    )
    auto_delist_at_zero = BooleanField("库存为 0 自动下架、有货自动上架", default=True)
    price_jump_percent = MoneyField("供货价变动确认线 %", required=True, default=Decimal("30"))
    recheck_hours = WholeField("手工货源核对提醒间隔（小时）", required=True, default=8)
    balance_alert_below = MoneyField("余额低于（元）时告警")
    order_price_drift_percent = MoneyField("下单进价最多高出 %", default=Decimal("5"))
    verify_reply_sign = BooleanField("校验货源回复签名（仅当货源文档说明其签名方式不同时才关闭）", default=True)
    is_active = BooleanField("启用", default=True)


class ForwardingSettingsForm(FlaskForm):
    unknown_alert_minutes = WholeField("货源多久没有结果就提醒（分钟）", required=True, default=30)
    apology_coupon_amount = MoneyField("缺货致歉优惠券金额（元，0 表示不送）", required=True, default=Decimal("5"))
    apology_coupon_days = WholeField("优惠券有效天数", required=True, default=30)
    score_sources = BooleanField("按货源评分排序备用货源")


class StationForm(FlaskForm):
    name = StringField("分站名称", validators=[DataRequired("请输入分站名称"), Length(max=100, message="最多 100 个字")])
    markup_percent = MoneyField("分站加价百分比 %", required=True, default=Decimal("0"), validators=[_markup_limits])
    markup_fixed = MoneyField("分站固定加价（元）", required=True, default=Decimal("0"), validators=[_markup_limits])
    is_active = BooleanField("启用", default=True)


class AlertSettingsForm(FlaskForm):
    webhook_kind = ChoiceField(
        "机器人类型",
        choices=[SelectChoice("", "不使用"), SelectChoice("wecom", "企业微信"), SelectChoice("dingtalk", "钉钉")],
    )
    webhook_url = PasswordField(
        "Webhook 地址（含密钥，留空则不修改）",
        validators=[Optional(), Regexp(r"^https?://\S+$", message="Webhook 地址应以 http:// 或 https:// 开头")],
    )
    dingtalk_secret = PasswordField("钉钉加签密钥（SEC 开头，留空则不修改）")
    email_to = StringField("接收邮箱", validators=[Optional(), Regexp(r"^[^@\s]+@[^@\s]+$", message="邮箱格式错误")])
    smtp_host = StringField("SMTP 服务器", validators=[Optional(), Length(max=255)])
    smtp_port = WholeField("SMTP 端口", required=True, default=465)
    smtp_user = StringField("SMTP 用户名", validators=[Optional(), Length(max=255)])
    smtp_password = PasswordField("SMTP 密码（留空则不修改）")
    smtp_ssl = BooleanField("使用 SSL", default=True)
    sync_failure_alert_after = WholeField("同步连续失败几次后告警", required=True, default=3)
    low_stock_threshold = WholeField("库存预警默认阈值")  # blank: the deployment default

    def validate_webhook_url(self, field):
        _check_address(lambda: check_url(field.data, "Webhook 地址"))

    def validate_smtp_host(self, field):
        _check_address(lambda: check_host(field.data, "SMTP 服务器"))


def _check_address(check):
    try:
        check()
    except AddressRefused as exc:
        raise ValidationError(str(exc)) from None
