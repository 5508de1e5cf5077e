"""The communication policy across flows: quiet hours and frequency caps.

Two settings, both off when empty (docs/channels.md, "Quiet hours and
frequency caps"):

- MAESTRA_QUIET_HOURS = "21:00-08:00": no marketing message reaches a person
  while their local clock (Customer.timezone, else
  MAESTRA_QUIET_HOURS_TIMEZONE, else TIME_ZONE) is inside that range. `from`
  is inclusive, `to` exclusive; `to` earlier than `from` wraps midnight. A
  message due inside goes back to the queue until the quiet hours end (wall
  time of the person's zone, so DST-correct); its attempts are not counted.
  When that end is at or after the message's relevance deadline
  (Message.expires_at, from the steps node), it is `not_sent` with reason
  `quiet_hours`.
- MAESTRA_FREQUENCY_CAPS = "email=3/P1D,sms=1/P7D": at most N marketing
  messages per person per channel in any rolling window of that length,
  across all flows. Counted: marketing messages of the channel that a
  worker holds (`claimed`, `sending`), or `sent` within the window. A
  message over the cap is `not_sent` with reason `frequency_cap` and is
  never sent.

Only marketing messages on personal channels (email, SMS, mobile push, web
push) are held: service templates (confirmations, receipts), webhooks (they
go to your systems, not to the person) and test sends are exempt.

Enforcement happens in the delivery worker's claim transaction
(channels.delivery.claim_chunk), for the whole claimed chunk at once: one
query for the customers' time zones, one for the messages already sent,
one UPDATE per distinct outcome. Two workers never let N+1 through: on
PostgreSQL each takes a transaction-level advisory lock per customer of its
chunk (in key order, so they never wait on each other in a cycle) before it
counts, and its `claimed` rows are committed before the lock is released, so
the next worker's count sees them. A claim whose worker died goes back to
`queued` when its lease ends, and then counts no more. Advisory locks, not FOR UPDATE on the
customer rows: they serialise delivery workers only, never the API or the
engine, which lock customer rows for their own writes. SQLite has a single
writer (IMMEDIATE transactions), so claims cannot overlap there.

The settings are checked at start by channels/checks.py (a system check
that ChannelsConfig.ready also runs: a bad value stops the process).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Count, Q

from channels.models import Message
from customers.models import Customer
from maestra.durations import TOO_LONG, parse_duration
from maestra.zones import first_moment_at_or_after, zone_or_none

# The channels that reach a person (customers.models.Channel minus webhook).
PERSONAL_CHANNELS = ("email", "sms", "mobile_push", "web_push")

# Message.reason codes.
QUIET_HOURS = "quiet_hours"
FREQUENCY_CAP = "frequency_cap"

# Namespace of the transaction-level advisory locks on customers (ASCII "caps").
_CAP_LOCKS = 0x63617073
_INT4_KEYS = 2_147_483_647

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class PolicyError(ValueError):
    """A policy setting that cannot be read; the message says why and how."""


# --- the settings -------------------------------------------------------------


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def wraps(self) -> bool:
        return self.end < self.start

    def contains(self, wall: time) -> bool:
        """Is this local wall time inside the quiet hours?"""
        if self.wraps:
            return wall >= self.start or wall < self.end
        return self.start <= wall < self.end

    def end_after(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """For a `moment` inside the quiet hours in `tz`: the moment they end,
        as an aware UTC datetime. The end is the first moment after `moment`
        at which the local clock shows `end` (a wall time in the spring DST
        gap: the end of the gap; one repeated in autumn: its next occurrence)."""
        moment = moment.astimezone(UTC)
        wall = moment.astimezone(tz).replace(tzinfo=None)
        day = wall.date()
        if self.wraps and wall.time() >= self.start:
            day += timedelta(days=1)
        return first_moment_at_or_after(datetime.combine(day, self.end), tz, after=moment)


@dataclass(frozen=True)
class Cap:
    limit: int
    period: timedelta
    text: str  # the period as written ("P1D")

    def __str__(self) -> str:
        return f"{self.limit}/{self.text}"


@dataclass(frozen=True)
class Policy:
    quiet_hours: QuietHours | None = None
    caps: dict[str, Cap] = field(default_factory=dict)
    default_tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    @property
    def active(self) -> bool:
        return self.quiet_hours is not None or bool(self.caps)


def _time_of_day(text: str, what: str) -> time:
    match = _TIME.match(text.strip())
    if not match:
        raise PolicyError(f"{what} {text.strip()!r} is not a time HH:MM between 00:00 and 23:59")
    return time(int(match[1]), int(match[2]))


def parse_quiet_hours(value: str | None) -> QuietHours | None:
    """ "21:00-08:00" → QuietHours; "" or None → None (no quiet hours)."""
    if value is None or not str(value).strip():
        return None
    if not isinstance(value, str) or value.count("-") != 1:
        raise PolicyError(f"{value!r} is not a range of local times such as 21:00-08:00")
    start_text, end_text = value.split("-")
    start = _time_of_day(start_text, "the start")
    end = _time_of_day(end_text, "the end")
    if start == end:
        raise PolicyError(f"{value!r} starts and ends at the same time; leave it empty for no quiet hours")
    return QuietHours(start=start, end=end)


def parse_period(text: str) -> timedelta:
    """A rolling window as an ISO 8601 duration of fixed length: weeks, days,
    hours, minutes, whole seconds, no sign ("P1D" is 24 hours, "P1W",
    "PT12H"), at most 100 years (maestra.durations reads it)."""
    text = text.strip()
    try:
        if not text.startswith("P") or "." in text:
            raise ValueError("signed or fractional")
        duration = parse_duration(text)
    except ValueError as exc:
        detail = (
            TOO_LONG if str(exc) == TOO_LONG else "is not an ISO 8601 duration such as P1D, P7D, P1W or PT12H"
        )
        raise PolicyError(f"{text!r} {detail}") from None
    if duration.years or duration.months:
        raise PolicyError(f"{text!r}: months and years have no fixed length; use days or weeks (e.g. P30D)")
    period = duration.approximate()
    if period <= timedelta(0):
        raise PolicyError(f"{text!r} is empty; a period must be longer than zero")
    return period


def parse_frequency_caps(value: str | None) -> dict[str, Cap]:
    """ "email=3/P1D,sms=1/P7D" → {"email": Cap(3, 1 day), …}; "" → {}."""
    if value is None or not str(value).strip():
        return {}
    if not isinstance(value, str):
        raise PolicyError(f"{value!r} is not a list such as email=3/P1D,sms=1/P7D")
    caps: dict[str, Cap] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        channel, equals, rule = item.partition("=")
        count, slash, period_text = rule.partition("/")
        channel, count, period_text = channel.strip(), count.strip(), period_text.strip()
        if not equals or not slash or not channel or not count or not period_text:
            raise PolicyError(f"{item!r} is not channel=N/period, e.g. email=3/P1D")
        if channel not in PERSONAL_CHANNELS:
            raise PolicyError(
                f"{item!r}: {channel!r} is not a channel a cap applies to ({', '.join(PERSONAL_CHANNELS)})"
            )
        if channel in caps:
            raise PolicyError(f"{channel} is capped twice")
        if not count.isdigit() or int(count) < 1:
            raise PolicyError(f"{item!r}: the number of messages must be a whole number of at least 1")
        caps[channel] = Cap(limit=int(count), period=parse_period(period_text), text=period_text)
    return caps


def parse_timezone(value: str | None) -> ZoneInfo | None:
    """An IANA zone, or None for "" (use TIME_ZONE)."""
    if value is None or not str(value).strip():
        return None
    try:
        return ZoneInfo(str(value).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


_cache: dict[tuple, Policy] = {}


def current_policy() -> Policy:
    """The policy the settings describe (parsed once per distinct value, so
    override_settings in tests takes effect). Raises ImproperlyConfigured on
    a value that cannot be read."""
    raw = (
        getattr(settings, "MAESTRA_QUIET_HOURS", ""),
        getattr(settings, "MAESTRA_FREQUENCY_CAPS", ""),
        getattr(settings, "MAESTRA_QUIET_HOURS_TIMEZONE", ""),
        settings.TIME_ZONE,
    )
    cached = _cache.get(raw)
    if cached is not None:
        return cached
    names = ("MAESTRA_QUIET_HOURS", "MAESTRA_FREQUENCY_CAPS", "MAESTRA_QUIET_HOURS_TIMEZONE", "TIME_ZONE")
    parsers = (parse_quiet_hours, parse_frequency_caps, parse_timezone, parse_timezone)
    parsed = []
    for name, parser, value in zip(names, parsers, raw, strict=True):
        try:
            parsed.append(parser(value))
        except PolicyError as exc:
            raise ImproperlyConfigured(f"{name}={value!r}: {exc}") from None
    quiet, caps, zone, site_zone = parsed
    policy = Policy(quiet_hours=quiet, caps=caps, default_tz=zone or site_zone or ZoneInfo("UTC"))
    # One entry: settings change only in tests. Returned from the local, so a
    # thread replacing the entry meanwhile cannot make this call fail.
    _cache.clear()
    _cache[raw] = policy
    return policy


# --- time ---------------------------------------------------------------------


def customer_zone(name: str | None, default: ZoneInfo) -> ZoneInfo:
    """The customer's own zone, or `default` when it is blank or unknown."""
    return zone_or_none(name) or default


