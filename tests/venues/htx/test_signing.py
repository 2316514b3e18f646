"""Signature Version 2 against every vector in shared/htx-api.md §3 (ccxt 4.5.90 and HTX's SDK)."""

from __future__ import annotations

import pytest

from exchanges.venues.htx import signing

KEY = "abcd1234-ef567890-12345678-9abcd"
SECRET = "00000000-11111111-22222222-33333"
TS = "2024-01-02T03:04:05"
AUTH = (
    "AccessKeyId=abcd1234-ef567890-12345678-9abcd&SignatureMethod=HmacSHA256&SignatureVersion=2"
    "&Timestamp=2024-01-02T03%3A04%3A05"
)

VECTORS = [
    pytest.param(
        "e2xxxxxx-99xxxxxx-84xxxxxx-7xxxx",
        "XXXXXXXXXX",
        "2017-05-11T15:19:30",
        "GET",
        "api.huobi.pro",
        "/v1/order/orders",
        {"order-id": "1234567890"},
        "GET\napi.huobi.pro\n/v1/order/orders\nAccessKeyId=e2xxxxxx-99xxxxxx-84xxxxxx-7xxxx&SignatureMethod=HmacSHA256"
        "&SignatureVersion=2&Timestamp=2017-05-11T15%3A19%3A30&order-id=1234567890",
        "2ZQ7/roKBjdnAv8z5DymwzgSaOPyPgJl0BIlq9fa94w=",
        id="V0-docs-example",
    ),
    pytest.param(
        KEY,
        SECRET,
        TS,
        "GET",
        "api.huobi.pro",
        "/v1/account/accounts",
        {},
        f"GET\napi.huobi.pro\n/v1/account/accounts\n{AUTH}",
        "KQhQB1STr5JGxRN5wdxNHNLKYoSi2MBaHHBRzfVXe3o=",
        id="V1-accounts",
    ),
    pytest.param(
        KEY,
        SECRET,
        TS,
        "GET",
        "api.huobi.pro",
        "/v1/account/accounts/12345678/balance",
        {},
        f"GET\napi.huobi.pro\n/v1/account/accounts/12345678/balance\n{AUTH}",
        "TTtz+rsKKyHf+lGeSPAcPolYvu2MzXCa5zyYMLEHZ0c=",
        id="V2-balance",
    ),
    pytest.param(
        KEY,
        SECRET,
        TS,
        "GET",
        "api.huobi.pro",
        "/v1/account/accounts/12345678/balance",
        {"account-id": "12345678"},
        f"GET\napi.huobi.pro\n/v1/account/accounts/12345678/balance\n{AUTH}&account-id=12345678",
        "GgC2fqB6bY+cxkBmLQvUSjxj/d+UXSLSBKnpsqVbnpc=",
        id="V2-sdk-style",
    ),
    pytest.param(
        KEY,
        SECRET,
        TS,
        "GET",
        "api.huobi.pro",
        "/v2/user/api-key",
        {"uid": "63628520", "accessKey": KEY},
        f"GET\napi.huobi.pro\n/v2/user/api-key\n{AUTH}&accessKey={KEY}&uid=63628520",
        "cp9iZg+bk76ZuKw2ds2vT2ByfshFjrYTLQKoJZQFoeA=",
        id="V3-case-sensitive-sort",
    ),
    pytest.param(
        KEY,
        SECRET,
        TS,
        "GET",
        "api.huobi.pro",
        "/v2/account/asset-valuation",
        {"accountType": "spot", "valuationCurrency": "USD", "note": "a b,c/d:e"},
        f"GET\napi.huobi.pro\n/v2/account/asset-valuation\n{AUTH}&accountType=spot"
        "&note=a%20b%2Cc%2Fd%3Ae&valuationCurrency=USD",
        "lDAkzy6u+xuMjowqx63dv9mtte3qvMM54Rsx63NZHY0=",
        id="V4-escaping",
    ),
    pytest.param(
        KEY,
        SECRET,
        TS,
        "POST",
        "api.huobi.pro",
        "/v1/order/orders/59378/submitcancel",
        {},
        f"POST\napi.huobi.pro\n/v1/order/orders/59378/submitcancel\n{AUTH}",
        "MBi7lq+5O0TM/hl1zv8hwukzwiS2M4EOvYzuTNC4dpI=",
        id="V5-post-body-unsigned",
    ),
    pytest.param(
        KEY,
        SECRET,
        TS,
        "GET",
        "api.huobi.pro",
        "/v2/user/uid",
        {},
        f"GET\napi.huobi.pro\n/v2/user/uid\n{AUTH}",
        "P/IY+qBjgeXbAhVg0gJHb6AEj5vJSKeHTQHy0yj0N3Q=",
        id="V6-uid",
    ),
    pytest.param(
        KEY,
        SECRET,
        TS,
        "GET",
        "api-aws.huobi.pro",
        "/v1/account/accounts",
        {},
        f"GET\napi-aws.huobi.pro\n/v1/account/accounts\n{AUTH}",
        "rq5r684P1+ECyffOb1ZcH7ZpdxCG+Ka+X/NncmtHBLM=",
        id="V7-aws-host",
    ),
]


@pytest.mark.parametrize(
    ("key", "secret", "ts", "method", "host", "path", "params", "presign", "expected"), VECTORS
)
def test_it_matches_the_published_vector(key, secret, ts, method, host, path, params, presign, expected):
    payload = signing.presign_string(method, host, path, {**params, **signing.auth_params(key, ts)})
    assert payload == presign
    assert signing.signature(secret, payload) == expected


def test_it_sends_exactly_the_signed_query_with_the_signature_appended():
    query = signing.signed_query(
        method="GET",
        host="api.huobi.pro",
        path="/v1/account/accounts",
        access_key=KEY,
        secret=SECRET,
        timestamp=TS,
    )
    assert query == f"{AUTH}&Signature=KQhQB1STr5JGxRN5wdxNHNLKYoSi2MBaHHBRzfVXe3o%3D"


def test_it_encodes_with_upper_case_hex_and_keeps_only_unreserved_characters():
    assert signing.encode("a b,c/d:e!*()'é~-_.") == "a%20b%2Cc%2Fd%3Ae%21%2A%28%29%27%C3%A9~-_."


def test_it_formats_time_in_utc_without_zone_or_fraction():
    from datetime import datetime, timedelta, timezone

    moment = datetime(2024, 1, 2, 5, 4, 5, 900000, tzinfo=timezone(timedelta(hours=2)))
    assert signing.htx_timestamp(moment) == "2024-01-02T03:04:05"
