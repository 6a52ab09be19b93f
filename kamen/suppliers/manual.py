"""Spreadsheet / manual supplier (表格/手工货源): no API at all.

Its goods and stock arrive through imports, so this adapter only answers the
contract truthfully: nothing to list, stock unknown, no balance.
"""
from kamen.suppliers.base import ConnectionInfo, Level, Page, StockLevel, SupplierAdapter


class ManualAdapter(SupplierAdapter):
    kind = "manual"

    def list_products(self, cursor=None, updated_after=None):
        return Page(items=[])

    def get_stock(self, codes):
        return {code: StockLevel(Level.UNKNOWN) for code in codes}

    def balance(self):
        return None

    def test_connection(self):
        return ConnectionInfo(name=None, balance=None, message="表格/手工货源无需连接")
