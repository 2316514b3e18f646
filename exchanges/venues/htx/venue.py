"""HTX as a venue of this dashboard: what it asks for, how it is checked, what it is called."""

from __future__ import annotations

from typing import Any, ClassVar

from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.types import Credentials
from exchanges.venues.kit.venue import CredentialField, Limit, Text, UnboundKeyRule, Venue

from . import limits
from .adapter import HtxVenueClient
from .client import DEFAULT_BASE_URL, redact

# HTX keys are ASCII, a few dozen characters (e.g. "e2xxxxxx-99xxxxxx-84xxxxxx-7xxxx"). The
# bounds are loose on purpose; they only stop pastes that cannot be a key.
KEY_MIN, KEY_MAX = 16, 128


class HtxVenue(Venue):
    id = "htx"
    name = "HTX"
    tagline = "formerly Huobi"
    logo = "img/htx.svg"
    default_api_url = DEFAULT_BASE_URL
    api_management_url = "https://www.htx.com/en-us/apikey"
    help_template = "htx/help.html"
    help_title = "How to create an HTX API key"
    env_prefix = "HTX"
    uid_label = "HTX UID"
    credential_fields = (
        CredentialField("access_key", "API Key", help="HTX calls it the Access Key."),
        CredentialField(
            "secret_key",
            "Secret Key",
            secret=True,
            help="Shown once by HTX when you created the key. Stored encrypted, never shown again.",
        ),
    )
    checklist = (
        "On HTX, turn Read-Only and Trade on, and leave Withdraw off: a key that can withdraw is refused.",
        "A key without an IP binding expires after 90 days on HTX.",
    )
    no_ip_binding_note = "HTX deactivates such keys after 90 days."
    # htx-api.md §7: "a key without IP binding expires after 90 days"; with one it never expires.
    unbound_key_rule = UnboundKeyRule(90, "deactivates a key")
    ip_list_separator = ","  # "comma-separated, e.g. 202.106.196.115,202.106.96.0/24" (§7)
    not_described_note = (
        "HTX does not describe sub-user keys, so permissions, IP binding and expiry could not be "
        "checked. We checked that the key can read your balances; sub-user keys can never withdraw."
    )
    # Before ``limits`` below, which hides the module of that name in this class body.
    refresh_paths = limits.REFRESH_PATHS
    limits: ClassVar[dict[str, Limit]] = limits.LIMITS
    texts: ClassVar[dict[str, Text]] = {
        ErrorKind.INVALID_ACCESS_KEY: Text(
            "HTX does not know this API Key",
            "HTX answered that the API Key is incorrect: it was mistyped, cut short, deleted on "
            "HTX, or the two keys were pasted into each other's fields.",
            "Copy the Access Key again from HTX's API Management page and paste it into API Key, "
            "and the Secret Key into Secret Key.",
        ),
        ErrorKind.INVALID_SIGNATURE: Text(
            "The Secret Key does not match this API Key",
            "HTX recognised the API Key but could not verify our signature with the Secret Key "
            "you gave: the Secret Key is wrong, truncated, or belongs to another key.",
            "HTX shows a Secret Key only once, when the key is created. If you no longer have it, "
            "create a new key on HTX and connect that one.",
        ),
        ErrorKind.LOGIN_REQUIRED: Text(
            "HTX refused the key pair",
            "HTX answered that the request was not authenticated (the key and account do not match).",
            "Check that both keys come from the same HTX API key, then connect again.",
        ),
        ErrorKind.IP_NOT_ALLOWED: Text(
            "This key only works from other IP addresses",
            "The key is bound to a list of IP addresses on HTX, and our servers are not on it.",
            "On HTX, edit the key and either add this dashboard's IP addresses or clear the list.",
            fix_with_ip="On HTX, edit the key and add {ip} (the address HTX saw our request come "
            "from) to its IP list, or clear the list.",
        ),
        ErrorKind.KEY_EXPIRED: Text(
            "This key has expired",
            "HTX deactivates keys that are not bound to an IP address after 90 days.",
            "Create a new API key on HTX (Read-Only and Trade on, Withdraw off) and connect it.",
        ),
        ErrorKind.NO_PERMISSION: Text(
            "The key is missing a permission",
            "HTX answered that this key may not read account data.",
            "On HTX, edit the key: turn Read-Only and Trade on, and leave Withdraw off.",
        ),
        ErrorKind.FORBIDDEN: Text(
            "HTX would not tell us what this key may do",
            "HTX refused to show this key's permissions. This happens with sub-user keys, which "
            "this dashboard cannot check yet.",
            "Create the key on your main HTX account instead of a sub-user.",
        ),
        "withdraw_enabled": Text(
            "Withdrawal permission is enabled: key refused",
            "This key can withdraw funds from your HTX account. We never keep a key that could "
            "move money out: it was deleted as soon as HTX told us.",
            "On HTX, create a key with Read-Only and Trade on and Withdraw off, and connect that one.",
        ),
        "incorrect_permissions": Text(
            "Incorrect permissions",
            "The key can read your account but cannot trade: Trade permission is off.",
            "On HTX, edit the key and turn Trade on (leave Withdraw off), then connect it again.",
        ),
    }

    def validate(self, credentials: Credentials) -> dict[str, str]:
        errors = {}
        for field, value in (("access_key", credentials.api_key), ("secret_key", credentials.secret)):
            name = "API Key" if field == "access_key" else "Secret Key"
            if not value.isascii() or not value.isprintable():
                errors[field] = (
                    f"The {name} contains characters HTX never uses (non-Latin letters or symbols). "
                    "Copy it again from HTX; browser auto-translation can change keys."
                )
            elif not KEY_MIN <= len(value) <= KEY_MAX:
                errors[field] = (
                    f"The {name} is {len(value)} characters long; HTX keys are about 30 to 40. "
                    "Check that you copied all of it, and nothing else."
                )
        if not errors and credentials.api_key == credentials.secret:
            errors["__all__"] = (
                "The API Key and the Secret Key are the same. HTX shows two different values: "
                "paste the Access Key into API Key and the Secret Key into Secret Key."
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
    ) -> HtxVenueClient:
        return HtxVenueClient(
            base_url,
            access_key=credentials.api_key if credentials else "",
            secret_key=credentials.secret if credentials else "",
            timeout=timeout,
            gate=gate,
            scope=scope,
        )

    def redact(self, text: str) -> str:
        return redact(text)

    def sandbox(self, **kwargs: Any) -> Any:
        from .sandbox import HtxSandbox, load_accounts, load_tickers

        return HtxSandbox(load_accounts(), load_tickers(), **kwargs)

    demo_scenarios: ClassVar[dict[str, str]] = {
        "good": "demo: good key",
        "withdraw": "demo: same user, key with withdraw",
        "read_only": "demo: read-only",
        "ip_elsewhere": "demo: bound to ip 203.0.113.7",
        "ip_bound_here": "demo: bound to 127.0.0.1",
        "expired": "demo: expired key",
        "expiring": "demo: expires in 5 days",
    }


HTX = HtxVenue()
