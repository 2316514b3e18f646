"""The worker's check of a key with its venue: verifying a new key, refreshing a connected one,
and installing a replacement key. Workers call ``connection_check`` with ids; venues are only
ever called from here, never while rendering a page.

One routine serves verify and refresh: every check re-reads what the venue says about the key
(so a key that gained Withdraw permission is caught) and then its balances. It speaks only the
venue protocol (``exchanges.venues.kit``): which exchange it is does not matter here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from django.db import IntegrityError, transaction

from accounts.models import SecurityEvent
from accounts.services import security_log
from alerts import conditions as alerts

from . import recording, venue_state
from .claims import claim, release, still_ours
from .explain import KEY_IN_ANOTHER_ACCOUNT, KEY_IN_YOUR_ACCOUNT, explain
from .models import PENDING_KEY_FIELDS, ConnectionEvent, ExchangeConnection, Status
from .valuation import Valuation, value_lines
from .venues.kit.errors import ErrorKind, VenueError
from .venues.kit.gate import GateUnavailable
from .venues.kit.types import KeyFacts, Prior
from .venues.kit.venue import Venue, VenueClient

logger = logging.getLogger(__name__)

# Statuses whose balances are read: a key whose trading right expired still reads.
READS_BALANCES = (Status.CONNECTED, Status.TRADING_EXPIRED)


@dataclass(frozen=True, slots=True)
class BalanceReport:
    valuation: Valuation
    unread: list[dict]


# A refresh that changed nothing but the balances, written later with others of its batch.
PlainRefresh = tuple[ExchangeConnection, KeyFacts, BalanceReport]


def status_from_facts(facts: KeyFacts) -> tuple[str, str]:
    """Decide from the venue's description of the key; withdraw is checked first and always
    refused."""
    if facts.can_withdraw:
        return Status.WITHDRAW_ENABLED, ""
    if not facts.known:
        return Status.CONNECTED, ""
    if facts.key_expired:
        return Status.EXPIRED, ErrorKind.KEY_EXPIRED
    if not facts.can_read:
        return Status.INCORRECT_PERMISSIONS, ""
    if not facts.can_trade:
        return (Status.TRADING_EXPIRED if facts.trading_expired else Status.INCORRECT_PERMISSIONS), ""
    return Status.CONNECTED, ""


def inspect_key(venue: Venue, client: VenueClient, prior: Prior) -> KeyFacts:
    venue_state.sync_clock(venue, client)
    try:
        return client.inspect_key(prior)
    except VenueError as error:
        if error.kind == ErrorKind.INVALID_TIMESTAMP:
            venue_state.forget_clock(venue)
        raise


def read_balances(venue: Venue, client: VenueClient, facts: KeyFacts, site: str = "") -> BalanceReport:
    read = client.read_balances(facts)
    table = venue_state.prices(venue, client, facts.site or site)
    return BalanceReport(value_lines(read, table), list(read.unread))


def connection_check(*, connection_id: int) -> str | None:
    """Check a key with its venue and read its balances. Returns the new status, or None when
    another worker had it or there was nothing to do."""
    connection = claim(connection_id)
    if connection is None:
        return None
    try:
        return check_claimed(connection)
    finally:
        venue_state.settle_gates()


def check_claimed(connection: ExchangeConnection, plain: list[PlainRefresh] | None = None) -> str | None:
    """The check of a row this worker claimed. With ``plain``, a plain refresh is added to it for
    the caller to write with others (``recording.record_refreshes``, exchanges.batches) instead
    of being written here; the status returned is then None."""
    if connection.replacing:
        return _check_replacement(connection)
    venue = connection.venue
    prior = Prior(
        account_uid=connection.account_uid or None,
        described=bool(connection.account_uid),
        key_expires_at=connection.key_expires_at,
        kept=connection.venue_kept,
    )
    in_use = ""
    try:
        with venue_state.client_for(connection, interactive=user_waiting(connection)) as client:
            facts = inspect_key(venue, client, prior)
            status, kind = status_from_facts(facts)
            if not connection.established and status != Status.WITHDRAW_ENABLED:
                in_use = held_elsewhere(connection, connection.access_key_fingerprint)
            reads = status in READS_BALANCES and not in_use
            balances = read_balances(venue, client, facts, connection.site) if reads else None
    except (GateUnavailable, redis.RedisError):
        # Redis (our broker too) did not answer, or every slot to the venue stayed taken: the
        # venue was not asked, so nothing is known about the key. Let go of the row at once (its
        # status stays as it was); the sweeper queues it again.
        release(connection)
        logger.warning("No admission to %s; connection %s left for the next sweep", venue.name, connection.pk)
        return None
    except VenueError as error:
        # A swapped pair is not probed by trying it the other way round: when the API Key is
        # merely wrong, that probe would send the real secret to the venue as the key.
        return recording.record_failure(connection, error)
    if in_use:
        return recording.refuse_key_in_use(connection, in_use)
    if plain is not None and recording.plain_refresh(connection, facts, status, kind, balances):
        plain.append((connection, facts, balances))
        return None
    token = connection.claimed_until
    try:
        return recording.record_key(connection, facts, status, kind, balances)
    except IntegrityError:
        # Another submission of this key was accepted a moment before this one. Nothing of this
        # check was written; start again from the row as stored, under the same claim.
        connection.refresh_from_db()
        connection.claimed_until = token
        in_use = held_elsewhere(connection, connection.access_key_fingerprint)
        return recording.refuse_key_in_use(connection, in_use or KEY_IN_ANOTHER_ACCOUNT)


def user_waiting(connection: ExchangeConnection) -> bool:
    """Someone is watching this check: a key not yet working (its dialog polls), a "Refresh now",
    a replacement. Its requests may use the slots the gate keeps for them (kit.gate)."""
    return not connection.established or connection.refreshing or connection.replacing


def held_elsewhere(connection: ExchangeConnection, fingerprint: str | None) -> str:
    """Whether another connection already uses this key (one the venue accepted), as the error
    kind to tell: the user's own, or another account's; "" if none.

    Asked only once the venue has accepted the signature, so "already connected" is told to
    whoever holds the secret and never to someone who merely has the API Key (the form says
    nothing about other accounts)."""
    owner_id = (
        ExchangeConnection.objects.filter(
            exchange=connection.exchange, access_key_fingerprint=fingerprint, established=True
        )
        .exclude(pk=connection.pk)
        .values_list("owner_id", flat=True)
        .first()
    )
    if owner_id is None:
        return ""
    return KEY_IN_YOUR_ACCOUNT if owner_id == connection.owner_id else KEY_IN_ANOTHER_ACCOUNT


def _check_replacement(connection: ExchangeConnection) -> str | None:
    """Check the new key with the venue before it replaces the current one. It must be a working
    key of the same account; otherwise it is discarded and the current key stays in place."""
    venue = connection.venue
    try:
        with venue_state.client_for(connection, pending=True, interactive=True) as client:
            facts = inspect_key(venue, client, Prior(described=True))
            status, kind = status_from_facts(facts)
            if status != Status.CONNECTED:
                return recording.refuse_replacement(connection, _refusal(explain(status, kind, venue=venue)))
            in_use = held_elsewhere(connection, connection.pending_fingerprint)
            if in_use:
                return recording.refuse_replacement(connection, _refusal(explain("", in_use, venue=venue)))
            if not connection.account_uid or facts.account_uid != connection.account_uid:
                reason = _other_account(venue, connection.account_uid, facts.account_uid)
                return recording.refuse_replacement(connection, reason)
            balances = read_balances(venue, client, facts, connection.site)
    except (GateUnavailable, redis.RedisError):
        release(connection)
        return None
    except VenueError as error:
        recording.remember_seen_address(connection, error)
        if not error.permanent:
            # The venue unreachable or busy: keep the new key and try again (the sweeper
            # re-queues it).
            release(connection)
            return connection.status
        said = explain("", error.kind, venue=venue)
        return recording.refuse_replacement(connection, _refusal(said, error.detail))
    new_key = connection.pending_access_key
    old_masked = connection.masked_access_key
    try:
        with transaction.atomic():
            if not still_ours(connection):
                return None
            # The old secret is destroyed here, in the same write that installs the new one.
            ExchangeConnection.objects.filter(pk=connection.pk).update(
                access_key=new_key,
                secret_key=connection.pending_secret_key,
                passphrase=connection.pending_passphrase,
                access_key_fingerprint=connection.pending_fingerprint,
                access_key_head=new_key[:4],
                access_key_tail=new_key[-4:],
                pending_access_key=None,
                pending_secret_key=None,
                pending_passphrase=None,
                pending_fingerprint=None,
            )
            connection.refresh_from_db(fields=[*recording.KEY_FIELDS, *PENDING_KEY_FIELDS])
            security_log(
                user=connection.owner,
                kind=SecurityEvent.Kind.KEY_REPLACED,
                detail=f"{old_masked} → {connection.masked_access_key}",
            )
            ConnectionEvent.objects.create(
                connection=connection,
                status=connection.status,
                message=f"Key replaced by {connection.masked_access_key}",
            )
            alerts.key_replaced(connection, old_masked)
    except IntegrityError:  # the same key was connected elsewhere meanwhile
        in_use = held_elsewhere(connection, connection.pending_fingerprint) or KEY_IN_ANOTHER_ACCOUNT
        return recording.refuse_replacement(connection, explain("", in_use, venue=venue).title + ".")
    return recording.record_key(connection, facts, status, kind, balances)


def _refusal(said, detail: str = "") -> str:
    """Why a replacement key was refused and what to do, as a new key's refusal says it."""
    title = f"{said.title} ({detail})" if detail else said.title
    return f"{title}. {said.cause} What to do: {said.fix}" if said.fix else f"{title}. {said.cause}"


def _other_account(venue: Venue, current: str | None, new: str | None) -> str:
    if not current or not new:
        return (
            f"{venue.name} does not tell us which account this key or the current one belongs to "
            "(sub-user keys), so it cannot replace it safely. Remove this connection and connect "
            "the new key instead."
        )
    return (
        f"The new key belongs to {venue.name} account {new}, not to account {current} of this "
        "connection. Connect it as a new exchange instead."
    )
