"""Re-encrypt every stored key with the newest Fernet key.

Rotation without downtime: put the new key first in FERNET_KEYS (old ones after it: they still
decrypt), restart, run this command, then drop the old key from FERNET_KEYS.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from exchanges.models import ExchangeConnection

ENCRYPTED = ("access_key", "secret_key", "pending_access_key", "pending_secret_key")


class Command(BaseCommand):
    help = "Re-encrypt all stored API keys and secrets with the first key in FERNET_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options) -> None:
        done = 0
        ids = list(ExchangeConnection.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), batch_size):
            with transaction.atomic():
                rows = ExchangeConnection.objects.select_for_update().filter(
                    pk__in=ids[start : start + batch_size]
                )
                for row in rows.only("pk", *ENCRYPTED):
                    # Reading decrypts with any key in FERNET_KEYS; saving encrypts with the first.
                    row.save(update_fields=list(ENCRYPTED))
                    done += 1
        self.stdout.write(f"Re-encrypted {done} connection(s) with the newest key.")
