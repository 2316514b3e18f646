"""Binance as a venue of this dashboard: what it asks for, how it is checked, what it is called."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.types import Credentials
from exchanges.venues.kit.venue import CredentialField, Limit, Text, UnboundKeyRule, Venue

from . import limits
from .client import DEFAULT_BASE_URL, BinanceClient, redact
from .signing import is_private_key

# Binance API Keys and Secret Keys ("System generated", HMAC) are 64 letters and digits.
KEY_LENGTH = 64
_KEY = re.compile(r"[A-Za-z0-9]{64}")
_NAMES = {"access_key": "API Key", "secret_key": "Secret Key"}


class BinanceVenue(Venue):
    id = "binance"
    name = "Binance"
    tagline = "World's largest exchange by volume"
    logo = "img/binance.svg"
    default_api_url = DEFAULT_BASE_URL
    api_management_url = "https://www.binance.com/en/my/settings/api-management"
    help_template = "binance/help.html"
    help_title = "How to create a Binance API key"
    env_prefix = "BINANCE"
    uid_label = "Binance UID"
    credential_fields = (
        CredentialField(
            "access_key", "API Key", help="64 letters and digits, from Binance's API Management."
        ),
        CredentialField(
            "secret_key",
            "Secret Key",
            secret=True,
            help="Shown once by Binance when you created the key. Stored encrypted, never shown again.",
        ),
    )
    checklist = (
        "Create a “System generated” key on Binance's API Management page.",
        "Tick “Enable Reading” and “Enable Spot & Margin Trading”.",
        "Leave “Enable Withdrawals” off: a key that can withdraw is refused.",
        "Without an IP restriction Binance turns the key's trading permission off after 30 days; "
        "reading balances keeps working.",
    )
    no_ip_binding_note = (
        "Binance turns trading off for such keys 30 days after it was enabled (reading keeps "
        "working), and may delete them when unused for 30 days."
    )
    not_described_note = "Binance did not describe this key."
    # binance-api.md §5: without trusted IPs "Enable Spot & Margin Trading" is unticked after 30 days.
    unbound_key_rule = UnboundKeyRule(30, "removes the trading permission from a key", term="IP restriction")
    # Before ``limits`` below, which hides the module of that name in this class body.
    refresh_paths = limits.REFRESH_PATHS
    limits: ClassVar[dict[str, Limit]] = limits.LIMITS
    texts: ClassVar[dict[str, Text]] = {
        ErrorKind.KEY_IP_OR_PERMISSION: Text(
            "Binance refused the key",
            "Binance gives one answer for three causes: the API Key is unknown (mistyped, cut short "
            "or deleted on Binance), this server's IP address is not in the key's list of trusted "
            "IPs, or the key lacks a permission.",
            "On Binance's API Management page, check that the key still exists, that “Enable Reading” "
            "is ticked and that its trusted IPs include this dashboard's addresses; then connect again.",
            fix_with_ip="Binance saw our request come from {ip}: on Binance's API Management page, add "
            "{ip} to the key's trusted IPs (or check that the key still exists), then connect again.",
        ),
        ErrorKind.INVALID_ACCESS_KEY: Text(
            "This is not a Binance API Key",
            "Binance answered that the API Key's format is invalid: Binance API Keys are 64 letters "
            "and digits, and this one is not.",
            "Copy the API Key again from Binance's API Management page and paste it into API Key.",
        ),
        ErrorKind.INVALID_SIGNATURE: Text(
            "The Secret Key does not match this API Key",
            "Binance knows the API Key but could not verify our signature with the Secret Key you "
            "gave: it is wrong, cut short, or belongs to another key.",
            "Binance shows the Secret Key only once; if you no longer have it, delete the key on "
            "Binance, create a new one and connect that.",
        ),
        ErrorKind.NO_PERMISSION: Text(
            "The key is missing a permission",
            "Binance answered that this key is not authorized for the request.",
            "On Binance, edit the key: tick “Enable Reading” and “Enable Spot & Margin Trading”, and "
            "leave “Enable Withdrawals” off.",
        ),
        ErrorKind.INVALID_TIMESTAMP: Text(
            "Binance rejected the request time",
            "Binance refused the request's time stamp even after we corrected for the clock difference.",
            "Nothing: we retry automatically.",
        ),
        ErrorKind.RESTRICTED_LOCATION: Text(
            "Binance does not serve this server's location",
            "Binance.com answers “Service unavailable from a restricted location” to every request "
            "from this server, for example because it runs in the United States. Your key is not the "
            "problem and is kept.",
            "Run this dashboard on a server in a country Binance.com serves.",
        ),
        ErrorKind.RATE_LIMITED: Text(
            "Binance asked us to slow down",
            "Binance limits how many requests one server may send per minute, shared by every user "
            "of this dashboard, and the limit was reached.",
            "Nothing: we wait as long as Binance asks and try again automatically.",
        ),
        ErrorKind.MAINTENANCE: Text(
            "Binance is under maintenance",
            "Binance's system status says maintenance, so it is not answering account requests.",
            "Nothing: we keep your key and try again automatically.",
        ),
        ErrorKind.UNAVAILABLE: Text(
            "Binance is not answering",
            "Binance (or the network in between) did not give a usable answer: a timeout, a server "
            "error or an error page.",
            "Nothing: we keep your key and try again automatically.",
        ),
        ErrorKind.UNKNOWN: Text(
            "Binance gave an answer we did not understand",
            "The answer was not one we know, so we did not judge the key by it.",
            "Nothing: we keep your key and try again automatically.",
        ),
        "incorrect_permissions": Text(
            "Incorrect permissions",
            "The key can read your account but cannot trade: “Enable Spot & Margin Trading” is off.",
            "On Binance, edit the key and tick “Enable Spot & Margin Trading” (leave “Enable "
            "Withdrawals” off), then connect it again.",
        ),
        "withdraw_enabled": Text(
            "Withdrawal permission is enabled: key refused",
            "This key has “Enable Withdrawals” ticked, so it could move money out of your Binance "
            "account. We never keep such a key: it was deleted as soon as Binance told us.",
            "On Binance, create a key with “Enable Withdrawals” off and connect that one.",
        ),
        "trading_expired": Text(
            "Trading permission expired",
            "Binance turned “Enable Spot & Margin Trading” off because the key has no IP restriction "
            "(it does that after 30 days). Reading still works: your balances keep refreshing.",
            "On Binance, edit the key, restrict it to this dashboard's IP addresses and tick “Enable "
            "Spot & Margin Trading” again, or create a new key.",
        ),
        "expired": Text(
            "This key no longer works",
            "Binance keys have no expiry date, but Binance takes “Enable Spot & Margin Trading” away "
            "from keys without an IP restriction after 30 days and may delete such keys when unused "
            "for 30 days.",
            "On Binance, create a new key restricted to this dashboard's IP addresses and connect it.",
        ),
        "expires_soon": Text(
            "Trading permission expires soon",
            "The key has no IP restriction, so Binance will turn “Enable Spot & Margin Trading” off "
            "30 days after it was turned on. Reading will keep working.",
            "On Binance, edit the key and restrict it to this dashboard's IP addresses: trading then "
            "never expires.",
        ),
    }

    # The sandbox's demo keys by their part in the contract suite (the start of their note).
    demo_scenarios: ClassVar[dict[str, str]] = {
        "good": "demo: good key",
        "withdraw": "demo: withdraw enabled",
        "read_only": "demo: read-only",
        "ip_elsewhere": "demo: ip-bound elsewhere",
        "ip_bound_here": "demo: ip-bound good key",
        "expired": "demo: trading expired",
        "expires_soon": "demo: trading expiring soon",
    }

    def validate(self, credentials: Credentials) -> dict[str, str]:
        errors: dict[str, str] = {}
        for field, value in (("access_key", credentials.api_key), ("secret_key", credentials.secret)):
            name = _NAMES[field]
            if is_private_key(value) or re.search(r"PUBLIC\s*KEY", value):
                errors[field] = (
                    f"This is a PEM key, not a Binance {name}. This dashboard supports Binance's "
                    "“System generated” (HMAC) keys only, not Ed25519 or RSA keys: create a System "
                    f"generated key and paste its {name}."
                )
            elif not value.isascii() or not value.isprintable():
                errors[field] = (
                    f"The {name} contains characters Binance never uses (non-Latin letters, spaces "
                    "or symbols). Copy it again from Binance; browser auto-translation can change keys."
                )
            elif not _KEY.fullmatch(value):
                problem = (
                    f"this one is {len(value)} characters"
                    if len(value) != KEY_LENGTH
                    else "this one contains other characters"
                )
                errors[field] = (
                    f"Binance API Keys and Secret Keys are 64 letters and digits; {problem}. "
                    "Check that you copied all of it, and nothing else."
                )
        if not errors and credentials.api_key == credentials.secret:
            errors["__all__"] = (
                "The API Key and the Secret Key are the same. Binance shows two different values: "
                "paste the API Key into API Key and the Secret Key into Secret Key."
            )
        return errors

    def limit_for(self, path: str) -> Limit:
        return limits.limit_for(path)

    def client(
        self,
        *,
        base_url: str,
        credentials: Credentials | None,
        timeout: tuple[float, float],
        gate: Any = None,
        scope: str = "",
    ) -> BinanceClient:
        return BinanceClient(base_url, credentials=credentials, timeout=timeout, gate=gate, scope=scope)

    def redact(self, text: str) -> str:
        return redact(text)

    def sandbox(self, **kwargs: Any) -> Any:
        from .sandbox import BinanceSandbox, load_keys, load_tickers

        return BinanceSandbox(load_keys(), load_tickers(), **kwargs)


BINANCE = BinanceVenue()
