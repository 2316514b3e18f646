"""Balance history kept to its retention rules (SNAPSHOT_HOURLY_DAYS, SNAPSHOT_DAILY_DAYS), by
the hourly beat task ``exchanges.tasks.prune_snapshots``: set-based SQL whose cost follows what
it deletes, not what it keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection as db
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .models import BalanceLine, BalanceSnapshot, ExchangeConnection, SnapshotPruneMark

# Snapshots deleted per transaction, and the most buckets looked up one by one before a prune
# ranks every snapshot older than a day instead.
PRUNE_BATCH = 5000
PRUNE_BUCKETS_MAX = 500
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def snapshots_prune(*, now: datetime | None = None) -> int:
    """Keep every snapshot of the last day, one an hour for SNAPSHOT_HOURLY_DAYS, one a day for
    SNAPSHOT_DAILY_DAYS, none older; a connection's latest snapshot is always kept (and takes no
    bucket's place). The one kept in a bucket (connection, UTC hour or day) is its newest.

    Set-based: one SQL query ranks the snapshots of each bucket newest first (ROW_NUMBER) and
    returns the ones after the first, plus every snapshot older than SNAPSHOT_DAILY_DAYS; they and
    their lines are deleted by id, PRUNE_BATCH at a time. The buckets ranked are only those whose
    contents may have changed since the last prune (SnapshotPruneMark): the hours that aged past
    a day and the days that aged past SNAPSHOT_HOURLY_DAYS since then, the buckets of snapshots
    that arrived since with an older taken_at, and of snapshots that were then a connection's
    latest and no longer are. Every other bucket was thinned then and holds one snapshot, so an
    hourly prune reads about what it deletes. Without a mark (the first prune), when the settings
    changed, when `now` is before the last prune's, or with more than PRUNE_BUCKETS_MAX buckets
    to look up, every snapshot older than a day is ranked."""
    now = now or timezone.now()
    hourly_days, daily_days = settings.SNAPSHOT_HOURLY_DAYS, settings.SNAPSHOT_DAILY_DAYS
    keep_all_after = now - DAY
    hourly_after = now - timedelta(days=hourly_days)
    daily_after = now - timedelta(days=daily_days)
    mark = SnapshotPruneMark.objects.filter(pk=1).first()
    max_id = BalanceSnapshot.objects.aggregate(m=Max("pk"))["m"] or 0
    protected = list(
        ExchangeConnection.objects.filter(latest_snapshot__taken_at__lt=keep_all_after).values_list(
            "latest_snapshot_id", flat=True
        )
    )
    ranges = None  # None: rank every snapshot older than a day
    if mark and (mark.hourly_days, mark.daily_days) == (hourly_days, daily_days) and mark.pruned_at <= now:
        ranges = _ranges_to_rank(mark, now, max_id, keep_all_after, hourly_after, daily_after)
    doomed = _prunable(ranges, keep_all_after, hourly_after, daily_after)
    deleted = _delete_snapshots(doomed)
    SnapshotPruneMark.objects.update_or_create(
        pk=1,
        defaults={
            "pruned_at": now,
            "max_snapshot_id": max_id,
            "hourly_days": hourly_days,
            "daily_days": daily_days,
            "protected": protected,
        },
    )
    return deleted


def _floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _floor_day(t: datetime) -> datetime:
    return _floor_hour(t).replace(hour=0)


def _ranges_to_rank(mark, now, max_id, keep_all_after, hourly_after, daily_after):
    """The (connection id or None, from, to) taken_at ranges whose buckets may hold more than one
    snapshot since `mark`'s prune, each range made of whole buckets; None when there are too many
    to look up one by one."""
    then_keep_all_after = mark.pruned_at - DAY
    then_hourly_after = mark.pruned_at - timedelta(days=mark.hourly_days)
    ranges = [
        # Aged past a day since: the hour the boundary was in then, and every hour after it.
        (None, _floor_hour(then_keep_all_after), keep_all_after),
        # Aged past SNAPSHOT_HOURLY_DAYS since (or past a day, into days, if that is 0).
        (None, _floor_day(min(then_hourly_after, then_keep_all_after)), hourly_after),
    ]
    stray = BalanceSnapshot.objects.filter(  # arrived since, with an older taken_at
        pk__gt=mark.max_snapshot_id, pk__lte=max_id, taken_at__lt=keep_all_after, taken_at__gte=daily_after
    ).values_list("connection_id", "taken_at")
    rows = list(stray[: PRUNE_BUCKETS_MAX + 1])
    if len(rows) > PRUNE_BUCKETS_MAX:
        return None
    if mark.protected:  # were latest then (so left out of their bucket), are no longer
        latest = set(
            ExchangeConnection.objects.exclude(latest_snapshot=None).values_list("latest_snapshot", flat=True)
        )
        released = [pk for pk in mark.protected if pk not in latest]
        for start in range(0, len(released), 500):
            rows += BalanceSnapshot.objects.filter(
                pk__in=released[start : start + 500], taken_at__lt=keep_all_after, taken_at__gte=daily_after
            ).values_list("connection_id", "taken_at")
    buckets = set()
    for connection_id, taken_at in rows:
        if taken_at >= hourly_after:  # the hour, as far as it is in the hourly range
            start = _floor_hour(taken_at)
            buckets.add((connection_id, max(start, hourly_after), min(start + HOUR, keep_all_after)))
        else:  # the day, as far as it is in the daily range
            start = _floor_day(taken_at)
            buckets.add((connection_id, max(start, daily_after), min(start + DAY, hourly_after)))
    if len(buckets) > PRUNE_BUCKETS_MAX:
        return None
    return ranges + sorted(buckets)


def _prunable(ranges, keep_all_after, hourly_after, daily_after) -> list[int]:
    """Ids of the snapshots the retention rules drop: in the given taken_at ranges (or anywhere
    older than a day when `ranges` is None) those after the newest of their bucket, and every one
    older than `daily_after`; never a connection's latest."""
    vendor = db.vendor
    adapt = db.ops.adapt_datetimefield_value
    snapshots = BalanceSnapshot._meta.db_table
    not_latest = (
        f"NOT EXISTS (SELECT 1 FROM {ExchangeConnection._meta.db_table} c WHERE c.latest_snapshot_id = s.id)"
    )
    if vendor == "postgresql":
        bucket = (
            "date_trunc(CASE WHEN s.taken_at >= %s THEN 'hour' ELSE 'day' END, s.taken_at AT TIME ZONE 'UTC')"  # noqa: E501
        )
    elif vendor == "sqlite":  # taken_at is stored as text in UTC: 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        bucket = "substr(s.taken_at, 1, CASE WHEN s.taken_at >= %s THEN 13 ELSE 10 END)"
    else:
        raise NotImplementedError(f"snapshots_prune has no SQL for {vendor}")
    where, where_params = "", []
    if ranges is not None:
        parts = []
        for connection_id, start, end in ranges:
            if start >= end:
                continue
            if connection_id is None:
                parts.append("(s.taken_at >= %s AND s.taken_at < %s)")
            else:
                parts.append("(s.connection_id = %s AND s.taken_at >= %s AND s.taken_at < %s)")
                where_params.append(connection_id)
            where_params += [adapt(start), adapt(end)]
        where = f"AND ({' OR '.join(parts) or '1 = 0'})"
    # Partitioned by connection, range (hourly or daily) and UTC hour or day; newest first.
    sql = f"""
        SELECT id FROM (
            SELECT s.id, ROW_NUMBER() OVER (
                PARTITION BY s.connection_id, s.taken_at >= %s, {bucket}
                ORDER BY s.taken_at DESC, s.id DESC
            ) AS n
            FROM {snapshots} s
            WHERE s.taken_at >= %s AND s.taken_at < %s {where} AND {not_latest}
        ) ranked WHERE n > 1
        UNION ALL
        SELECT s.id FROM {snapshots} s WHERE s.taken_at < %s AND {not_latest}
    """
    params = [adapt(hourly_after), adapt(hourly_after), adapt(daily_after), adapt(keep_all_after)]
    params += [*where_params, adapt(daily_after)]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _delete_snapshots(ids: list[int]) -> int:
    """Delete these snapshots and their lines with two DELETEs per batch (not through Django's
    collector, which would load every snapshot); a connection's latest is never deleted."""
    lines, snapshots = BalanceLine._meta.db_table, BalanceSnapshot._meta.db_table
    connections = ExchangeConnection._meta.db_table
    guard = f"NOT EXISTS (SELECT 1 FROM {connections} c WHERE c.latest_snapshot_id = {{}})"
    size = min(PRUNE_BATCH, db.features.max_query_params or PRUNE_BATCH)
    deleted = 0
    with db.cursor() as cursor:
        for start in range(0, len(ids), size):
            batch = ids[start : start + size]
            if db.vendor == "postgresql":
                match, params = "= ANY(%s)", [batch]
            else:
                match, params = f"IN ({', '.join(['%s'] * len(batch))})", batch
            with transaction.atomic():
                cursor.execute(
                    f"DELETE FROM {lines} WHERE snapshot_id {match} AND {guard.format('snapshot_id')}", params
                )
                cursor.execute(
                    f"DELETE FROM {snapshots} WHERE id {match} AND {guard.format(snapshots + '.id')}", params
                )
                deleted += cursor.rowcount
    return deleted
