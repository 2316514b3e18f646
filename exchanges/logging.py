from __future__ import annotations

import logging

from . import registry


class RedactSigningParams(logging.Filter):
    """Blank every venue's signing parameters and key headers (HTX's AccessKeyId/Signature,
    and each venue's own, see Venue.redact) in any record that carries them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = message
        for venue in registry.venues():
            cleaned = venue.redact(cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
