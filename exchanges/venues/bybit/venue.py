"""Bybit as a venue of this dashboard: what it asks for, how it is checked, what it is called."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.types import Credentials
from exchanges.venues.kit.venue import CredentialField, Limit, Text, UnboundKeyRule, Venue

from . import limits
from .client import DEFAULT_BASE_URL, BybitClient, redact_headers
from .endpoints import SITES
from .signing import is_pem

# "System-generated" (HMAC) keys: API Key 18 letters and digits, Secret Key 36.
KEY_LENGTH = 18
SECRET_LENGTH = 36
_LENGTHS = {"access_key": KEY_LENGTH, "secret_key": SECRET_LENGTH}
_NAMES = {"access_key": "API Key", "secret_key": "Secret Key"}
_ALNUM = re.compile(r"[A-Za-z0-9]+")
SITE_CHOICES = tuple((site, label) for site, (_, label) in SITES.items())


class BybitVenue(Venue):
    id = "bybit"
    name = "Bybit"
    tagline = "Unified Trading Account, global and regional sites"
    logo = "img/bybit.svg"
    default_api_url = DEFAULT_BASE_URL
    api_management_url = "https://www.bybit.com/app/user/api-management"
    help_template = "bybit/help.html"
    help_title = "How to create a Bybit API key"
    env_prefix = "BYBIT"
    uid_label = "Bybit UID"
    credential_fields = (
        CredentialField(
            "access_key", "API Key", help="18 letters and digits, from Bybit's API Management page."
        ),
        CredentialField(
            "secret_key",
            "Secret Key",
            secret=True,
            help="36 letters and digits, shown once by Bybit when you created the key. Stored "
            "encrypted, never shown again.",
        ),
        CredentialField(
            "site",
            "Site",
            help="The Bybit site your account is on: a key works only on the site where it was created.",
            choices=SITE_CHOICES,
        ),
    )
    checklist = (
        "On Bybit's API Management page, create a “System-generated” key for “API Transaction”.",
        "Choose “Read-Write” and tick “SPOT” trading under Unified Trading.",
        "Leave “Withdrawal” off: a key that can withdraw is refused.",
        "Choose the Bybit site your account is on (Global, Netherlands, Turkey, ...).",
        "Without IP binding Bybit invalidates the key after 90 days (7 days after a password change); "
        "binding it to this dashboard's IP addresses makes it permanent.",
    )
    no_ip_binding_note = (
        "Bybit makes keys without IP binding invalid after 90 days, and 7 days after the account "
        "password is changed; binding the key to IP addresses makes it permanent."
    )
    not_described_note = "Bybit did not describe this key."
    # bybit-api.md §6: "No ip bound api key will be invalid after 90 days".
    unbound_key_rule = UnboundKeyRule(90, "makes a key invalid")
    # Before ``limits`` below, which hides the module of that name in this class body.
    refresh_paths = limits.REFRESH_PATHS
    traffic_limits = limits.TRAFFIC_LIMITS
    limits: ClassVar[dict[str, Limit]] = limits.LIMITS
    texts: ClassVar[dict[str, Text]] = {
        ErrorKind.INVALID_ACCESS_KEY: Text(
            "Bybit does not know this API Key on this site",
            "Bybit answered “API key is invalid”: the API Key is mistyped, was deleted on Bybit, or "
            "belongs to another Bybit site (keys of bybit.com, bybit.nl, bybit.tr and the other "
            "regional sites, testnet and demo trading do not work on each other's sites).",
            "Check the Site you chose here against the Bybit site you log in to, and copy the API Key "
            "again from its API Management page; then connect again.",
        ),
        ErrorKind.INVALID_SIGNATURE: Text(
            "The Secret Key does not match this API Key",
            "Bybit knows the API Key but could not verify our signature with the Secret Key you "
            "gave: it is wrong, cut short, or belongs to another key.",
            "Bybit shows the Secret Key only once; if you no longer have it, delete the key on "
            "Bybit, create a new one and connect that.",
        ),
        ErrorKind.KEY_EXPIRED: Text(
            "The key has expired",
            "Bybit makes keys without IP binding invalid after 90 days, and 7 days after the "
            "account password is changed. This key's expiry has passed.",
            "On Bybit, create a new key bound to this dashboard's IP addresses (it then never "
            "expires) and connect it.",
        ),
        ErrorKind.IP_NOT_ALLOWED: Text(
            "Bybit refused this server's IP address",
            "The key is bound to IP addresses, and the address our request came from is not "
            "among them (“Unmatched IP”).",
            "On Bybit, edit the key and add this dashboard's IP addresses to it, then connect again.",
            fix_with_ip="Bybit saw our request come from {ip}: on Bybit, edit the key and add {ip} "
            "to its IP addresses, then connect again.",
        ),
        ErrorKind.NO_PERMISSION: Text(
            "The key is missing a permission",
            "Bybit answered “Permission denied” for a request this dashboard needs.",
            "On Bybit, edit the key: choose “Read-Write” and tick SPOT trading, and leave Withdrawal off.",
        ),
        ErrorKind.INVALID_TIMESTAMP: Text(
            "Bybit rejected the request time",
            "Bybit refused the request's time stamp even after we corrected for the clock difference.",
            "Nothing: we retry automatically.",
        ),
        ErrorKind.RESTRICTED_LOCATION: Text(
            "Bybit does not serve this server's location",
            "Bybit answers 403 Forbidden to every request from IP addresses in the United States "
            "or Mainland China, and this server's address is refused. Your key is not the problem "
            "and is kept.",
            "Run this dashboard on a server outside the United States and Mainland China.",
        ),
        ErrorKind.RATE_LIMITED: Text(
            "Bybit asked us to slow down",
            "Bybit limits requests per account and per second, and to 600 per 5 seconds per server "
            "address, shared by every user of this dashboard; a limit was reached.",
            "Nothing: we wait as long as Bybit asks and try again automatically.",
        ),
        ErrorKind.MAINTENANCE: Text(
            "Bybit is under maintenance",
            "Bybit answered that its service is restarting or under maintenance.",
            "Nothing: we keep your key and try again automatically.",
        ),
        ErrorKind.UNAVAILABLE: Text(
            "Bybit is not answering",
            "Bybit (or the network in between) did not give a usable answer: a timeout, a server "
            "error or an error page.",
            "Nothing: we keep your key and try again automatically.",
        ),
        ErrorKind.FORBIDDEN: Text(
            "Bybit has restricted this account",
            "Bybit answered that the account is banned or that compliance rules stop it from trading.",
            "Log in to Bybit and follow what it asks for (support, verification), then connect again.",
        ),
        ErrorKind.UNKNOWN: Text(
            "Bybit gave an answer we did not understand",
            "The answer was not one we know, so we did not judge the key by it.",
            "Nothing: we keep your key and try again automatically.",
        ),
        "incorrect_permissions": Text(
            "Incorrect permissions",
            "The key can read your account but cannot trade: it is “Read-Only”, or SPOT trading "
            "is not ticked.",
            "On Bybit, edit the key: choose “Read-Write” and tick SPOT trading (leave Withdrawal "
            "off), then connect it again.",
        ),
        "withdraw_enabled": Text(
            "Withdrawal permission is enabled: key refused",
            "This key has “Withdrawal” ticked under Assets, so it could move money out of your Bybit "
            "account. We never keep such a key: it was deleted as soon as Bybit told us.",
            "On Bybit, create a key with Withdrawal off and connect that one.",
        ),
    }

    # The sandbox's demo keys by their part in the contract suite (the start of their note).
    demo_scenarios: ClassVar[dict[str, str]] = {
        "good": "demo: good key",
        "withdraw": "demo: withdraw enabled",
        "read_only": "demo: read-only",
        "ip_elsewhere": "demo: ip-bound elsewhere",
        "ip_bound_here": "demo: ip-bound good key",
        "expired": "demo: expired",
        "other_site": "demo: nl key",
        "expires_soon": "demo: expiring soon",
        "no_wallet_permission": "demo: no wallet permission",
    }

    def validate(self, credentials: Credentials) -> dict[str, str]:
        errors: dict[str, str] = {}
        values = {"access_key": credentials.api_key, "secret_key": credentials.secret}
        swapped = (
            len(credentials.api_key) == SECRET_LENGTH
            and len(credentials.secret) == KEY_LENGTH
            and all(_ALNUM.fullmatch(v) for v in values.values())
        )
        if swapped:
            errors["__all__"] = (
                "The API Key and the Secret Key look swapped: Bybit's API Key is the shorter one "
                "(18 characters), its Secret Key the longer one (36). Paste each into its own field."
            )
        for field, value in values.items():
            name = _NAMES[field]
            if swapped:
                break
            if is_pem(value):
                errors[field] = (
                    f"This is an RSA key (a “Self-generated” Bybit key), not a Bybit {name}. RSA keys "
                    "are not supported here: create a “System-generated” (HMAC) key on Bybit and "
                    f"paste its {name}."
                )
            elif not value.isascii() or not value.isprintable():
                errors[field] = (
                    f"The {name} contains characters Bybit never uses (non-Latin letters, spaces or "
                    "symbols). Copy it again from Bybit; browser auto-translation can change keys."
                )
            elif not (len(value) == _LENGTHS[field] and _ALNUM.fullmatch(value)):
                problem = (
                    f"this one is {len(value)} characters"
                    if len(value) != _LENGTHS[field]
                    else "this one contains other characters"
                )
                errors[field] = (
                    f"Bybit {name}s are {_LENGTHS[field]} letters and digits; {problem}. Check that "
                    "you copied all of it, and nothing else."
                )
        site = credentials.extra.get("site", "")
        if site and site not in SITES:
            errors["site"] = (
                "Bybit EU accounts cannot create ordinary API keys (Bybit offers them only to "
                "third-party apps), so Bybit EU cannot be connected here."
                if site.lower() in ("eu", "eea")
                else "Choose the Bybit site your account is on."
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
    ) -> BybitClient:
        return BybitClient(base_url, credentials=credentials, timeout=timeout, gate=gate, scope=scope)

    def redact(self, text: str) -> str:
        return redact_headers(text)

    def sandbox(self, **kwargs: Any) -> Any:
        from .sandbox import BybitSandbox, load_keys, load_tickers

        return BybitSandbox(load_keys(), load_tickers(), **kwargs)


BYBIT = BybitVenue()
