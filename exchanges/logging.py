from __future__ import annotations

import logging

from exchanges.venues.htx.client import redact


class RedactSigningParams(logging.Filter):
    """Blank AccessKeyId/Signature in any record that carries a signed HTX URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
