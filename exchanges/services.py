"""Writes a user asks for: connecting a key, replacing, renaming, refreshing, removing.

Checking keys with the exchange is the worker's job, in ``exchanges.keycheck``; nothing here
calls an exchange.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables

from accounts.models import SecurityEvent
from accounts.services import security_log
from alerts import conditions as alerts

from .dispatch import enqueue_check
from .models import (
    PENDING_KEY_FIELDS,
    ConnectionEvent,
    ExchangeConnection,
    Status,
)


class NoKeyError(Exception):
    """The connection holds no key (it was destroyed): replace the key first."""


class ConnectionInUseError(Exception):
    """A working connection cannot be dismissed; removing it is a deliberate action."""


class RefreshTooSoonError(Exception):
    def __init__(self, seconds_left: int):
        self.seconds_left = seconds_left
        super().__init__(f"refresh again in {seconds_left} s")


@sensitive_variables("access_key")
def access_key_fingerprint(access_key: str) -> str:
    """Keyed hash of an access key: finds duplicates without decrypting every row."""
    return salted_hmac(
        "exchanges.access_key", access_key, secret=settings.KEY_FINGERPRINT_SECRET, algorithm="sha256"
    ).hexdigest()


@sensitive_variables("access_key", "secret_key", "passphrase")
def connection_create(
    *,
    owner,
    exchange: str,
    label: str,
    access_key: str,
    secret_key: str,
    passphrase: str = "",
    site: str = "",
) -> ExchangeConnection:
    """Store a new key (encrypted) as Verifying and queue its check once committed.

    The form has already cleaned the input and refused a key of the user's own connections. A
    key another account uses is taken too: the worker says so once the venue has accepted it
    (keycheck), and never stores it twice.
    """
    with transaction.atomic():
        # Earlier failed attempts hold no key material; a new attempt replaces them.
        ExchangeConnection.objects.filter(
            owner=owner, established=False, access_key_fingerprint__isnull=True
        ).delete()
        connection = ExchangeConnection.objects.create(
            owner=owner,
            exchange=exchange,
            label=label,
            access_key=access_key,
            secret_key=secret_key,
            passphrase=passphrase or None,
            site=site,
            access_key_fingerprint=access_key_fingerprint(access_key),
            access_key_head=access_key[:4],
            access_key_tail=access_key[-4:],
            status=Status.VERIFYING,
        )
        ConnectionEvent.objects.create(
            connection=connection, status=Status.VERIFYING, message="Key submitted"
        )
        enqueue_check(connection.pk)
    return connection


def connection_dismiss(*, connection: ExchangeConnection) -> None:
    """Delete a connection that is not in use, with any key it still holds: a failed attempt,
    a first attempt still being retried (the user gives up on it), or a connection whose key
    was destroyed."""
    if connection.established and connection.has_keys:
        raise ConnectionInUseError
    with transaction.atomic():
        if connection.has_keys:
            security_log(
                user=connection.owner,
                kind=SecurityEvent.Kind.KEY_REMOVED,
                detail="a key still being checked, given up",
            )
        connection.delete()


def connection_rename(*, connection: ExchangeConnection, label: str) -> None:
    connection.label = label
    connection.save(update_fields=["label", "updated_at"])


def connection_remove(*, connection: ExchangeConnection) -> None:
    """Delete the connection with its keys, balances and history. The key itself still exists
    on the exchange: the page offers the link to delete it there too."""
    with transaction.atomic():
        security_log(
            user=connection.owner,
            kind=SecurityEvent.Kind.KEY_REMOVED,
            detail=f"{connection.display_name} {connection.masked_access_key}",
        )
        alerts.connection_removed(connection)
        connection.delete()


def connection_replacement_notice_dismiss(*, connection: ExchangeConnection) -> None:
    """The user has read why a replacement key was refused: stop showing it (the current key
    never changed). A replacement still being checked is left alone."""
    ExchangeConnection.objects.filter(pk=connection.pk, pending_fingerprint__isnull=True).update(
        replacement_error="", updated_at=timezone.now()
    )


def connection_refresh_now(*, connection: ExchangeConnection) -> None:
    """Queue a check now, at most once per REFRESH_NOW_MIN_SECONDS per connection."""
    if not connection.has_keys:
        raise NoKeyError
    now = timezone.now()
    last = max(filter(None, (connection.refresh_requested_at, connection.last_checked_at)), default=None)
    if last is not None:
        left = settings.REFRESH_NOW_MIN_SECONDS - (now - last).total_seconds()
        if left > 0:
            raise RefreshTooSoonError(int(left) + 1)
    with transaction.atomic():
        connection.refresh_requested_at = now
        connection.next_check_at = now
        connection.save(update_fields=["refresh_requested_at", "next_check_at", "updated_at"])
        enqueue_check(connection.pk)


@sensitive_variables("access_key", "secret_key", "passphrase")
def connection_replace_keys(
    *, connection: ExchangeConnection, access_key: str, secret_key: str, passphrase: str = ""
) -> None:
    """Hold a new key beside the current one until a worker has checked it."""
    with transaction.atomic():
        connection.pending_access_key = access_key
        connection.pending_secret_key = secret_key
        connection.pending_passphrase = passphrase or None
        connection.pending_fingerprint = access_key_fingerprint(access_key)
        connection.replacement_error = ""
        connection.save(update_fields=[*PENDING_KEY_FIELDS, "replacement_error", "updated_at"])
        # No part of the new key yet: until the exchange knows it, it may be a secret in the
        # wrong field.
        ConnectionEvent.objects.create(
            connection=connection,
            status=connection.status,
            message="New key submitted to replace the current one",
        )
        enqueue_check(connection.pk)
