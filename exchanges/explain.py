"""What a connection's status means, in plain words, and the one thing to do about it.

HTX reports most failures as the same ``api-signature-not-valid`` code, so the text depends on
the decoded error kind first and on the status second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from exchanges.venues.htx.errors import ErrorKind

from .models import Status

# "Expires in N days" shows once a key without IP binding has this many days left or fewer.
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str
    cause: str
    fix: str
    tone: str  # ok, pending, warn, error: drives the badge colour


_BY_KIND: dict[str, Explanation] = {
    ErrorKind.INVALID_ACCESS_KEY: Explanation(
        "HTX does not know this API Key",
        "HTX answered that the API Key is incorrect: it was mistyped, cut short, deleted on "
        "HTX, or the two keys were pasted into each other's fields.",
        "Copy the Access Key again from HTX's API Management page and paste it into API Key, "
        "and the Secret Key into Secret Key.",
        "error",
    ),
    ErrorKind.INVALID_SIGNATURE: Explanation(
        "The Secret Key does not match this API Key",
        "HTX recognised the API Key but could not verify our signature with the Secret Key "
        "you gave: the Secret Key is wrong, truncated, or belongs to another key.",
        "HTX shows a Secret Key only once, when the key is created. If you no longer have it, "
        "create a new key on HTX and connect that one.",
        "error",
    ),
    ErrorKind.LOGIN_REQUIRED: Explanation(
        "HTX refused the key pair",
        "HTX answered that the request was not authenticated (the key and account do not match).",
        "Check that both keys come from the same HTX API key, then connect again.",
        "error",
    ),
    ErrorKind.IP_NOT_ALLOWED: Explanation(
        "This key only works from other IP addresses",
        "The key is bound to a list of IP addresses on HTX, and our servers are not on it.",
        "On HTX, edit the key and either add this dashboard's IP addresses or clear the list.",
        "error",
    ),
    ErrorKind.KEY_EXPIRED: Explanation(
        "This key has expired",
        "HTX deactivates keys that are not bound to an IP address after 90 days.",
        "Create a new API key on HTX (Read-Only and Trade on, Withdraw off) and connect it.",
        "error",
    ),
    ErrorKind.NO_PERMISSION: Explanation(
        "The key is missing a permission",
        "HTX answered that this key may not read account data.",
        "On HTX, edit the key: turn Read-Only and Trade on, and leave Withdraw off.",
        "error",
    ),
    ErrorKind.FORBIDDEN: Explanation(
        "HTX would not tell us what this key may do",
        "HTX refused to show this key's permissions. This happens with sub-user keys, which "
        "this dashboard cannot check yet.",
        "Create the key on your main HTX account instead of a sub-user.",
        "error",
    ),
    ErrorKind.INVALID_TIMESTAMP: Explanation(
        "HTX rejected the request time",
        "HTX refused the request's time stamp even after we corrected for the clock difference.",
        "Nothing: we retry automatically.",
        "warn",
    ),
    ErrorKind.RATE_LIMITED: Explanation(
        "HTX asked us to slow down",
        "HTX is rate-limiting requests for this account right now.",
        "Nothing: we retry automatically in a moment.",
        "warn",
    ),
    ErrorKind.MAINTENANCE: Explanation(
        "HTX is under maintenance",
        "HTX's API is down for maintenance.",
        "Nothing: we retry automatically until HTX is back.",
        "warn",
    ),
    ErrorKind.UNAVAILABLE: Explanation(
        "HTX could not be reached",
        "HTX did not answer, or answered with a server error.",
        "Nothing: your key is kept and we retry automatically with increasing pauses.",
        "warn",
    ),
    ErrorKind.UNKNOWN: Explanation(
        "HTX gave an unexpected answer",
        "HTX refused the request with an error we do not recognise (see the details).",
        "We retry automatically. If it persists, check the key on HTX's API Management page.",
        "warn",
    ),
}

_BY_STATUS: dict[str, Explanation] = {
    Status.VERIFYING: Explanation(
        "Verifying with HTX",
        "We are checking the key with HTX: identity, permissions and balances.",
        "Wait a few seconds.",
        "pending",
    ),
    Status.CONNECTED: Explanation(
        "Connected", "The key works and can read balances and trade, but not withdraw.", "", "ok"
    ),
    Status.WITHDRAW_ENABLED: Explanation(
        "Withdrawal permission is enabled: key refused",
        "This key can withdraw funds from your HTX account. We never keep a key that could "
        "move money out: it was deleted as soon as HTX told us.",
        "On HTX, create a key with Read-Only and Trade on and Withdraw off, and connect that one.",
        "error",
    ),
    Status.INCORRECT_PERMISSIONS: Explanation(
        "Incorrect permissions",
        "The key can read your account but cannot trade: Trade permission is off.",
        "On HTX, edit the key and turn Trade on (leave Withdraw off), then connect it again.",
        "error",
    ),
    Status.EXPIRED: _BY_KIND[ErrorKind.KEY_EXPIRED],
    Status.IP_NOT_ALLOWED: _BY_KIND[ErrorKind.IP_NOT_ALLOWED],
    Status.INVALID: _BY_KIND[ErrorKind.INVALID_SIGNATURE],
    Status.TEMPORARY: _BY_KIND[ErrorKind.UNAVAILABLE],
}

# Statuses decided from what HTX tells us about the key, not from an HTX error.
_STATUS_FIRST = {Status.VERIFYING, Status.CONNECTED, Status.WITHDRAW_ENABLED}


# HTX ends its IP refusal with the address it saw: "...Incorrect IP address [IP地址错误]:1.2.3.4".
_CALLER_IP = re.compile(r"IP[^:]*:\s*([0-9A-Fa-f.:]+)\s*$")


def explain(status: str, error_kind: str = "", detail: str = "") -> Explanation:
    if status in _STATUS_FIRST or error_kind not in _BY_KIND:
        return _BY_STATUS[status]
    explanation = _BY_KIND[error_kind]
    caller = _CALLER_IP.search(detail) if error_kind == ErrorKind.IP_NOT_ALLOWED else None
    if caller:
        explanation = replace(
            explanation,
            fix=(
                f"On HTX, edit the key and add {caller.group(1)} (the address HTX saw our request come "
                "from) to its IP list, or clear the list."
            ),
        )
    return explanation
