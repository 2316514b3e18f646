from __future__ import annotations

from decimal import Decimal as D

from exchanges.valuation import price_in_usdt, value_lines
from exchanges.venues.htx.adapter import balance_read
from exchanges.venues.htx.types import Account, AccountBalance, BalanceLine


def value_balances(balances, prices):
    return value_lines(balance_read(balances, []), {k.upper(): v for k, v in prices.items()})


PRICES = {"BTCUSDT": D("60000"), "ETHUSDT": D("3000"), "XYZBTC": D("0.0001"), "ABCETH": D("0.01")}


def _balance(kind: str, *lines: tuple[str, str, str]) -> AccountBalance:
    return AccountBalance(
        Account(id=1, type=kind, state="working"), tuple(BalanceLine(c, t, D(b)) for c, t, b in lines)
    )


def test_usdt_is_worth_one():
    assert price_in_usdt("usdt", PRICES) == D(1)


def test_a_coin_without_a_usdt_pair_is_valued_through_btc_then_eth():
    assert price_in_usdt("xyz", PRICES) == D("6.0000")
    assert price_in_usdt("abc", PRICES) == D("30.00")


def test_a_coin_with_no_route_is_unpriced():
    assert price_in_usdt("nope", PRICES) is None


def test_available_and_in_orders_are_kept_per_account_and_summed_exactly():
    valuation = value_balances(
        [
            _balance(
                "spot",
                ("usdt", "trade", "91.850043797676510303"),
                ("usdt", "frozen", "5.160000000000000015"),
                ("btc", "trade", "0.5"),
                ("nope", "trade", "3"),
            ),
            _balance("otc", ("usdt", "trade", "1"), ("eth", "frozen", "0")),
        ],
        PRICES,
    )
    usdt = next(h for h in valuation.holdings if (h.account_type, h.currency) == ("spot", "usdt"))
    assert usdt.available == D("91.850043797676510303")
    assert usdt.in_orders == D("5.160000000000000015")
    assert usdt.total == D("97.010043797676510318")
    assert valuation.total_usdt == D("98.010043797676510318") + D("30000")
    assert valuation.unpriced == ("nope",)
    assert valuation.account_types == ("spot", "otc")
    # Zero balances are not holdings.
    assert "eth" not in {h.currency for h in valuation.holdings}
    assert valuation.total_btc == valuation.total_usdt / D("60000")


def test_a_margin_account_is_valued_net_of_loans_and_interest():
    valuation = value_balances(
        [
            _balance(
                "margin",
                ("btc", "trade", "1"),
                ("btc", "loan", "-0.5"),
                ("btc", "interest", "-0.01"),
                ("btc", "loan-available", "3"),
            )
        ],
        PRICES,
    )
    (holding,) = valuation.holdings
    assert holding.total == D("1") and holding.debt == D("-0.51")
    assert valuation.total_usdt == D("0.49") * D("60000")
    assert [(o.type, o.balance) for o in valuation.other_lines] == [("loan-available", D("3"))]


def test_unknown_line_types_are_kept_not_crashed_on():
    valuation = value_balances([_balance("spot", ("usdt", "trade", "1"), ("usdt", "brand-new", "5"))], PRICES)
    assert valuation.total_usdt == D("1")
    assert valuation.other_lines[0].type == "brand-new"


def test_a_usdt_pegged_coin_is_valued_at_its_market_price():
    assert price_in_usdt("usdc", {"USDCUSDT": D("0.9993")}) == D("0.9993")
