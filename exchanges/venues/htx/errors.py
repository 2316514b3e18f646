"""HTX's errors decoded into the kit's neutral kinds (``exchanges.venues.kit.errors``).

HTX reports most auth failures as the same ``api-signature-not-valid`` code; only the message
tells them apart (htx-api.md §5.2).
"""

from __future__ import annotations

from exchanges.venues.kit.errors import TRANSIENT_KINDS, ErrorKind, VenueError

__all__ = ["TRANSIENT_KINDS", "ErrorKind", "HtxError", "classify"]


class HtxError(VenueError):
    venue = "HTX"


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
