"""timestamptz values read in C (maestra/pg_timestamps.py) are exactly what
Django's own loader gives, and the loader stays in place for every cursor."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader

from maestra.pg_timestamps import UTCTimestamptzLoader, use_c_timestamps

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db]

TIMESTAMPTZ_OID = 1184

LITERALS = [
    "2030-01-15 10:00:00+00",
    "2030-01-15 10:00:00.004088+00",
    "2030-01-15 12:30:45.999999+02:30",  # another offset: shifted to UTC by the server
    "1970-01-01 00:00:00+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "2024-02-29 23:59:60+00",  # a leap second, which PostgreSQL rolls over
    "1900-06-30 23:59:59+00",
]


def _read(literals: list[str]) -> list:
    values = ", ".join(f"('{text}'::timestamptz)" for text in literals)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT v FROM (VALUES {values}) AS t(v)")
        return [row[0] for row in cursor.fetchall()]


def test_the_connection_reads_timestamps_in_c():
    connection.ensure_connection()
    assert connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, 0) is UTCTimestamptzLoader
    with connection.cursor() as cursor:
        # Django re-registers its own loader on a cursor whose loader's
        # time zone differs from the connection's: ours must stay.
        assert cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, 0) is UTCTimestamptzLoader


def test_values_equal_djangos_loader_value_for_value():
    ours = _read(LITERALS)
    connection.ensure_connection()
    # Django's own loader on a cursor of the same connection.
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)
        values = ", ".join(f"('{text}'::timestamptz)" for text in LITERALS)
        cursor.execute(f"SELECT v FROM (VALUES {values}) AS t(v)")
        djangos = [row[0] for row in cursor.fetchall()]
    assert ours == djangos
    for value, reference in zip(ours, djangos, strict=True):
        assert value.tzinfo is datetime.UTC is reference.tzinfo
        assert (value.year, value.microsecond) == (reference.year, reference.microsecond)
    assert ours[2] == datetime.datetime(2030, 1, 15, 10, 0, 45, 999999, tzinfo=datetime.UTC)


def test_orm_rows_come_back_aware_in_utc(django_user_model):
    user = django_user_model.objects.create(username="tz")
    joined = django_user_model.objects.values_list("date_joined", flat=True).get(pk=user.pk)
    assert joined.tzinfo is datetime.UTC
    assert joined == user.date_joined


def test_null_and_infinity_behave_as_before():
    with connection.cursor() as cursor:
        cursor.execute("SELECT NULL::timestamptz")
        assert cursor.fetchone() == (None,)
    from django.db import DataError

    with pytest.raises(DataError), connection.cursor() as cursor:
        cursor.execute("SELECT 'infinity'::timestamptz")
        cursor.fetchone()


def test_a_session_not_in_utc_keeps_djangos_loader(monkeypatch):
    connection.ensure_connection()
    raw = connection.connection

    class Adapters:
        registered = []

        def register_loader(self, *args):
            self.registered.append(args)

    class PgConn:
        def parameter_status(self, name):
            return b"Europe/Paris"

    class Raw:
        adapters = Adapters()
        pgconn = PgConn()

    monkeypatch.setattr(connection, "connection", Raw())
    use_c_timestamps(sender=None, connection=connection)
    assert Adapters.registered == []
    monkeypatch.setattr(connection, "connection", raw)
