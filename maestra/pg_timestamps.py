"""Reading PostgreSQL timestamps in C, as psycopg can, rather than in Python.

Django loads every `timestamptz` value through its own loader class
(django.db.backends.postgresql.psycopg_any.BaseTzLoader), a Python subclass
of psycopg's pure-Python loader: each value is parsed by Python code and then
given the connection's time zone. The engine reads four or five timestamps
per run on every batch (the claim, the customers' rows), and that parsing
was about a tenth of an engine worker's CPU in the benchmark's stages.

With Django's defaults (USE_TZ, no per-database TIME_ZONE) the connection
runs in UTC and Django's loader returns exactly what psycopg's C loader
returns for a UTC session: an aware datetime in `datetime.timezone.utc`. So
on such a connection this registers a loader that hands each value to the C
loader. Anything else (another session time zone, the pure-Python psycopg,
psycopg2) keeps Django's loader.

Django re-registers its own loader on every cursor whose loader's
`timezone` attribute differs from the connection's; ours carries the same
attribute, so it stays in place (and no adapter map is copied per cursor).
"""

from __future__ import annotations

import datetime

from django.db.backends.signals import connection_created

UTC_NAMES = (b"UTC", b"Etc/UTC")

try:
    from psycopg.adapt import Loader

    try:
        from psycopg_binary._psycopg import TimestamptzLoader as CTimestamptzLoader
    except ImportError:  # psycopg without its C speed-ups
        CTimestamptzLoader = None
except ImportError:  # psycopg2
    Loader = object
    CTimestamptzLoader = None


class UTCTimestamptzLoader(Loader):
    """Django's timestamptz loader for a UTC session, parsing in C."""

    # What Django compares with the connection's time zone (see above).
    timezone = datetime.UTC

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        # The C loader's own load, bound once: no Python frame per value.
        self.load = CTimestamptzLoader(oid, context).load

    def load(self, data):  # replaced on each instance by the C loader's (above)
        raise NotImplementedError


def use_c_timestamps(*, sender, connection, **kwargs) -> None:
    """connection_created: on a PostgreSQL connection in UTC, read timestamptz
    values with UTCTimestamptzLoader."""
    if connection.vendor != "postgresql" or CTimestamptzLoader is None:
        return
    raw = connection.connection
    if getattr(raw, "adapters", None) is None or connection.timezone != datetime.UTC:
        return
    if raw.pgconn.parameter_status(b"TimeZone") not in UTC_NAMES:
        return
    raw.adapters.register_loader("timestamptz", UTCTimestamptzLoader)


def install() -> None:
    connection_created.connect(use_c_timestamps, dispatch_uid="maestra.pg_timestamps")
