"""The holdings CSV (issue 13, point 8): the exact bytes of a known snapshot, and no formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from exchanges.models import BalanceLine, BalanceSnapshot, ExchangeConnection, Status

pytestmark = pytest.mark.django_db

READ_AT = datetime(2026, 12, 1, 23, 41, 5, 123456, tzinfo=UTC)
BTC_PRICE = Decimal("20587.56")


def _snapshot(owner, label: str = "Main account", lines=None) -> ExchangeConnection:
    """A connection whose last read is known to the digit, as the valuation stores it: amounts
    with HTX's 18 decimals, totals whose BTC share carries 28-digit division noise."""
    lines = lines or [
        # account, currency, available, in orders, debt, price, value
        ("spot", "btc", "0.017300000000000000", "0E-18", "0", BTC_PRICE, Decimal("356.164788000000000000")),
        ("spot", "usdt", "100.050000000000000000", "20.5", "0", Decimal(1), Decimal("120.55")),
        ("margin", "eth", "1.250000000000000000", "0", "-0.5", Decimal("3405.4"), Decimal("2554.05")),
        ("spot", "xyz", "12345.678900000000000001", "0", "0", None, None),
    ]
    total = sum((line[6] for line in lines if line[6] is not None), Decimal(0))
    connection = ExchangeConnection.objects.create(
        owner=owner, exchange="htx", label=label, status=Status.CONNECTED, established=True
    )
    snapshot = BalanceSnapshot.objects.create(
        connection=connection, total_usdt=total, total_btc=total / BTC_PRICE
    )
    BalanceSnapshot.objects.filter(pk=snapshot.pk).update(taken_at=READ_AT)
    BalanceLine.objects.bulk_create(
        BalanceLine(
            snapshot=snapshot,
            account_type=account,
            currency=currency,
            available=Decimal(available),
            in_orders=Decimal(in_orders),
            debt=Decimal(debt),
            total=Decimal(available) + Decimal(in_orders),
            price_usdt=price,
            value_usdt=value,
        )
        for account, currency, available, in_orders, debt, price, value in lines
    )
    ExchangeConnection.objects.filter(pk=connection.pk).update(latest_snapshot=snapshot, total_usdt=total)
    return connection


def _export(client, connection):
    return client.get(reverse("exchanges:connection-holdings-csv", args=[connection.pk]))


def test_the_csv_is_exactly_what_the_venue_reported_beside_rounded_values(client, alice):
    connection = _snapshot(alice)
    # The BTC value of the BTC line, computed the way the page does, has division noise.
    snapshot = connection.snapshots.get()
    noisy = Decimal("356.164788") * (snapshot.total_btc / snapshot.total_usdt)
    assert str(noisy).startswith("0.017299999999999999999")
    client.force_login(alice)
    response = _export(client, connection)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="htx-{connection.pk}-holdings-20261201-2341Z.csv"'
    )
    # Sorted by asset; amounts as reported (trailing zeros dropped, nothing rounded, the
    # 18th decimal of XYZ kept); USDT values to the cent, BTC values to the satoshi.
    assert response.content == (
        b'"label","exchange","read_at_utc","account","asset","available","in_orders","debt","total",'
        b'"price_usdt","value_usdt","value_btc"\r\n'
        b'"Main account","HTX","2026-12-01T23:41:05Z","spot","BTC","0.0173","0","0","0.0173",'
        b'"20587.56","356.16","0.01730000"\r\n'
        b'"Main account","HTX","2026-12-01T23:41:05Z","margin","ETH","1.25","0","-0.5","1.25",'
        b'"3405.40","2554.05","0.12405793"\r\n'
        b'"Main account","HTX","2026-12-01T23:41:05Z","spot","USDT","100.05","20.5","0","120.55",'
        b'"1.00","120.55","0.00585548"\r\n'
        b'"Main account","HTX","2026-12-01T23:41:05Z","spot","XYZ","12345.678900000000000001","0","0",'
        b'"12345.678900000000000001","","",""\r\n'
    )


def test_an_empty_connection_exports_the_header_only(client, alice):
    connection = ExchangeConnection.objects.create(owner=alice, exchange="htx", status=Status.VERIFYING)
    client.force_login(alice)
    response = _export(client, connection)
    assert response.content.count(b"\r\n") == 1 and response.content.startswith(b'"label","exchange"')
    assert "holdings-empty.csv" in response["Content-Disposition"]


@pytest.mark.parametrize(
    "label", ['=HYPERLINK("http://evil.example","x")', "+1+2", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"]
)
def test_a_label_a_spreadsheet_would_run_stays_text(client, alice, label):
    connection = _snapshot(alice, label=label)
    client.force_login(alice)
    rows = list(csv.reader(io.StringIO(_export(client, connection).content.decode(), newline="")))
    assert len(rows) == 5 and all(len(row) == 12 for row in rows)  # still a valid CSV
    assert {row[0] for row in rows[1:]} == {"'" + label}
    # Amounts are never escaped: a debt stays the number -0.5.
    assert [row[7] for row in rows[1:]] == ["0", "-0.5", "0", "0"]


def test_price_keeps_eight_significant_digits_by_magnitude():
    from exchanges.export import price

    assert price(Decimal("97123.456789")) == "97123.457"
    assert price(Decimal("0.000012345678912")) == "0.000012345679"
    assert price(Decimal("1")) == "1.00"
    assert price(Decimal("0.99999999999")) == "1.00"
    assert price(Decimal("123456789.987")) == "123456790.00"
    assert price(Decimal(1) / Decimal(3)) == "0.33333333"
