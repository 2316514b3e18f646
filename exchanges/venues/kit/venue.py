"""What a venue declares (``Venue``) and what its client does for the worker (``VenueClient``).

A venue folder defines one ``Venue`` subclass instance and lists it in ``settings.VENUES``.
Everything around it (the worker, valuation, statuses, texts, forms, pages) speaks only these
words, so adding an exchange is one folder plus one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from .types import BalanceRead, Credentials, KeyFacts, Prior


@dataclass(frozen=True, slots=True)
class Text:
    """A status or error explained in plain words, with one thing to do about it."""

    title: str
    cause: str
    fix: str
    # Used instead of ``fix`` when the venue's answer named the IP address it saw our request
    # come from; "{ip}" is replaced by it.
    fix_with_ip: str = ""


@dataclass(frozen=True, slots=True)
class CredentialField:
    name: str  # the form field: "access_key", "secret_key", or an extra (e.g. "passphrase")
    label: str  # as the venue's own pages call it, e.g. "API Key"
    help: str = ""
    secret: bool = False  # encrypted, never sent back to a browser
    multiline: bool = False
    # A choice instead of a pasted value (e.g. the venue's site/region): (value, label), the
    # first is the default.
    choices: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Limit:
    """One of the venue's request limits, as data for the gate (``kit.gate``).

    ``shared``: counted per IP address, so every user of this server shares it (a
    request weight per IP); otherwise per account or key (the worker's scope). ``weight``: what one
    request of this group costs against ``limit`` per ``window_ms``."""

    group: str
    limit: int
    window_ms: int
    shared: bool = False
    weight: int = 1


@dataclass(frozen=True, slots=True)
class UnboundKeyRule:
    """What the venue does to a key that is not bound to IP addresses, as data: the dialogs and
    guides say it in one line, next to this server's addresses (why binding a key is worth it)."""

    days: int
    # What happens, as a verb phrase about "a key": "deactivates a key", "deletes a key that can
    # trade", "removes the trading permission from a key".
    outcome: str
    idle: bool = False  # the days count from the key's last signed call, not from its creation
    term: str = "IP binding"  # the venue's word for it ("IP restriction")

    def line(self, venue_name: str) -> str:
        unused = " without use" if self.idle else ""
        return (
            f"Without an {self.term}, {venue_name} {self.outcome} after {self.days} days{unused}; "
            "a key bound to this server's addresses is exempt."
        )


class VenueClient(Protocol):
    """A signed client for one key. Raises the venue's ``VenueError`` subclass on failure."""

    calls: int  # HTTP requests sent
    clock_offset_ms: int  # the venue's clock minus ours, used when signing

    def sync_clock(self) -> int:
        """Measure the venue's clock against ours, sign with it from now on, return the offset."""

    def inspect_key(self, prior: Prior) -> KeyFacts:
        """What the venue says about the key: permissions, IP binding, expiry, account uid.
        Proves key, secret and IP at once; no side effect on the account."""

    def read_balances(self, facts: KeyFacts) -> BalanceRead:
        """Every wallet the key can read; one it may not read is reported, not fatal."""

    def prices(self) -> dict[str, Decimal]:
        """Last prices by upper-case concatenated symbol (``"BTCUSDT"``), tradable pairs only."""

    def __enter__(self) -> VenueClient: ...

    def __exit__(self, *exc: object) -> None: ...


API_KEY = CredentialField("access_key", "API Key")
SECRET_KEY = CredentialField(
    "secret_key", "Secret Key", secret=True, help="Stored encrypted and never shown again."
)


class Venue:
    """One exchange. Subclasses set the class attributes and implement the methods."""

    id: ClassVar[str]  # lower case, used in URLs and the database: "htx"
    name: ClassVar[str]  # as users know it: "HTX"
    tagline: ClassVar[str] = ""  # shown under the name in the picker
    logo: ClassVar[str]  # static path of its SVG logo
    default_api_url: ClassVar[str]
    api_management_url: ClassVar[str]  # where users create and delete keys on the venue
    help_template: ClassVar[str]  # "<id>/help.html" in the venue's folder
    env_prefix: ClassVar[str]  # settings and environment: <PREFIX>_API_URL, <PREFIX>_TIMEOUT
    credential_fields: ClassVar[tuple[CredentialField, ...]] = (API_KEY, SECRET_KEY)
    uid_label: ClassVar[str] = "Account UID"
    # Bullets of the connect dialog, plain text.
    checklist: ClassVar[tuple[str, ...]] = ()
    # "What <venue> told us about this key": what a key without IP binding risks on this venue,
    # and what it means when the venue would not describe a key (KeyFacts.known False).
    no_ip_binding_note: ClassVar[str] = ""
    # The venue's rule for keys without an IP binding (None: it has none).
    unbound_key_rule: ClassVar[UnboundKeyRule | None] = None
    # How the venue's key page wants several IP addresses written (what Copy puts on the clipboard).
    ip_list_separator: ClassVar[str] = " "
    not_described_note: ClassVar[str] = ""
    # Venue-specific texts by error kind or status value; the rest are the product's own.
    texts: ClassVar[Mapping[str, Text]] = {}
    # Request limits enforced by the gate; ``limit_for`` picks one per request path.
    limits: ClassVar[Mapping[str, Limit]] = {}
    # The requests one ordinary scheduled refresh makes (a known key, nothing in Earn, margin or
    # futures), as paths for ``limit_for``: exchanges.budget counts them against the venue's
    # per-IP limits to know how many refreshes a minute this server may send.
    refresh_paths: ClassVar[tuple[str, ...]] = ()
    # Per-IP limits that count every request to the venue besides the one ``limit_for`` gives its
    # path (e.g. a cap on all requests per IP every 5 s): the gate admits a request only when
    # each has room.
    traffic_limits: ClassVar[tuple[Limit, ...]] = ()

    # "How to create an HTX API key": the guide's title, linked from the dialog and every status.
    help_title: ClassVar[str] = ""

    def validate(self, credentials: Credentials) -> dict[str, str]:
        """Format checks before any network call: {field name: message} for what is wrong, the
        field names being those of ``credential_fields`` ("access_key", "secret_key", ...), or
        "__all__" for a problem of the pair."""
        return {}

    def limit_for(self, path: str) -> Limit:
        raise NotImplementedError

    def client(
        self,
        *,
        base_url: str,
        credentials: Credentials | None,
        timeout: tuple[float, float],
        gate: Any = None,
        scope: str = "",
    ) -> VenueClient:
        """A client for ``credentials`` (None: public calls only). ``gate`` admits each
        request (``kit.gate.Gate``); ``scope`` names whose limits signed calls count against."""
        raise NotImplementedError

    def redact(self, text: str) -> str:
        """Strip this venue's signing parameters and key headers from a log line."""
        return text

    # The venue's sandbox (tests, ``make demo``, benchmarks): a class of ``kit.sandbox``.
    def sandbox(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def demo_keys(self) -> list[tuple[str, str, str]]:
        """(API Key, Secret Key, what it is) of the sandbox's demo keys: its accounts, each with
        a "secret" and a "note" (a sandbox opens no socket until it is started)."""
        accounts = self.sandbox().accounts
        return [
            (key, str(entry.get("secret", "")), str(entry.get("note", ""))) for key, entry in accounts.items()
        ]

    # Which demo key plays which part in the contract suite (tests/venues/test_contract.py):
    # scenario -> the start of its note. Scenarios: good, withdraw, read_only, ip_elsewhere,
    # ip_bound_here, expired (the key, or only its trading right).
    demo_scenarios: ClassVar[Mapping[str, str]] = {}

    def demo_key(self, scenario: str) -> tuple[str, str]:
        """(API Key, Secret Key) of the demo key playing ``scenario``."""
        credentials = self.demo_credentials(scenario)
        return credentials.api_key, credentials.secret

    def demo_credentials(self, scenario: str) -> Credentials:
        """Every credential of the demo key playing ``scenario``: its API Key and Secret Key, and
        the extra fields the venue asks for (a passphrase, the site) from its sandbox entry."""
        prefix = self.demo_scenarios[scenario].lower()
        extras = [
            spec.name for spec in self.credential_fields if spec.name not in ("access_key", "secret_key")
        ]
        for api_key, entry in self.sandbox().accounts.items():
            if str(entry.get("note", "")).lower().startswith(prefix):
                extra = {name: str(entry[name]) for name in extras if entry.get(name)}
                return Credentials(api_key, str(entry.get("secret", "")), extra)
        raise LookupError(f"{self.id} has no demo key for {scenario!r}")

    def __repr__(self) -> str:
        return f"<Venue {self.id}>"
