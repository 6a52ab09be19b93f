import pytest

from kamen.models import SupplierKind
from kamen.suppliers import adapter_for
from kamen.suppliers.acgfaka import AcgFakaAdapter
from kamen.suppliers.base import Level, SupplierError
from kamen.suppliers.fulu import FuluAdapter
from kamen.suppliers.kamen_upstream import KamenUpstreamAdapter
from kamen.suppliers.manual import ManualAdapter

CONFIG = {"base_url": "https://up.example.com/", "app_key": "k", "app_id": "7", "secret": "s", "timeout": 3}


@pytest.mark.parametrize("kind, cls", [
    (SupplierKind.FULU, FuluAdapter),
    (SupplierKind.ACGFAKA, AcgFakaAdapter),
    (SupplierKind.KAMEN, KamenUpstreamAdapter),
    (SupplierKind.MANUAL, ManualAdapter),
    ("fulu", FuluAdapter),
])
def test_every_supplier_kind_has_an_adapter(kind, cls):
    adapter = adapter_for(kind, CONFIG)
    assert isinstance(adapter, cls)


def test_timeout_and_base_url_are_used():
    adapter = adapter_for("fulu", {**CONFIG, "base_url": "https://up.example.com/api/getway"})
    assert adapter.http.base_url == "https://up.example.com"
    assert adapter.http.timeout == 3


def test_missing_settings_are_named_in_chinese():
    with pytest.raises(SupplierError, match="缺少货源地址、密钥"):
        adapter_for("kamen", {"app_id": "7"})


def test_unknown_kind():
    with pytest.raises(SupplierError, match="不支持"):
        adapter_for("ftp", CONFIG)


def test_manual_supplier_has_no_api():
    manual = adapter_for("manual", {})
    assert manual.list_products().items == []
    assert manual.get_stock(["A"])["A"].level == Level.UNKNOWN
    assert manual.balance() is None
    assert manual.test_connection().message == "表格/手工货源无需连接"

