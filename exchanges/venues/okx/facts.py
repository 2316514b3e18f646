"""What OKX says a key may do (E2, ``GET /api/v5/account/config``) as the kit's ``KeyFacts``.

E2 is the only endpoint showing a key's permissions, it has no side effect, and a success
proves key, secret, passphrase, site, environment and IP at once (okx-api.md §4, §6).
"""

from __future__ import annotations

from typing import Any

from exchanges.venues.kit.types import Flag, KeyFacts

# OKX deletes keys with Trade or Withdraw and no IP binding after this many days without a
# signed call; demo-trading keys never expire (§6).
IDLE_DELETION_DAYS = 14

# E2 ``perm`` values, as OKX's key page names the permissions: (API word, label, danger,
# required by this dashboard).
PERMISSIONS: tuple[tuple[str, str, bool, bool], ...] = (
    ("read_only", "Read", False, True),
    ("trade", "Trade", False, True),
    ("withdraw", "Withdraw", True, False),
)

# E2 fields for the one-line summary, in this order: what a support person needs to see.
_SUMMARY_FIELDS = ("perm", "ip", "uid", "mainUid", "type", "acctLv", "label")


def _split(value: Any) -> tuple[str, ...]:
    return tuple(part.strip() for part in str(value or "").split(",") if part.strip())


def facts_from_config(
    data: Any, *, skew_ms: int = 0, site: str | None = None, demo: bool = False
) -> KeyFacts:
    """E2's answer (``data``, a list of one object) as ``KeyFacts``. ``perm`` is a set in no
    fixed order; ``ip`` is empty when the key is not bound to addresses."""
    config = data[0] if isinstance(data, list) else data
    if not isinstance(config, dict):
        raise TypeError("account config answer is not an object")
    perm = _split(config.get("perm"))
    granted = set(perm)
    ips = _split(config.get("ip"))
    can_trade, can_withdraw = "trade" in granted, "withdraw" in granted
    uid = str(config.get("uid") or "") or None
    return KeyFacts(
        can_read="read_only" in granted,
        can_trade=can_trade,
        can_withdraw=can_withdraw,
        account_uid=uid,
        permissions=perm,
        flags=tuple(
            Flag(label, word in granted, danger=danger, required=required)
            for word, label, danger, required in PERMISSIONS
        ),
        ip_addresses=ips,
        ip_restricted=bool(ips),
        idle_deletion_days=(
            IDLE_DELETION_DAYS if (can_trade or can_withdraw) and not ips and not demo else None
        ),
        site=site,
        skew_ms=skew_ms,
        summary=summary(config),
        context={
            "acctLv": str(config.get("acctLv") or ""),
            "sub_account": bool(uid and config.get("mainUid") and str(config.get("mainUid")) != uid),
        },
    )


def summary(config: dict[str, Any]) -> str:
    """One line of OKX's own answer (no credential is in E2)."""
    parts = []
    for name in _SUMMARY_FIELDS:
        if name in config:
            value = " ".join(str(config[name]).split())
            parts.append(f'{name}="{value}"' if name == "label" else f"{name}={value}")
    return ", ".join(parts)
