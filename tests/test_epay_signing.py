"""易支付 V1 signature, against vectors worked out by hand from the wire rules."""
import hashlib

from kamen.payments import epay


def test_signing_string_drops_sign_fields_and_empty_values_and_sorts():
    params = {"type": "alipay", "pid": "1001", "sign": "x", "sign_type": "MD5", "param": "", "money": "1.00"}
    assert epay.signing_string(params) == "money=1.00&pid=1001&type=alipay"


def test_sign_is_md5_of_string_plus_key_with_no_separator():
    params = {"pid": "1001", "out_trade_no": "K20261201A", "money": "10.00", "name": "Q币 10元"}
    text = "money=10.00&name=Q币 10元&out_trade_no=K20261201A&pid=1001" + "k3y"
    assert epay.sign(params, "k3y") == hashlib.md5(text.encode("utf-8")).hexdigest()


def test_verify_accepts_the_right_sign_and_refuses_tampering():
    sent = epay.signed({"pid": "1001", "money": "10.00", "out_trade_no": "A1", "param": ""}, "k3y")
    assert sent["sign_type"] == "MD5" and "param" not in sent
    assert epay.verify(sent, "k3y")
    assert epay.verify({**sent, "sign": sent["sign"].upper()}, "k3y")  # case of the hex is not meaningful
    assert not epay.verify({**sent, "money": "9.99"}, "k3y")
    assert not epay.verify(sent, "other-key")
    assert not epay.verify({k: v for k, v in sent.items() if k != "sign"}, "k3y")
