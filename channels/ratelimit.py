"""Per-provider send rate limits (MAESTRA_RATE_LIMITS, e.g. "email=50/s,sms=10/s"):
token buckets shared by every delivery worker on every machine. In Redis
(one Lua script, atomic, on Redis's own clock) when REDIS_URL is set, else in
a database row (RateBucket, read and written under SELECT … FOR UPDATE).

Why the bucket is smaller than the limit: providers count sends per second,
and a bucket of capacity B refilled at r tokens/s lets B + ⌈r·P⌉ − 1 sends
into any window of length P (a full bucket at the window's start, then one
token every 1/r). With B = max(1, L/10) and r·P = L − B + 1 that is exactly L:
a limit of L per P is never exceeded in ANY window of length P, not only in
aligned ones, at the price of a sustained rate a little under L (B − 1
tokens per P). The worker takes tokens just before it sends and sends what
it was granted at once, so grants become sends within milliseconds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from customers.models import Channel

_RATE = re.compile(r"^(\d+)/(s|m|h)$")
_PERIODS = {"s": 1, "m": 60, "h": 3600}
# A sleeping worker looks again at least this often (another worker may have
# stopped taking tokens; a shorter wait is computed from the bucket).
MAX_WAIT = 1.0


class RateLimitError(ValueError):
    """MAESTRA_RATE_LIMITS cannot be read."""


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds

    @property
    def capacity(self) -> int:
        return max(1, self.limit // 10)

    @property
    def refill(self) -> float:
        """Tokens per second (see the module doc for why not limit/period)."""
        return (self.limit - self.capacity + 1) / self.period


def parse_rate_limits(value) -> dict[str, Rate]:
    """ "email=50/s,sms=600/m" → {"email": Rate(50, 1), "sms": Rate(600, 60)};
    "" → {}. Raises RateLimitError naming the bad part."""
    if value in (None, ""):
        return {}
    if not isinstance(value, str):
        raise RateLimitError("must be a string like 'email=50/s,sms=10/s'")
    rates: dict[str, Rate] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        channel, sep, rate = part.partition("=")
        channel, rate = channel.strip(), rate.strip().replace(" ", "")
        if not sep or channel not in Channel.values:
            raise RateLimitError(
                f"{part!r}: expected CHANNEL=N/s|m|h with CHANNEL one of {', '.join(Channel.values)}"
            )
        match = _RATE.fullmatch(rate)
        if not match or int(match.group(1)) < 1 or int(match.group(1)) > 1_000_000:
            raise RateLimitError(f"{part!r}: the rate must be N/s, N/m or N/h with 1 <= N <= 1,000,000")
        if channel in rates:
            raise RateLimitError(f"{channel!r} is given twice")
        rates[channel] = Rate(limit=int(match.group(1)), period=_PERIODS[match.group(2)])
    return rates


def current_rates() -> dict[str, Rate]:
    return parse_rate_limits(getattr(settings, "MAESTRA_RATE_LIMITS", ""))


# KEYS[1] the bucket; ARGV capacity, refill per second, tokens wanted.
# Returns {granted, seconds until the next token (a string: Lua numbers
# would be truncated to integers)}.
_LUA = """
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * refill)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / refill * 1000) + 60000)
local wait = 0
if granted < want then
  wait = (1 - tokens) / refill
end
return {granted, tostring(wait)}
"""


class RedisBuckets:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_LUA)

    def take(self, channel: str, rate: Rate, want: int) -> tuple[int, float]:
        granted, wait = self.script(
            keys=[f"maestra:rate:{channel}:{rate.limit}/{rate.period}"],
            args=[rate.capacity, repr(rate.refill), want],
        )
        return int(granted), float(wait)

    def close(self) -> None:
        self.client.close()


class DatabaseBuckets:
    """The bucket as a row, changed under a row lock: PostgreSQL serializes
    the workers on it; SQLite has one writer anyway."""

    def take(self, channel: str, rate: Rate, want: int) -> tuple[int, float]:
        from channels.models import RateBucket

        name = f"{channel}:{rate.limit}/{rate.period}"
        with transaction.atomic():
            bucket = RateBucket.objects.select_for_update().filter(name=name).first()
            now = timezone.now()
            if bucket is None:
                bucket, _ = RateBucket.objects.get_or_create(
                    name=name, defaults={"tokens": rate.capacity, "updated_at": now}
                )
                bucket = RateBucket.objects.select_for_update().get(name=name)
            elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
            tokens = min(float(rate.capacity), bucket.tokens + elapsed * rate.refill)
            granted = min(want, int(tokens))
            tokens -= granted
            RateBucket.objects.filter(name=name).update(tokens=tokens, updated_at=now)
        wait = 0.0 if granted == want else (1 - tokens) / rate.refill
        return granted, wait

    def close(self) -> None:
        pass


class Limiter:
    """The buckets of one drain: take(channel, n) blocks until it can grant
    at least one token, and returns how many (at most n and the capacity)."""

    def __init__(self, rates: dict[str, Rate]) -> None:
        self.rates = rates
        self.store = RedisBuckets(settings.REDIS_URL) if settings.REDIS_URL else DatabaseBuckets()

    def take(self, channel: str, want: int) -> int:
        rate = self.rates.get(channel)
        if rate is None:
            return want
        want = min(want, rate.capacity)
        while True:
            granted, wait = self.store.take(channel, rate, want)
            if granted:
                return granted
            time.sleep(min(max(wait, 0.001), MAX_WAIT))

    def close(self) -> None:
        self.store.close()


def limiter() -> Limiter | None:
    """A Limiter when any rate limit is set, else None (no cost at all)."""
    rates = current_rates()
    return Limiter(rates) if rates else None