# --- enforcement ----------------------------------------------------------------


@dataclass
class Decision:
    """What the policy did to a claimed chunk: the ids still to send, in
    claim order, and how many it deferred or refused."""

    send_ids: list[int]
    deferred: int = 0
    not_sent: int = 0


def enforce(rows: list[dict], *, now: datetime, policy: Policy) -> Decision:
    """Apply `policy` to claimed, still `queued` rows (dicts with id,
    customer_id, channel, marketing, expires_at, in claim order), inside the
    claim's transaction. Deferred rows get their next_attempt_at moved to the
    end of the quiet hours, refused rows become not_sent; both are written
    here. Returns the rows to send."""
    held = [r for r in rows if r["marketing"] and r["channel"] in PERSONAL_CHANNELS]
    if not held or not policy.active:
        return Decision(send_ids=[r["id"] for r in rows])
    defer: dict[tuple[datetime, str], list[int]] = defaultdict(list)
    refuse: dict[str, list[int]] = defaultdict(list)
    if policy.quiet_hours is not None:
        held = _quiet_hours(held, now=now, policy=policy, defer=defer, refuse=refuse)
    capped = [r for r in held if r["channel"] in policy.caps]
    if capped:
        _caps(capped, now=now, policy=policy, refuse=refuse)
    for (moment, reason), ids in defer.items():
        Message.objects.filter(id__in=ids).update(next_attempt_at=moment, reason=reason[:300])
    for reason, ids in refuse.items():
        Message.objects.filter(id__in=ids).update(
            status=Message.Status.NOT_SENT, reason=reason[:300], lease_until=None
        )
    out = {i for ids in defer.values() for i in ids} | {i for ids in refuse.values() for i in ids}
    return Decision(
        send_ids=[r["id"] for r in rows if r["id"] not in out],
        deferred=sum(len(ids) for ids in defer.values()),
        not_sent=sum(len(ids) for ids in refuse.values()),
    )


