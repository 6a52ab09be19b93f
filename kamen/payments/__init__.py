"""Payment gateways: the protocols kamen speaks as a merchant (易支付 V1 first)."""
