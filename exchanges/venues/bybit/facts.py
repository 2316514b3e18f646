"""What Bybit says a key may do (E2, ``/v5/user/query-api``) as the kit's neutral ``KeyFacts``.

``readOnly`` (0 Read-Write, 1 Read-Only) decides write access whatever the permission arrays
say; the arrays are the sections ticked on Bybit's key page, grouped (``{"Spot": ["SpotTrade"],
"Wallet": ["AccountTransfer", "Withdraw"], ...}``). Withdraw ⇔ ``"Withdraw" in Wallet``.
``ips`` ``["*"]`` means no binding; unbound keys expire (``expiredAt``, ``deadlineDay``), bound
ones show ``deadlineDay -2`` and ``expiredAt 1970-01-01T00:00:00Z`` and never expire
(bybit-api.md §5 E2, §6).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from exchanges.venues.kit.types import Flag, KeyFacts

# (group, scope, danger, required): the permissions shown whether on or off, in Bybit's own
# words. ``danger``: money can move (out of the account, or between accounts and to others).
KNOWN_FLAGS: tuple[tuple[str, str, bool, bool], ...] = (
    ("Spot", "SpotTrade", False, True),
    ("Wallet", "Withdraw", True, False),
    ("Wallet", "AccountTransfer", True, False),
    ("Wallet", "SubMemberTransfer", True, False),
    ("ContractTrade", "Order", False, False),
    ("ContractTrade", "Position", False, False),
    ("Derivatives", "DerivativesTrade", False, False),
    ("Options", "OptionsTrade", False, False),
    ("Exchange", "ExchangeHistory", False, False),
    ("Earn", "Earn", False, False),
    ("FiatP2P", "FiatP2POrder", True, False),
    ("FiatP2P", "Advertising", True, False),
    ("FiatBitPay", "FaitPayOrder", True, False),  # sic: Bybit's spelling
    ("BitCard", "BitCard", True, False),
)
# Groups whose scopes move money off the trading account (P2P, Pay, card, fiat): any scope of
# theirs that is on, known or new, is shown as a danger.
MONEY_GROUPS = frozenset({"Wallet", "FiatP2P", "FiatBitPay", "FiatGlobalPay", "FiatConvertBroker", "BitCard"})
# Deprecated groups, always empty.
_IGNORED_GROUPS = frozenset({"NFT", "CopyTrading"})
READ_WRITE = "Read-Write"

_NEVER = datetime(1971, 1, 1, tzinfo=UTC)  # 1970-01-01T00:00:00Z (or anything that early): none


def permission_sets(data: dict[str, Any]) -> dict[str, list[str]]:
    """``permissions`` as {group: [scope, ...]}; unknown groups kept, odd values skipped."""
    raw = data.get("permissions") or {}
    if not isinstance(raw, dict):
        raise TypeError("permissions is not an object")
    groups: dict[str, list[str]] = {}
    for group, scopes in raw.items():
        if isinstance(scopes, list):
            groups[str(group)] = [str(scope) for scope in scopes if scope]
    return groups


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 UTC time (``2023-12-22T07:20:25Z``); None for empty or 1970 ("never")."""
    if not value or not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return None if moment < _NEVER else moment.astimezone(UTC)


def bound_ips(data: dict[str, Any]) -> tuple[str, ...]:
    ips = data.get("ips") or ()
    if isinstance(ips, str):
        ips = ips.split(",")
    return tuple(str(ip).strip() for ip in ips if str(ip).strip() and str(ip).strip() != "*")


def expiry(data: dict[str, Any], *, bound: bool, now: datetime) -> datetime | None:
    """The key's expiry: ``expiredAt``, else ``deadlineDay`` days from now; never for an
    IP-bound key, nor for a negative ``deadlineDay`` (-2: permanent)."""
    if bound:
        return None
    try:
        days = int(data["deadlineDay"]) if data.get("deadlineDay") not in (None, "") else None
    except (TypeError, ValueError):
        days = None
    if days is not None and days < 0:
        return None
    expires_at = parse_time(data.get("expiredAt"))
    if expires_at is None and days is not None:
        expires_at = now + timedelta(days=days)
    return expires_at


def facts_from_api_key(
    data: dict[str, Any], *, skew_ms: int = 0, now: datetime | None = None, site: str | None = None
) -> KeyFacts:
    """E2's ``result`` as ``KeyFacts``. ``now``: Bybit's time (ours corrected by the skew)."""
    if not isinstance(data, dict):
        raise TypeError("query-api result is not an object")
    now = now or datetime.now(UTC) + timedelta(milliseconds=skew_ms)
    groups = permission_sets(data)
    read_only = str(data.get("readOnly", 1)) != "0"
    ips = bound_ips(data)
    expires_at = expiry(data, bound=bool(ips), now=now)

    def on(group: str, scope: str) -> bool:
        return scope in groups.get(group, ())

    flags = [Flag(READ_WRITE, not read_only, required=True)]
    known = set()
    for group, scope, danger, required in KNOWN_FLAGS:
        known.add((group, scope))
        flags.append(Flag(f"{group}: {scope}", on(group, scope), danger, required))
    for group, scopes in groups.items():
        if group in _IGNORED_GROUPS:
            continue
        for scope in scopes:
            if (group, scope) not in known:
                danger = group in MONEY_GROUPS or "transfer" in scope.lower() or "withdraw" in scope.lower()
                flags.append(Flag(f"{group}: {scope}", True, danger))
    uid = data.get("userID")
    if uid in (None, "", 0, "0"):
        uid = data.get("userIDInt64")
    return KeyFacts(
        can_read=True,  # every key reads; E2 answering proves key, secret, clock and IP
        can_trade=not read_only and on("Spot", "SpotTrade"),
        can_withdraw=on("Wallet", "Withdraw"),
        account_uid=str(uid) if uid not in (None, "", 0, "0") else None,
        permissions=tuple(f"{g}: {s}" for g, scopes in groups.items() for s in scopes),
        flags=tuple(flags),
        ip_addresses=ips,
        ip_restricted=bool(ips),
        key_expires_at=expires_at,
        key_expired=expires_at is not None and expires_at <= now,
        skew_ms=skew_ms,
        site=site,
        summary=summary(data, groups, ips),
        context={"uta": data.get("uta"), "is_master": data.get("isMaster"), "type": data.get("type")},
    )


def summary(data: dict[str, Any], groups: dict[str, list[str]], ips: tuple[str, ...]) -> str:
    """Bybit's own words about the key, one line."""
    granted = "; ".join(f"{g}: {','.join(s)}" for g, s in groups.items() if s) or "none"
    parts = [
        f"readOnly={data.get('readOnly')}",
        f"permissions={granted}",
        f"ips={','.join(ips) if ips else '*'}",
    ]
    for field in ("expiredAt", "deadlineDay", "type", "uta", "isMaster"):
        if field in data:
            value = data[field]
            parts.append(f"{field}={str(value).lower() if isinstance(value, bool) else value}")
    if data.get("rsaPublicKey"):
        parts.append("rsa key")
    return ", ".join(parts).replace("\n", " ")