def _quiet_hours(
    rows: list[dict],
    *,
    now: datetime,
    policy: Policy,
    defer: dict[tuple[datetime, str], list[int]],
    refuse: dict[str, list[int]],
) -> list[dict]:
    """Hold the rows whose customer's local time is inside the quiet hours;
    return the others."""
    quiet = policy.quiet_hours
    assert quiet is not None
    zones = dict(
        Customer.objects.filter(id__in={r["customer_id"] for r in rows}).values_list("id", "timezone")
    )
    ends: dict[str, tuple[datetime, ZoneInfo] | None] = {}  # per zone name: None = not quiet now
    rest = []
    for row in rows:
        name = zones.get(row["customer_id"]) or ""
        if name not in ends:
            tz = customer_zone(name, policy.default_tz)
            inside = quiet.contains(now.astimezone(tz).time())
            ends[name] = (quiet.end_after(now, tz), tz) if inside else None
        if ends[name] is None:
            rest.append(row)
            continue
        end, tz = ends[name]
        if row["expires_at"] is not None and end >= row["expires_at"]:
            refuse[f"{QUIET_HOURS}: {quiet} in {tz.key} would end after the message's relevance"].append(
                row["id"]
            )
        else:
            defer[(end, f"{QUIET_HOURS}: waiting for the end of {quiet} in {tz.key}")].append(row["id"])
    return rest


def _caps(rows: list[dict], *, now: datetime, policy: Policy, refuse: dict[str, list[int]]) -> None:
    """Refuse the rows over their channel's cap. The customers are locked
    first, so the count cannot change before this transaction commits."""
    customer_ids = sorted({r["customer_id"] for r in rows})
    lock_customers(customer_ids)
    channels = sorted({r["channel"] for r in rows})
    in_window = Q()
    for channel in channels:
        in_window |= Q(channel=channel, sent_at__gt=now - policy.caps[channel].period)
    used = defaultdict(
        int,
        {
            (row["customer_id"], row["channel"]): row["n"]
            for row in Message.objects.filter(
                marketing=True, customer_id__in=customer_ids, channel__in=channels
            )
            .filter(
                Q(status__in=[Message.Status.CLAIMED, Message.Status.SENDING])
                | (Q(status=Message.Status.SENT) & in_window)
            )
            .values("customer_id", "channel")
            .annotate(n=Count("id"))
            .order_by()
        },
    )
    for row in rows:
        key = (row["customer_id"], row["channel"])
        cap = policy.caps[row["channel"]]
        if used[key] >= cap.limit:
            refuse[f"{FREQUENCY_CAP}: {cap.limit} {row['channel']} per {cap.text} reached"].append(row["id"])
        else:
            used[key] += 1


def lock_customers(customer_ids: list[int]) -> None:
    """Transaction-level advisory locks on these customers (PostgreSQL only),
    in key order. Held until the claim commits."""
    if connection.vendor != "postgresql" or not customer_ids:
        return
    keys = sorted({customer_id % _INT4_KEYS for customer_id in customer_ids})
    with connection.cursor() as cursor:
        # unnest yields the sorted array in order, and each row takes its lock
        # as it is produced.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, k) FROM unnest(%s::int[]) AS t(k)", [_CAP_LOCKS, keys]
        )
