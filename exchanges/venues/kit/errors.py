"""One family of errors for everything that can go wrong talking to an exchange.

Each error has a neutral ``kind`` (what went wrong, decoded by the venue from its own codes) and
says whether it is ``permanent`` (retrying with the same key cannot help) or transient (retry
with backoff). The raw code and message are kept for a "details" disclosure; they never contain
a secret. ``retry_after`` is the exchange's own word on when to try again (seconds), if any.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID_ACCESS_KEY = "invalid_access_key"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_TIMESTAMP = "invalid_timestamp"
    IP_NOT_ALLOWED = "ip_not_allowed"
    NO_PERMISSION = "no_permission"
    KEY_EXPIRED = "key_expired"
    FORBIDDEN = "forbidden"
    LOGIN_REQUIRED = "login_required"
    INVALID_PASSPHRASE = "invalid_passphrase"  # the key's passphrase (a third credential) is wrong
    # A key of another environment (a demo-trading key on the live API, or the reverse).
    WRONG_ENVIRONMENT = "wrong_environment"
    # The exchange says only "wrong key, or IP not allowed, or missing permission" (one code for
    # all three): the text names all three causes.
    KEY_IP_OR_PERMISSION = "key_ip_or_permission"
    # The exchange refuses to serve this server's location (e.g. HTTP 451).
    RESTRICTED_LOCATION = "restricted_location"
    RATE_LIMITED = "rate_limited"
    MAINTENANCE = "maintenance"
    UNAVAILABLE = "unavailable"  # network error, timeout, HTTP 5xx, unreadable answer
    UNKNOWN = "unknown"


# Retrying can help. An unrecognised answer counts as transient: failing safe means never
# calling a key bad (and discarding it) on the strength of an answer we do not understand.
# A restricted location is not the key's fault: the key is kept and tried again later.
TRANSIENT_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.MAINTENANCE,
        ErrorKind.UNAVAILABLE,
        ErrorKind.INVALID_TIMESTAMP,
        ErrorKind.RESTRICTED_LOCATION,
        ErrorKind.UNKNOWN,
    }
)


class GateUnavailable(Exception):
    """Redis could not be asked: the request is not sent (the cap is a promise, not a hint)."""


class GateBusy(GateUnavailable):
    """No slot within the gate's wait (the cap, this scope's share of a limit, or a ban): the
    request is not sent. Nothing is known about the key, so a check gives the row back for a
    later sweep instead of reporting a status."""


class VenueError(Exception):
    venue = "exchange"  # each venue's subclass names itself (HtxError: "HTX")

    def __init__(
        self,
        kind: ErrorKind,
        *,
        code: str = "",
        message: str = "",
        path: str = "",
        retry_after: float | None = None,
    ):
        self.kind = kind
        self.code = str(code)
        self.message = message
        self.path = path
        self.retry_after = retry_after
        super().__init__(f"{self.venue} {path or 'call'} failed: {kind} ({self.code}: {message})")

    @property
    def permanent(self) -> bool:
        return self.kind not in TRANSIENT_KINDS

    @property
    def detail(self) -> str:
        """The exchange's raw answer, for a details disclosure and the log."""
        return f"{self.code}: {self.message}" if self.code else self.message
