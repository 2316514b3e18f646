"""One family of errors for everything that can go wrong talking to HTX.

Each error has a ``kind`` (what went wrong, decoded from HTX's vague codes) and says whether it
is ``permanent`` (retrying with the same key cannot help) or transient (retry with backoff).
The raw HTX code and message are kept for a "details" disclosure; they never contain the secret.
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
    RATE_LIMITED = "rate_limited"
    MAINTENANCE = "maintenance"
    UNAVAILABLE = "unavailable"  # network error, timeout, HTTP 5xx, unreadable answer
    UNKNOWN = "unknown"


# Retrying can help. An unrecognised answer counts as transient: failing safe means never
# calling a key bad (and discarding it) on the strength of an answer we do not understand.
TRANSIENT_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.MAINTENANCE,
        ErrorKind.UNAVAILABLE,
        ErrorKind.INVALID_TIMESTAMP,
        ErrorKind.UNKNOWN,
    }
)


class HtxError(Exception):
    def __init__(self, kind: ErrorKind, *, code: str = "", message: str = "", path: str = ""):
        self.kind = kind
        self.code = str(code)
        self.message = message
        self.path = path
        super().__init__(f"HTX {path or 'call'} failed: {kind} ({self.code}: {message})")

    @property
    def permanent(self) -> bool:
        return self.kind not in TRANSIENT_KINDS

    @property
    def detail(self) -> str:
        """Raw HTX answer for a details disclosure and the log."""
        return f"{self.code}: {self.message}" if self.code else self.message


# Substrings of err-msg for api-signature-not-valid, the code HTX uses for most auth failures.
# Order matters: the first match wins. See shared/htx-api.md §5.2.
_SIGNATURE_MESSAGES: tuple[tuple[str, ErrorKind], ...] = (
    ("incorrect access key", ErrorKind.INVALID_ACCESS_KEY),
    ("submission time", ErrorKind.INVALID_TIMESTAMP),
    ("time format", ErrorKind.INVALID_TIMESTAMP),
    ("ip address", ErrorKind.IP_NOT_ALLOWED),
    ("ip地址", ErrorKind.IP_NOT_ALLOWED),
    ("no permission", ErrorKind.NO_PERMISSION),
    ("expired", ErrorKind.KEY_EXPIRED),
    ("verification failure", ErrorKind.INVALID_SIGNATURE),
    ("校验失败", ErrorKind.INVALID_SIGNATURE),
)

_CODES: dict[str, ErrorKind] = {
    "api-signature-check-failed": ErrorKind.INVALID_SIGNATURE,
    "1003": ErrorKind.INVALID_SIGNATURE,
    "403": ErrorKind.INVALID_ACCESS_KEY,
    "1002": ErrorKind.FORBIDDEN,
    # The key cannot see that account (wrong id, or uid and account id mixed up).
    "account-get-balance-account-inexistent-error": ErrorKind.FORBIDDEN,
    "2000": ErrorKind.IP_NOT_ALLOWED,
    "12004": ErrorKind.KEY_EXPIRED,
    "12005": ErrorKind.IP_NOT_ALLOWED,
    "login-required": ErrorKind.LOGIN_REQUIRED,
    "base-request-exceed-frequency-limit": ErrorKind.RATE_LIMITED,
    "rate-too-many-requests": ErrorKind.RATE_LIMITED,
    "frequent-invoke": ErrorKind.RATE_LIMITED,
    "1006": ErrorKind.RATE_LIMITED,
    "510": ErrorKind.RATE_LIMITED,
    "40403": ErrorKind.RATE_LIMITED,
    "system-maintenance": ErrorKind.MAINTENANCE,
    "gateway-internal-error": ErrorKind.UNAVAILABLE,
    "timeout": ErrorKind.UNAVAILABLE,
}


def classify(code: str, message: str) -> ErrorKind:
    code = str(code)
    lowered = message.lower()
    if code == "api-signature-not-valid":
        for needle, kind in _SIGNATURE_MESSAGES:
            if needle in lowered:
                return kind
        # Unrecognised wording of HTX's catch-all auth code: not a verdict on the key (which
        # would destroy it); retried like any answer we do not understand.
        return ErrorKind.UNKNOWN
    if "request limit" in lowered:
        return ErrorKind.RATE_LIMITED
    if "api key has no permission" in lowered:
        return ErrorKind.NO_PERMISSION
    return _CODES.get(code, ErrorKind.UNKNOWN)
