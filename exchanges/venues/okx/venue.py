"""OKX as a venue of this dashboard: what it asks for, how it is checked, what it is called."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.types import Credentials
from exchanges.venues.kit.venue import CredentialField, Limit, Text, UnboundKeyRule, Venue

from . import limits
from .client import OkxClient, redact_headers
from .endpoints import DEFAULT_BASE_URL, SITE_LABELS, SITES

# API Keys are lower-case UUIDs, Secret Keys 32 hex characters (okx-api.md §6 "Formats").
_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_ANY_CASE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_SECRET = re.compile(r"[0-9A-Fa-f]{32}")
KEY_LENGTH, SECRET_LENGTH = 36, 32
_NAMES = {"access_key": "API Key", "secret_key": "Secret Key", "passphrase": "Passphrase"}


class OkxVenue(Venue):
    id = "okx"
    name = "OKX"
    tagline = "Global exchange with EEA and US sites"
    logo = "img/okx.svg"
    default_api_url = DEFAULT_BASE_URL
    api_management_url = "https://www.okx.com/account/my-api"
    help_template = "okx/help.html"
    help_title = "How to create an OKX API key"
    env_prefix = "OKX"
    uid_label = "OKX UID"
    credential_fields = (
        CredentialField(
            "access_key",
            "API Key",
            help="36 characters with dashes, from OKX's API page (profile menu → API).",
        ),
        CredentialField(
            "secret_key",
            "Secret Key",
            secret=True,
            help="32 characters, shown by OKX when you created the key. Stored encrypted, never shown again.",
        ),
        CredentialField(
            "passphrase",
            "Passphrase",
            secret=True,
            help="The passphrase you chose when creating the key on OKX (OKX cannot show it again). "
            "Stored encrypted, never shown again.",
        ),
        CredentialField(
            "site",
            "Site",
            help="Where you log in to OKX and created the key: a key works only on its own site.",
            choices=tuple(SITE_LABELS.items()),
        ),
    )
    checklist = (
        "Create the key on the OKX site you log in to: www.okx.com, my.okx.com (EEA) or "
        "app.okx.com (US and Australia), and choose that site here.",
        "Tick “Read” and “Trade”. Leave “Withdraw” off: a key that can withdraw is refused.",
        "Write down the passphrase you choose for the key: we need it, and OKX cannot show it again.",
        "Without an IP binding OKX deletes a key that can trade after 14 days without use; our "
        "balance refreshes use it every few hours, which keeps it alive.",
    )
    no_ip_binding_note = (
        "OKX deletes keys that can trade and have no IP binding after 14 days without a signed "
        "request. Our balance refreshes use the key every few hours, which keeps it alive; a "
        "connection left paused for 14 days loses its key."
    )
    not_described_note = "OKX did not describe this key."
    # okx-api.md §6: keys with trade and no IP binding "expire after 14 days of inactivity".
    unbound_key_rule = UnboundKeyRule(14, "deletes a key that can trade", idle=True)
    # Before ``limits`` below, which hides the module of that name in this class body.
    refresh_paths = limits.REFRESH_PATHS
    limits: ClassVar[dict[str, Limit]] = limits.LIMITS
    texts: ClassVar[dict[str, Text]] = {
        ErrorKind.INVALID_ACCESS_KEY: Text(
            "OKX does not know this API Key",
            "OKX answered “API key doesn't exist” on every one of its sites (Global, EEA, US). OKX "
            "gives that answer for a key of another site, a mistyped or cut-short key, a key deleted "
            "on OKX, and a key OKX deleted after 14 days without use (keys that can trade and have no "
            "IP binding).",
            "Check on OKX's API page that the key still exists and paste its API Key again; if it is "
            "gone, create a new key and connect that.",
        ),
        ErrorKind.INVALID_SIGNATURE: Text(
            "The Secret Key does not match this API Key",
            "OKX knows the API Key and the passphrase, but could not verify our signature with the "
            "Secret Key you gave: it is wrong, cut short, belongs to another key, or the passphrase "
            "was pasted into Secret Key.",
            "Paste the Secret Key OKX showed when you created the key; if you no longer have it, "
            "create a new key on OKX and connect that.",
        ),
        ErrorKind.INVALID_PASSPHRASE: Text(
            "The passphrase is wrong",
            "OKX knows the API Key but refused the passphrase. It is the one you typed when you "
            "created the key (not your OKX login password), letter for letter, upper and lower case "
            "as typed.",
            "Connect it again with the right passphrase; OKX cannot show a passphrase again, so "
            "if it is lost, create a new key.",
        ),
        ErrorKind.WRONG_ENVIRONMENT: Text(
            "This is a demo-trading key",
            "OKX answered that the key does not match the environment: keys created under Demo "
            "Trading only work with OKX's simulated money, and this dashboard reads your real account.",
            "On OKX, leave Demo Trading, create the key under your profile's API page and connect that.",
        ),
        ErrorKind.IP_NOT_ALLOWED: Text(
            "This key only works from other IP addresses",
            "The key is bound to a list of IP addresses on OKX, and our servers are not on it.",
            "On OKX's API page, edit the key and add this dashboard's IP addresses to it.",
            fix_with_ip="On OKX's API page, edit the key and add {ip} (the address OKX saw our "
            "request come from) to its IP addresses.",
        ),
        ErrorKind.NO_PERMISSION: Text(
            "The key is missing a permission",
            "OKX answered “This API key doesn't have permission to use this function”.",
            "On OKX, edit the key: tick “Read” and “Trade”, and leave “Withdraw” off.",
        ),
        ErrorKind.FORBIDDEN: Text(
            "OKX froze this key",
            "OKX answered that the key (or the account) is frozen, so it serves no request with it.",
            "Contact OKX's customer service, or create a new key once the account is unfrozen.",
        ),
        ErrorKind.KEY_EXPIRED: Text(
            "OKX deleted this key",
            "The key worked before, but OKX now answers “API key doesn't exist” on every site: OKX "
            "deletes keys that can trade and have no IP binding after 14 days without use, and a key "
            "deleted on OKX's API page answers the same.",
            "Create a new key on OKX (Read and Trade on, Withdraw off) and connect it; we keep a "
            "connected key alive by using it every few hours.",
        ),
        ErrorKind.INVALID_TIMESTAMP: Text(
            "OKX rejected the request time",
            "OKX refused the request's time stamp even after we corrected for the clock difference.",
            "Nothing: we retry automatically.",
        ),
        ErrorKind.RATE_LIMITED: Text(
            "OKX asked us to slow down",
            "OKX limits how many requests an account (and this server) may send per second, or it is "
            "busy, and answered “Too Many Requests”.",
            "Nothing: we wait and try again automatically.",
        ),
        ErrorKind.MAINTENANCE: Text(
            "OKX is under maintenance",
            "OKX's system status lists a maintenance going on, so it is not answering account requests.",
            "Nothing: we keep your key and try again automatically.",
        ),
        ErrorKind.UNAVAILABLE: Text(
            "OKX is not answering",
            "OKX (or the network in between) did not give a usable answer: a timeout, a server error "
            "or an error page.",
            "Nothing: we keep your key and try again automatically.",
        ),
        ErrorKind.UNKNOWN: Text(
            "OKX gave an answer we did not understand",
            "The answer was not one we know, so we did not judge the key by it.",
            "Nothing: we keep your key and try again automatically.",
        ),
        "incorrect_permissions": Text(
            "Incorrect permissions",
            "The key can read your account but cannot trade: “Trade” is not ticked.",
            "On OKX's API page, edit the key and tick “Trade” (leave “Withdraw” off), then connect it again.",
        ),
        "withdraw_enabled": Text(
            "Withdrawal permission is enabled: key refused",
            "This key has “Withdraw” ticked, so it could move money out of your OKX account. We never "
            "keep such a key: its secret and passphrase were erased as soon as OKX told us. OKX has no "
            "way for us to delete the key itself.",
            "Delete this key on OKX's API page yourself, then create one with “Withdraw” off and "
            "connect that.",
        ),
        "expired": Text(
            "OKX deleted this key",
            "OKX keys have no expiry date, but OKX deletes keys that can trade and have no IP binding "
            "after 14 days without use, and the key no longer exists on any OKX site.",
            "Create a new key on OKX (Read and Trade on, Withdraw off) and connect it; we keep a "
            "connected key alive by using it every few hours.",
        ),
    }
    # The sandbox's demo keys by their part in the contract suite (the start of their note).
    demo_scenarios: ClassVar[dict[str, str]] = {
        "good": "demo: good key",
        "withdraw": "demo: withdraw enabled",
        "read_only": "demo: read-only",
        "ip_elsewhere": "demo: ip-bound elsewhere",
        "ip_bound_here": "demo: ip-bound good key",
        "expired": "demo: idle 15 days",
        "other_site": "demo: eea key",
        "demo_trading": "demo: demo-trading key",
    }

    def validate(self, credentials: Credentials) -> dict[str, str]:
        """Format rules before any network call. An empty passphrase or site is the form's to
        report ("Paste your …"); what is there must have OKX's shape."""
        errors: dict[str, str] = {}
        api_key, secret = credentials.api_key, credentials.secret
        passphrase = credentials.extra.get("passphrase", "")
        site = credentials.extra.get("site", "")
        for field, value in (("access_key", api_key), ("secret_key", secret), ("passphrase", passphrase)):
            if value and (not value.isascii() or not value.isprintable()):
                errors[field] = (
                    f"The {_NAMES[field]} contains characters OKX never uses (non-Latin letters, "
                    "invisible characters or line breaks). Copy it again; browser auto-translation "
                    "can change keys."
                )
        if "access_key" not in errors and not _KEY.fullmatch(api_key):
            errors["access_key"] = _key_problem(api_key)
        if "secret_key" not in errors and not _SECRET.fullmatch(secret):
            errors["secret_key"] = _secret_problem(secret)
        if "passphrase" not in errors and passphrase and passphrase in (api_key, secret):
            errors["passphrase"] = (
                "This is the API Key or the Secret Key, not the passphrase: the passphrase is the "
                "word you typed yourself when creating the key on OKX."
            )
        if site and site not in SITES:
            errors["site"] = "Choose the OKX site where you created the key."
        if not errors and api_key == secret:
            errors["__all__"] = "The API Key and the Secret Key are the same; OKX shows two different values."
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
    ) -> OkxClient:
        return OkxClient(base_url, credentials=credentials, timeout=timeout, gate=gate, scope=scope)

    def redact(self, text: str) -> str:
        return redact_headers(text)

    def sandbox(self, **kwargs: Any) -> Any:
        from .sandbox import OkxSandbox, load_keys, load_tickers

        return OkxSandbox(load_keys(), load_tickers(), **kwargs)


def _key_problem(value: str) -> str:
    if _UUID_ANY_CASE.fullmatch(value):
        return (
            "OKX API Keys are written in lower case; this one has capital letters. Copy it again "
            "from OKX's API page."
        )
    if _SECRET.fullmatch(value):
        return (
            "This looks like the Secret Key (32 characters). The API Key is the 36-character code "
            "with four dashes: paste each into its own field."
        )
    shape = f"this one is {len(value)} characters" if len(value) != KEY_LENGTH else "this one is not"
    return (
        "OKX API Keys are 36 characters: digits and letters a–f in five groups joined by dashes "
        f"(8-4-4-4-12); {shape}. Check that you copied all of it, and nothing else."
    )


def _secret_problem(value: str) -> str:
    if _UUID_ANY_CASE.fullmatch(value):
        return (
            "This looks like the API Key (36 characters with dashes). The Secret Key is the "
            "32-character code OKX showed once: paste each into its own field."
        )
    shape = f"this one is {len(value)} characters" if len(value) != SECRET_LENGTH else "this one is not"
    return (
        f"OKX Secret Keys are 32 characters, digits and letters A–F; {shape}. Check that you copied "
        "all of it (and not the passphrase)."
    )


OKX = OkxVenue()
