"""Zero-manual imports: the CLI and the token-authenticated HTTP endpoint."""
import io
import json
from decimal import Decimal

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Product
from kamen.services.api_tokens import create_token
from tests.import_files import messy_csv

GOOD = "商品编码,商品名称,供货价,库存\nA1,商品一,10.00,5\nA2,商品二,20.00,6\n".encode()


def test_cli_validates_commits_and_reports(runner, tmp_path):
    path = tmp_path / "价格表.csv"
    path.write_bytes(messy_csv())
    result = runner.invoke(args=["import-products", str(path)])
    summary = json.loads(result.output)
    assert result.exit_code == 0 and summary["status"] == "ready"
    assert summary["totals"] == {"rows": 6, "created": 2, "updated": 0, "unchanged": 0, "skipped": 1, "failed": 3}
    assert {e["kind"] for e in summary["errors"]} == {"格式错误", "重复编码", "负库存"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 0

    report = tmp_path / "errors.csv"
    # The supplier's 5% markup would sell 腾讯Q币 10元 above its 面值: a warning holds the commit,
    # unless the price is capped at 面值.
    result = runner.invoke(args=["import-products", str(path), "--commit"])
    assert json.loads(result.output)["status"] == "ready" and json.loads(result.output)["warnings"] == 2
    result = runner.invoke(args=["import-products", str(path), "--commit", "--strict", "--report", str(report),
                                 "--price-basis", "cap_face"])
    assert result.exit_code == 1  # strict: rows had errors
    assert json.loads(result.output)["status"] == "committed"
    prices = dict(db.session.execute(sa.select(Product.code, Product.sale_price)).all())
    assert prices == {"QB10": Decimal("10.00"), "QB30": Decimal("30.00")}
    assert "错误原因" in report.read_bytes().decode("gbk")


def test_cli_explains_bad_input(runner, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = runner.invoke(args=["import-products", str(path)])
    assert result.exit_code != 0 and "文件是空的" in result.output
    good = tmp_path / "good.csv"
    good.write_bytes(GOOD)
    result = runner.invoke(args=["import-products", str(good), "--supplier", "nope"])
    assert result.exit_code != 0 and "没有代号为 nope 的货源" in result.output
    result = runner.invoke(args=["import-products", str(good), "--template", "不存在"])
    assert result.exit_code == 1
    assert "找不到名为“不存在”的映射模板" in json.loads(result.output)["message"]


def test_http_endpoint_needs_a_token_and_imports(client):
    url = "/api/import/v1/products"
    response = client.post(url, data={"file": (io.BytesIO(GOOD), "p.csv")}, csrf=False)
    assert response.status_code == 401 and "API 令牌无效" in response.get_json()["error"]
    _token, secret = create_token(db.session, "脚本")
    headers = {"Authorization": f"Bearer {secret}"}
    response = client.post(url, data={"file": (io.BytesIO(GOOD), "p.csv"), "commit": "1"}, headers=headers,
                           csrf=False, content_type="multipart/form-data")
    assert response.status_code == 202
    status = client.get(response.get_json()["status_url"], headers=headers).get_json()
    assert status["status"] == "committed" and status["totals"]["created"] == 2
    assert db.session.scalar(sa.select(Product.cost_price).filter_by(code="A2")) == Decimal("20.00")
    bad = client.post(url, data={"mode": "all"}, headers=headers, csrf=False)
    assert bad.status_code == 400


def test_admin_creates_and_revokes_tokens(auth, client):
    auth.login()
    page = client.post("/admin/settings/api-tokens", data={"name": "每日价格表"}).get_data(as_text=True)
    secret = page.split('class="secret-once">')[1].split("<")[0]
    assert secret.startswith("kmt_")
    assert secret not in client.get("/admin/settings/api-tokens").get_data(as_text=True)
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/import/v1/batches/1", headers=headers).status_code == 404
    client.post("/admin/settings/api-tokens/1/revoke")
    assert client.get("/api/import/v1/batches/1", headers=headers).status_code == 401
