"""OKX's endpoints for the OKX sandbox (E1-E9 of shared/okx-api.md §4, plus the instruments and
currencies CCXT's load_markets reads and V6's set-leverage).

Part of ``exchanges.venues.okx.sandbox`` (import from there); split out to keep modules short.
``OkxEndpoints`` is a mixin of ``OkxSandbox``: each handler gets the request, its decoded query
parameters and (signed endpoints) the caller's key entry, after the sandbox has checked faults,
limits and the signature. Where no source says what OKX does, the choice is marked ``Choice:``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from exchanges.venues.kit.sandbox import SandboxRequest, SandboxResponse
from exchanges.venues.okx.sandbox_auth import (
    MSG_CONTENT_TYPE,
    MSG_EMPTY_PARAM,
    MSG_INSTRUMENT,
    MSG_JSON,
    MSG_PARAM,
    SITES,
    failure,
    ok,
    site_of,
)
from exchanges.venues.okx.sandbox_model import (
    ZERO,
    PriceBook,
    config_row,
    currency_rows,
    dec,
    funding_row,
    instrument_row,
    savings_row,
    text,
    ticker_row,
    trading_detail,
)

Entry = dict[str, Any]
Values = Mapping[str, str]

INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
MAX_CCYS = 20  # §4 E3/E4: "up to 20 comma-separated"
# E6's units (§4 E6). Choice: the sandbox values in those it can route: USDT, USD (= USDT, as
# OKX's own eqUsd does), BTC, and any with a pair to USDT on the site (EUR on the EEA site).
VALUATION_DEFAULT = "BTC"


def _empty(name: str) -> SandboxResponse:
    return failure("50014", MSG_EMPTY_PARAM.format(name), 400)


def _ccys(values: Values) -> list[str] | SandboxResponse | None:
    """The optional ``ccy`` list (``BTC,ETH``; CCXT sends ``BTC%2CETH``, decoded alike)."""
    raw = values.get("ccy")
    if raw is None or raw == "":
        return None
    wanted = [part.strip().upper() for part in raw.split(",") if part.strip()]
    if len(wanted) > MAX_CCYS:
        return failure("51000", MSG_PARAM.format("ccy"))
    return wanted


def _picked(lines: list[dict[str, Any]], wanted: list[str] | None) -> list[dict[str, Any]]:
    return [line for line in lines if wanted is None or str(line["ccy"]).upper() in wanted]


class OkxEndpoints:
    """Mixed into ``OkxSandbox``, whose ``tickers``, ``now_ms()``, ``wallet()`` and
    ``started_ms`` the handlers use."""

    tickers: list[dict[str, Any]]
    started_ms: int

    # -- the site's market --

    def site_rows(self, site: str) -> list[dict[str, Any]]:
        """The spot pairs one site lists (a ticker row's ``sites``, default every site: §1.2
        "public market data is reported to differ per region")."""
        return [row for row in list(self.tickers) if site in row.get("sites", SITES)]

    def prices(self, site: str) -> PriceBook:
        return PriceBook(self.site_rows(site))

    # -- public --

    def _time(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        return ok([{"ts": str(self.now_ms())}])  # E1

    def _system_status(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        return ok([])  # E9: no maintenance announced (the maintenance fault adds one)

    def maintenance_event(self, state: str | None) -> list[dict[str, Any]]:
        """E9 during the maintenance fault: one ongoing event of the unified account system."""
        if state not in (None, "", "ongoing"):
            return []
        now = self.now_ms()
        return [
            {
                "begin": str(now - 600_000),
                "end": str(now + 3_000_000),
                "env": "1",
                "href": "",
                "maintType": "1",
                "preOpenBegin": "",
                "push": "false",
                "scheDesc": "",
                "serviceType": "0",
                "state": "ongoing",
                "system": "unified",
                "title": "Trading account system upgrade",
            }
        ]

    def _tickers(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        inst_type = values.get("instType", "")
        if not inst_type:
            return _empty("instType")  # E7: 400 50014 (§4)
        if inst_type not in INST_TYPES or inst_type == "MARGIN":
            return failure("51000", MSG_PARAM.format("instType"))
        if inst_type != "SPOT":
            return ok([])  # Choice: the sandbox lists no derivatives
        now = self.now_ms()
        rows = self.site_rows(site_of(request.host))
        return ok([ticker_row(row, now) for row in rows if row.get("state", "live") == "live"])

    def _ticker(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        inst_id = values.get("instId", "")
        if not inst_id:
            return _empty("instId")
        for row in self.site_rows(site_of(request.host)):
            if row["instId"] == inst_id:
                return ok([ticker_row(row, self.now_ms())])
        return failure("51001", MSG_INSTRUMENT)  # E8 (§4)

    def _instruments(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        inst_type = values.get("instType", "")
        if not inst_type:
            return _empty("instType")
        if inst_type not in INST_TYPES:
            return failure("51000", MSG_PARAM.format("instType"))
        if inst_type not in ("SPOT", "MARGIN"):
            return ok([])  # Choice: no futures, swaps or options (CCXT asks for all four)
        rows = [
            instrument_row(row, number)
            for number, row in enumerate(self.site_rows(site_of(request.host)))
            if inst_type == "SPOT" or row.get("lever")
        ]
        if inst_type == "MARGIN":
            rows = [{**row, "instType": "MARGIN"} for row in rows]
        if values.get("instId"):
            rows = [row for row in rows if row["instId"] == values["instId"]]
        return ok(rows)

    # -- signed, Read --

    def _config(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        assert entry is not None
        return ok([config_row(entry)])  # E2

    def _trading(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        """E3: one object, account totals in USD and ``details[]`` per currency held."""
        assert entry is not None
        wanted = _ccys(values)
        if isinstance(wanted, SandboxResponse):
            return wanted
        book = self.prices(site_of(request.host))
        acct_lv = str(entry.get("acctLv", "1"))
        u_time = str(self.started_ms - 3_600_000)
        details, total = [], ZERO
        for line in _picked(self.wallet(entry, "trading"), wanted):
            avail, frozen = dec(line.get("availBal")), dec(line.get("frozenBal"))
            cash = dec(line.get("cashBal", avail + frozen))
            equity = dec(line.get("eq", cash))
            if cash == 0 and equity == 0:
                continue  # "not returned when cashBal and eq is both 0" (§4 E3)
            # Choice: USDT counts as USD in OKX's own valuation (§7: eqUsd is USD, not USDT).
            eq_usd = book.value(str(line["ccy"]), equity)
            total += eq_usd
            details.append(trading_detail(line, acct_lv, eq_usd, u_time))
        margin = acct_lv in ("3", "4")
        account = {
            "adjEq": text(total) if margin else "",
            "availEq": text(total) if margin else "",
            "borrowFroz": "0" if margin else "",
            "details": details,
            "imr": "0" if margin else "",
            "isoEq": "0",
            "mgnRatio": "",
            "mmr": "0" if margin else "",
            "notionalUsd": "0" if margin else "",
            "notionalUsdForBorrow": "0" if margin else "",
            "notionalUsdForFutures": "0" if margin else "",
            "notionalUsdForOption": "0" if margin else "",
            "notionalUsdForSwap": "0" if margin else "",
            "ordFroz": "0" if margin else "",
            "totalEq": text(total),
            "uTime": str(self.now_ms()),
            "upl": "0" if acct_lv != "1" else "",
        }
        return ok([account])

    def _funding(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        """E4: only currencies with a balance above 0 (§4 E4); an empty account is ``[]``."""
        assert entry is not None
        wanted = _ccys(values)
        if isinstance(wanted, SandboxResponse):
            return wanted
        rows = [funding_row(line) for line in _picked(self.wallet(entry, "funding"), wanted)]
        return ok([row for row in rows if dec(row["bal"]) > 0])

    def _savings(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        """E5: Simple Earn flexible holdings (§4 E5)."""
        assert entry is not None
        wanted = _ccys(values)
        if isinstance(wanted, SandboxResponse):
            return wanted
        rows = [savings_row(line) for line in _picked(self.wallet(entry, "savings"), wanted)]
        return ok([row for row in rows if dec(row["amt"]) > 0])

    def _valuation(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        """E6: each account family valued in ``ccy`` (default BTC) from the site's prices. Earn
        is savings plus ``otherEarn`` (staking and other Earn products, §4 E6)."""
        assert entry is not None
        unit = (values.get("ccy") or VALUATION_DEFAULT).upper()
        book = self.prices(site_of(request.host))
        unit_usdt = book.usdt(unit) or (Decimal(1) if unit == "USD" else None)
        if not unit_usdt:
            return failure("51000", MSG_PARAM.format("ccy"))
        places = 8 if unit == "BTC" else 2

        def worth(wallet: str, amount_field: str) -> Decimal:
            lines = self.wallet(entry, wallet)
            usdt = sum((book.value(str(line["ccy"]), _amount(line, amount_field)) for line in lines), ZERO)
            return (usdt / unit_usdt).quantize(Decimal(1).scaleb(-places))

        trading = worth("trading", "eq")
        funding = worth("funding", "bal")
        earn = worth("savings", "amt") + worth("otherEarn", "amt")
        details = {"classic": "0", "earn": text(earn), "funding": text(funding), "trading": text(trading)}
        total = text(trading + funding + earn)
        return ok([{"details": details, "totalBal": total, "ts": str(self.now_ms())}])

    def _currencies(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        """Every currency of the site's pairs and of the caller's wallets, one row per chain."""
        assert entry is not None
        wanted = _ccys(values)
        if isinstance(wanted, SandboxResponse):
            return wanted
        codes: set[str] = set()
        for row in self.site_rows(site_of(request.host)):
            codes.update(str(row["instId"]).split("-"))
        for wallet in ("trading", "funding", "savings"):
            codes.update(str(line["ccy"]) for line in self.wallet(entry, wallet))
        chosen = sorted(code for code in codes if wanted is None or code in wanted)
        return ok([row for code in chosen for row in currency_rows(code)])

    # -- signed, Trade --

    def _set_leverage(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        """V6 (§3): a JSON body ``{"instId","lever","mgnMode"}``; nothing is changed."""
        media = request.content_type.split(";", 1)[0].strip().lower()
        if request.has_body and media != "application/json":
            return failure("50006", MSG_CONTENT_TYPE, 400)  # §1.4
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return failure("50002", MSG_JSON, 400)
        if not isinstance(body, dict):
            return failure("50002", MSG_JSON, 400)
        for name in ("lever", "mgnMode"):
            if not body.get(name):
                return _empty(name)
        if body["mgnMode"] not in ("isolated", "cross"):
            return failure("51000", MSG_PARAM.format("mgnMode"))
        inst_id = str(body.get("instId", ""))
        if inst_id and inst_id not in {row["instId"] for row in self.site_rows(site_of(request.host))}:
            return failure("51001", MSG_INSTRUMENT)
        answer = {"lever": str(body["lever"]), "mgnMode": body["mgnMode"], "instId": inst_id, "posSide": ""}
        return ok([answer])


def _amount(line: Mapping[str, Any], field: str) -> Decimal:
    """A wallet line's total: E3 ``eq`` (default cashBal, availBal + frozenBal), E4 ``bal``
    (default availBal + frozenBal), E5 ``amt``."""
    if field in line:
        return dec(line[field])
    if field == "eq" and "cashBal" in line:
        return dec(line["cashBal"])
    return dec(line.get("availBal")) + dec(line.get("frozenBal"))
