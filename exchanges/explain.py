"""What a connection's status means, in plain words, and the one thing to do about it.

The product's own texts speak of "the exchange" by its name; each venue may say it better in its
own words (``Venue.texts``, keyed by error kind or status), e.g. which boxes to tick on its key
page. Exchanges report many failures through vague codes, so the text depends on the decoded
error kind first and on the status second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

from .egress import mismatch_note
from .models import Status
from .venues.kit.errors import ErrorKind
from .venues.kit.venue import Text, Venue

# "Expires in N days" shows once a key (or its trading right) has this many days left or fewer.
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str
    cause: str
    fix: str
    tone: str  # ok, pending, warn, error: drives the badge colour


_ERROR, _WARN = "error", "warn"

# Our own verdicts, told only after the venue accepted the key (so only to whoever holds its
# secret): the key is already connected here (keycheck). Stored as the connection's error kind.
KEY_IN_YOUR_ACCOUNT = "key_in_your_account"
KEY_IN_ANOTHER_ACCOUNT = "key_in_another_account"

# The product's words, with "{venue}" for the exchange's name.
_BY_KIND: dict[str, tuple[Text, str]] = {
    ErrorKind.INVALID_ACCESS_KEY: (
        Text(
            "{venue} does not know this API Key",
            "{venue} answered that the API Key is incorrect: it was mistyped, cut short, deleted on "
            "{venue}, or the two keys were pasted into each other's fields.",
            "Copy the API Key again from {venue}'s API Management page and paste it into API Key, "
            "and the Secret Key into Secret Key.",
        ),
        _ERROR,
    ),
    ErrorKind.INVALID_SIGNATURE: (
        Text(
            "The Secret Key does not match this API Key",
            "{venue} recognised the API Key but could not verify our signature with the Secret Key "
            "you gave: the Secret Key is wrong, truncated, or belongs to another key.",
            "{venue} shows a Secret Key only once, when the key is created. If you no longer have it, "
            "create a new key on {venue} and connect that one.",
        ),
        _ERROR,
    ),
    ErrorKind.LOGIN_REQUIRED: (
        Text(
            "{venue} refused the key pair",
            "{venue} answered that the request was not authenticated.",
            "Check that both keys come from the same {venue} API key, then connect again.",
        ),
        _ERROR,
    ),
    ErrorKind.INVALID_PASSPHRASE: (
        Text(
            "The passphrase does not match this API Key",
            "{venue} knows the API Key, but the passphrase is not the one chosen when the key was "
            "created on {venue}.",
            "Type the passphrase again (it is case-sensitive). If you no longer know it, create a new "
            "key on {venue} and connect that one.",
        ),
        _ERROR,
    ),
    ErrorKind.WRONG_ENVIRONMENT: (
        Text(
            "This key belongs to {venue}'s demo trading",
            "Demo-trading keys work only with {venue}'s simulated trading, not with your real account "
            "(or the other way round).",
            "On {venue}, create the key in your live account (not in demo trading) and connect that one.",
        ),
        _ERROR,
    ),
    ErrorKind.KEY_IP_OR_PERMISSION: (
        Text(
            "{venue} refused the key",
            "{venue} gives one answer for three different problems: the API Key is unknown "
            "(mistyped, deleted, or the keys were swapped), this server's IP address is not on the "
            "key's list of allowed addresses, or the key lacks a permission.",
            "Check the three in that order on {venue}'s API Management page, then connect again.",
            fix_with_ip="Check the three in that order on {venue}'s API Management page: {venue} saw "
            "our request come from {ip}, so that address must be on the key's list if it has one.",
        ),
        _ERROR,
    ),
    ErrorKind.IP_NOT_ALLOWED: (
        Text(
            "This key only works from other IP addresses",
            "The key is bound to a list of IP addresses on {venue}, and our servers are not on it.",
            "On {venue}, edit the key and either add this dashboard's IP addresses or clear the list.",
            fix_with_ip="On {venue}, edit the key and add {ip} (the address {venue} saw our request "
            "come from) to its IP list, or clear the list.",
        ),
        _ERROR,
    ),
    ErrorKind.KEY_EXPIRED: (
        Text(
            "This key has expired",
            "{venue} answered that the key has expired.",
            "Create a new API key on {venue} (read and trade on, withdraw off) and connect it.",
        ),
        _ERROR,
    ),
    ErrorKind.NO_PERMISSION: (
        Text(
            "The key is missing a permission",
            "{venue} answered that this key may not do what we asked (read account data).",
            "On {venue}, edit the key: allow reading and trading, and leave withdrawals off.",
        ),
        _ERROR,
    ),
    ErrorKind.FORBIDDEN: (
        Text(
            "{venue} would not tell us what this key may do",
            "{venue} refused to show this key's permissions.",
            "Create the key on your main {venue} account instead of a sub-account.",
        ),
        _ERROR,
    ),
    ErrorKind.INVALID_TIMESTAMP: (
        Text(
            "{venue} rejected the request time",
            "{venue} refused the request's time stamp even after we corrected for the clock difference.",
            "Nothing: we retry automatically.",
        ),
        _WARN,
    ),
    ErrorKind.RESTRICTED_LOCATION: (
        Text(
            "{venue} does not serve this server's location",
            "{venue} refuses every request from the country this dashboard runs in. The key may be fine.",
            "Run this dashboard on a server in a country {venue} serves. The key is kept and tried "
            "again now and then.",
        ),
        _WARN,
    ),
    ErrorKind.RATE_LIMITED: (
        Text(
            "{venue} asked us to slow down",
            "{venue} is rate-limiting requests right now.",
            "Nothing: we retry automatically, no sooner than {venue} asked.",
        ),
        _WARN,
    ),
    ErrorKind.MAINTENANCE: (
        Text(
            "{venue} is under maintenance",
            "{venue}'s API is down for maintenance.",
            "Nothing: we retry automatically until {venue} is back.",
        ),
        _WARN,
    ),
    ErrorKind.UNAVAILABLE: (
        Text(
            "{venue} could not be reached",
            "{venue} did not answer, or answered with a server error.",
            "Nothing: your key is kept and we retry automatically with increasing pauses.",
        ),
        _WARN,
    ),
    KEY_IN_YOUR_ACCOUNT: (
        Text(
            "This API key is already connected to your account",
            "{venue} accepted the key, and one of your connections on My Exchanges already uses it, "
            "so it was not stored a second time.",
            "Nothing: the connection that has this key keeps working.",
        ),
        _ERROR,
    ),
    KEY_IN_ANOTHER_ACCOUNT: (
        Text(
            "This API key is already connected to another account here",
            "{venue} accepted the key, but another account of this dashboard already uses it. A key "
            "connects to one account only, so it was not stored for this one.",
            "Create a separate key on {venue} for this account and connect that one. If you did not "
            "connect this key elsewhere, someone else has it: delete it on {venue}'s API Management page.",
        ),
        _ERROR,
    ),
    ErrorKind.UNKNOWN: (
        Text(
            "{venue} gave an unexpected answer",
            "{venue} refused the request with an error we do not recognise (see the details).",
            "We retry automatically. If it persists, check the key on {venue}'s API Management page.",
        ),
        _WARN,
    ),
}

_BY_STATUS: dict[str, tuple[Text, str]] = {
    Status.VERIFYING: (
        Text(
            "Verifying with {venue}",
            "We are checking the key with {venue}: identity, permissions and balances.",
            "Wait a few seconds.",
        ),
        "pending",
    ),
    Status.CONNECTED: (
        Text("Connected", "The key works and can read balances and trade, but not withdraw.", ""),
        "ok",
    ),
    Status.WITHDRAW_ENABLED: (
        Text(
            "Withdrawal permission is enabled: key refused",
            "This key can withdraw funds from your {venue} account. We never keep a key that could "
            "move money out: it was deleted as soon as {venue} told us.",
            "On {venue}, create a key with reading and trading allowed and withdrawals off, and "
            "connect that one.",
        ),
        _ERROR,
    ),
    Status.INCORRECT_PERMISSIONS: (
        Text(
            "Incorrect permissions",
            "The key can read your account but cannot trade: its trading permission is off.",
            "On {venue}, edit the key and allow trading (leave withdrawals off), then connect it again.",
        ),
        _ERROR,
    ),
    Status.TRADING_EXPIRED: (
        Text(
            "Trading expired",
            "{venue} turned this key's trading permission off. Balances keep refreshing.",
            "On {venue}, edit the key and allow trading again, or create a new key.",
        ),
        _WARN,
    ),
    Status.EXPIRED: _BY_KIND[ErrorKind.KEY_EXPIRED],
    Status.IP_NOT_ALLOWED: _BY_KIND[ErrorKind.IP_NOT_ALLOWED],
    Status.INVALID: _BY_KIND[ErrorKind.INVALID_SIGNATURE],
    Status.TEMPORARY: _BY_KIND[ErrorKind.UNAVAILABLE],
}

# Statuses decided from what the venue tells us about the key, not from an error.
_STATUS_FIRST = {
    Status.VERIFYING,
    Status.CONNECTED,
    Status.WITHDRAW_ENABLED,
    Status.TRADING_EXPIRED,
}
# A status explained by an error kind's text when no (known) kind came with it.
_STATUS_TEXT_KEYS = {
    Status.EXPIRED: ErrorKind.KEY_EXPIRED,
    Status.IP_NOT_ALLOWED: ErrorKind.IP_NOT_ALLOWED,
    Status.INVALID: ErrorKind.INVALID_SIGNATURE,
    Status.TEMPORARY: ErrorKind.UNAVAILABLE,
}

# The address the venue saw our request come from, at the end of its refusal: HTX's
# "...Incorrect IP address [IP地址错误]:1.2.3.4", or "..., request ip: 1.2.3.4".
_CALLER_IP = re.compile(r"\bIP[^:]*:\s*([0-9A-Fa-f.:]+)\s*$", re.IGNORECASE)
_NAMES_IP = {ErrorKind.IP_NOT_ALLOWED, ErrorKind.KEY_IP_OR_PERMISSION}


def caller_ip(error_kind: str, detail: str) -> str | None:
    if error_kind not in _NAMES_IP:
        return None
    found = _CALLER_IP.search(detail)
    return found.group(1) if found else None


def explain(
    status: str, error_kind: str = "", detail: str = "", *, venue: Venue | None = None
) -> Explanation:
    if status in _STATUS_FIRST or error_kind not in _BY_KIND:
        keys = (_STATUS_TEXT_KEYS.get(status, status), status)
        text, tone = _BY_STATUS[status]
    else:
        keys = (error_kind,)
        text, tone = _BY_KIND[error_kind]
    name = venue.name if venue else "the exchange"
    own = venue.texts if venue else {}
    text = next((own[key] for key in keys if key in own), text)
    ip = caller_ip(error_kind, detail)
    fix = text.fix_with_ip if ip and text.fix_with_ip else text.fix
    cause = text.cause.format(venue=name)
    # The address the venue saw is the truth of that moment; EGRESS_IPS may be out of date.
    note = mismatch_note(name, ip, settings.EGRESS_IPS)
    fix = fix.format(venue=name, ip=ip)
    ip_refusal = status == Status.IP_NOT_ALLOWED or error_kind == ErrorKind.IP_NOT_ALLOWED
    if ip_refusal and not ip and settings.EGRESS_IPS:
        # The venue named no address: say which ones "this dashboard's addresses" are.
        fix = f"{fix} This server's addresses: {', '.join(settings.EGRESS_IPS)}."
    return Explanation(
        title=text.title.format(venue=name),
        cause=f"{cause} {note}" if note else cause,
        fix=fix,
        tone=tone,
    )
