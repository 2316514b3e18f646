from __future__ import annotations

from decimal import Decimal

from django.db import models


class ExactDecimalField(models.CharField):
    """A Decimal stored as its exact text.

    HTX sends amounts with 18 decimals. SQLite's NUMERIC affinity turns such numbers into
    floats and loses digits, so amounts are stored as text on every database and always come
    back as the same Decimal. Sums are done in Python, never in SQL.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 80)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return None if value is None else Decimal(value)

    def to_python(self, value):
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(str(value))

    def get_prep_value(self, value):
        if value is None:
            return None
        return format(value if isinstance(value, Decimal) else Decimal(str(value)), "f")
