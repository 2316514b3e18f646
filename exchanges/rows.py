"""Writes of many rows at once on the refresh path, where compiling Django's query costs more
than running it (``bulk_update`` builds a CASE per field and row: ~9 ms for a batch of 20). All
work on PostgreSQL and SQLite (3.35+), through Django's own field adapters or shortcuts that give
the same values (``_preparer``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from django.db import connections, router
from django.db.models import DateTimeField, Field, IntegerField, Model, QuerySet
from django.db.models.sql import UpdateQuery


def update_returning_pks(queryset: QuerySet, **values) -> list:
    """``queryset.update(**values)``, returning the primary keys of the rows it changed (Django's
    update returns only a count): UPDATE ... RETURNING."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    using = router.db_for_write(queryset.model)
    connection = connections[using]
    sql, params = query.get_compiler(using).as_sql()
    pk = connection.ops.quote_name(queryset.model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {pk}", params)
        return [row[0] for row in cursor.fetchall()]


def update_each(objects: Sequence[Model], field_names: Sequence[str]) -> None:
    """Write ``field_names`` of each object to its row: one UPDATE by primary key, sent for all
    of them with ``executemany`` (one round trip on PostgreSQL, in a pipeline, its parameters
    bound by the server: ``_bound_cursor``). Like ``bulk_update``, no signals and no
    ``auto_now``: the caller sets such fields itself."""
    if not objects:
        return
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in field_names]
    pk = model._meta.pk
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET "
        + ", ".join(f"{quote(field.column)} = %s" for field in fields)
        + f" WHERE {quote(pk.column)} = %s"
    )
    named = list(zip([field.attname for field in fields], _preparers(fields, connection), strict=True))
    rows = [[prepare(getattr(obj, name)) for name, prepare in named] + [obj.pk] for obj in objects]
    with _bound_cursor(connection) as cursor:
        cursor.executemany(sql, rows)


@contextmanager
def _bound_cursor(connection) -> Iterator:
    """A cursor of ``connection`` (Django's, wrapped as any: its queries are logged and counted)
    that on PostgreSQL sends the parameters apart from the statement. Django's psycopg cursors
    bind them on the client, quoting every value into the SQL text in Python: for one UPDATE
    of 24 values sent for 40 rows, twice the CPU of letting the server bind them (measured with
    psycopg 3.3: 6.2-7.0 against 3.7-4.0 ms). Statements are not prepared (Django sets no
    prepare threshold), so a pooler in transaction mode sees nothing new."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = connection.connection
    factory, raw.cursor_factory = raw.cursor_factory, ServerBindingCursor
    try:
        cursor = connection.cursor()
    finally:
        raw.cursor_factory = factory
    with cursor:
        yield cursor


def insert(
    model: type[Model], rows: Sequence[dict], *, returning_pks: bool = False, chunk: int = 500
) -> list:
    """INSERT ``rows`` (dicts of field name -> value, all with the same names) without building a
    model instance per row as ``bulk_create`` does. Defaults and ``auto_now_add`` are not
    applied: give every value. Returns the new primary keys, in the order of ``rows``, when
    ``returning_pks``.

    On PostgreSQL the rows go in with one COPY (a seventh of the CPU of an INSERT per row, which
    psycopg binds in Python), their keys taken from the table's sequence first when asked for;
    elsewhere, multi-row VALUES."""
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in rows[0]]
    named = list(zip(rows[0], _preparers(fields, connection), strict=True))
    values = [[prepare(row[name]) for name, prepare in named] for row in rows]
    if connection.vendor == "postgresql":
        return _copy(connection, model, fields, values, returning_pks)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    head = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES "
    tail = f" RETURNING {quote(model._meta.pk.column)}" if returning_pks else ""
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    pks: list = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            cursor.execute(head + ", ".join([one] * len(part)) + tail, [v for row in part for v in row])
            if returning_pks:
                pks.extend(row[0] for row in cursor.fetchall())
    return pks


def _copy(connection, model: type[Model], fields: list[Field], values: list[list], returning: bool) -> list:
    quote = connection.ops.quote_name
    table, pk = model._meta.db_table, model._meta.pk.column
    columns = [quote(field.column) for field in fields]
    pks: list = []
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if returning:
            # Keys drawn from the table's own sequence, as an INSERT would draw them.
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [quote(table), pk, len(values)],
            )
            pks = sorted(row[0] for row in cursor.fetchall())
            columns.append(quote(pk))
            values = [[*row, key] for row, key in zip(values, pks, strict=True)]
        with cursor.copy(f"COPY {quote(table)} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
    return pks


def _preparers(fields, connection) -> list:
    """Per field, what turns a value into the parameter Django sends for it: hundreds of values
    per batch, so the common values skip Django's layers of calls where the result is the same.
    Fields that adapt nothing per database (text, numbers, ExactDecimalField) use their own
    ``get_prep_value``; a key (an int, None, or a related object standing for its primary key)
    goes as it is; on PostgreSQL, so does an aware datetime (what Django would send). Anything
    else takes Django's own ``get_db_prep_save``."""
    return [_preparer(field, connection) for field in fields]


def _preparer(field: Field, connection):
    def django(value):
        return field.get_db_prep_save(value.pk if isinstance(value, Model) else value, connection)

    plain = not field.is_relation and type(field).get_db_prep_value is Field.get_db_prep_value
    if plain and type(field).get_db_prep_save is Field.get_db_prep_save:
        return field.get_prep_value
    if field.many_to_one and isinstance(field.target_field, IntegerField):  # auto keys included

        def key(value):
            if isinstance(value, Model):
                value = value.pk
            return value if value is None or type(value) is int else django(value)

        return key
    if isinstance(field, DateTimeField) and connection.vendor == "postgresql":

        def moment(value):
            aware = value is None or (type(value) is datetime and value.tzinfo is not None)
            return value if aware else django(value)

        return moment
    return django
