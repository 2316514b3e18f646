"""What Binance says a key may do (E4, ``apiRestrictions``) as the kit's neutral ``KeyFacts``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from exchanges.venues.kit.types import Flag, KeyFacts

# E4's permission fields, as Binance's API Management page labels the checkboxes. ``danger``:
# money can move. Withdrawals take it out of the account (refused); Universal Transfer only
# moves it between the account's own wallets (shown as a warning).
PERMISSION_FLAGS: tuple[tuple[str, str, bool], ...] = (
    ("enableReading", "Enable Reading", False),  # required (see _REQUIRED)
    ("enableSpotAndMarginTrading", "Enable Spot & Margin Trading", False),  # required
    ("enableWithdrawals", "Enable Withdrawals", True),
    ("enableMargin", "Enable Margin Loan, Repay & Transfer", False),
    ("enableFutures", "Enable Futures", False),
    ("permitsUniversalTransfer", "Permits Universal Transfer", True),
    ("enableInternalTransfer", "Enable Internal Transfer", False),
    ("enableVanillaOptions", "Enable Vanilla Options", False),
    ("enablePortfolioMarginTrading", "Enable Portfolio Margin Trading", False),
)

# The permissions this dashboard needs on: reading, and spot trading.
_REQUIRED = frozenset({"enableReading", "enableSpotAndMarginTrading"})


def facts_from_restrictions(
    data: dict[str, Any], *, skew_ms: int = 0, now: datetime | None = None
) -> KeyFacts:
    """E4 as ``KeyFacts``. ``tradingAuthorityExpirationTime`` is present only when the trading
    right expires (keys without an IP restriction: 30 days). A date in the past means Binance
    has turned trading off (or is about to untick the box), so the key cannot trade; unless the
    box is ticked on a key that is now IP-restricted, whose trading never expires (a stale date)."""
    if not isinstance(data, dict):
        raise TypeError("apiRestrictions answer is not an object")
    # "In the past" by Binance's clock: ours corrected by the measured skew.
    now = now or datetime.now(UTC) + timedelta(milliseconds=skew_ms)
    expires_ms = data.get("tradingAuthorityExpirationTime")
    expires_at = datetime.fromtimestamp(int(expires_ms) / 1000, UTC) if expires_ms else None
    trading_on = data.get("enableSpotAndMarginTrading") is True
    restricted = data.get("ipRestrict") is True
    trading_expired = expires_at is not None and expires_at <= now and not (trading_on and restricted)
    flags = tuple(
        Flag(label, data.get(field) is True, danger, required=field in _REQUIRED)
        for field, label, danger in PERMISSION_FLAGS
    )
    return KeyFacts(
        can_read=data.get("enableReading") is True,
        can_trade=trading_on and not trading_expired,
        can_withdraw=data.get("enableWithdrawals") is True,
        permissions=tuple(k for k, v in data.items() if v is True and k.startswith(("enable", "permits"))),
        flags=flags,
        ip_restricted=bool(data.get("ipRestrict")) if "ipRestrict" in data else None,
        trading_expires_at=expires_at,
        trading_expired=trading_expired,
        skew_ms=skew_ms,
        summary=_summary(data, expires_at),
    )


def _summary(data: dict[str, Any], expires_at: datetime | None) -> str:
    parts = [f"{k}={'true' if v else 'false'}" for k, v in data.items() if isinstance(v, bool)]
    if expires_at is not None:
        parts.append(f"tradingAuthorityExpirationTime={expires_at:%Y-%m-%dT%H:%M:%SZ}")
    return ", ".join(parts)
