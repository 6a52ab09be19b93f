"""The yardstick for bench/shop_bench.py: the least a Flask + SQLAlchemy list page costs.

A minimal model on kamen's ``products`` table and an inline template of about
the size of kamen's product grid, so the bench can say how close kamen's shop
pages come to the bare framework cost. Run as ``gunicorn bare_app:app`` from
this directory with DATABASE_URL (SQLAlchemy form) and BENCH_CATEGORY_IDS
(comma-separated ids whose listed products the page shows, 30 at most).
"""
import os
from decimal import Decimal

import sqlalchemy as sa
from flask import Flask, render_template
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from kamen.models.types import Money

db = SQLAlchemy()


class Product(db.Model):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    category_id: Mapped[int]
    tier_label: Mapped[str | None]
    sale_price: Mapped[Decimal] = mapped_column(Money)  # cents on SQLite, as kamen stores them
    stock: Mapped[int]
    is_listed: Mapped[bool]


PAGE = """<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>商品列表</title><link rel="stylesheet" href="/static/css/shop.css"></head>
<body>
<header class="top"><div class="wrap top-row"><a class="logo" href="/">bare 卡盟</a>
<form class="search" action="/search" method="get" role="search">
<input type="search" name="q" placeholder="搜索商品名称或编码" aria-label="搜索商品"><button type="submit">搜索</button></form></div></header>
<main class="wrap">
<h1>商品列表</h1>
<ul class="grid">
{% for p in products %}
  <li class="card">
    <a href="/p/{{ p.id }}">
      <span class="name">{{ p.name }}</span>
      {% if p.tier_label %}<span class="tier">{{ p.tier_label }}</span>{% endif %}
      <span class="row"><span class="price">¥{{ "%.2f"|format(p.sale_price) }}</span></span>
      <span class="row"><span class="badge badge-{{ 'in' if p.stock > 10 else 'low' if p.stock > 0 else 'out' }}">{{ '有货' if p.stock > 10 else '库存紧张' if p.stock > 0 else '缺货' }}</span></span>
    </a>
  </li>
{% endfor %}
</ul>
</main>
<footer class="wrap foot">© bare 卡盟 · 虚拟商品自动发货，7×24 小时服务</footer>
</body>
</html>
"""

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
db.init_app(app)
CATEGORY_IDS = [int(i) for i in os.environ["BENCH_CATEGORY_IDS"].split(",")]
# Compiled once, as Flask's loader cache does for kamen's template files
# (render_template_string would recompile on every request).
TEMPLATE = app.jinja_env.from_string(PAGE)


@app.get("/")
def product_list():
    products = db.session.scalars(
        sa.select(Product)
        .where(Product.is_listed.is_(True), Product.category_id.in_(CATEGORY_IDS))
        .order_by(Product.id)
        .limit(30)
    ).all()
    return render_template(TEMPLATE, products=products)
