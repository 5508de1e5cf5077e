"""What the admin's own views share: JSON answers for the canvas's
endpoints (never Django's HTML error pages), the permission check, the
period a page is asked for, and small query-string helpers."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, JsonResponse
from django.utils import timezone

log = logging.getLogger(__name__)

PAGE_SIZE = 50
DEFAULT_STATS_DAYS = 7


def json_response(data: Any, *, status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, encoder=DjangoJSONEncoder, safe=False)


def json_endpoint(*methods: str):
    """The canvas's endpoints answer JSON whatever happens, as the API does:
    a wrong method is a JSON 405, a missing object (Http404) a JSON 404, a
    refusal (PermissionDenied) a JSON 403, and a bug is logged with its traceback and
    answered with a JSON 500 — never Django's HTML pages, which the canvas
    script cannot show."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = json_response(
                    {"errors": [{"field": "", "message": f"Use {' or '.join(methods)}."}]}, status=405
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except Http404 as missing:
                return json_response({"message": f"{missing}."}, status=404)
            except PermissionDenied:
                return json_response({"message": "You may not do this."}, status=403)
            except Exception:
                log.exception("Unhandled error in %s", view.__name__)
                return json_response(
                    {"errors": [{"field": "", "message": "Internal error; it has been logged."}]}, status=500
                )

        return wrapper

    return decorate


def require(request, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def parse_period(params, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """`from`/`to` as dates (whole days in the current time zone, `to`
    included) or ISO datetimes; default: the last 7 days up to now. Raises
    ValueError with a message for people."""
    now = now or timezone.now()

    def read(name: str, *, end: bool) -> datetime | None:
        text = (params.get(name) or "").strip()
        if not text:
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            moment = datetime.combine(day + timedelta(days=1) if end else day, time())
            return timezone.make_aware(moment)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a date (YYYY-MM-DD) or an ISO datetime") from None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment)

    try:
        until = read("to", end=True) or now
        since = read("from", end=False) or until - timedelta(days=DEFAULT_STATS_DAYS)
    except OverflowError:
        # The first or last day there is (0001-01-01, 9999-12-31) has no day around it.
        raise ValueError("the period lies outside the calendar's range (years 1 to 9999)") from None
    if since >= until:
        raise ValueError("from must be before to")
    return since, until


def int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def query_without(params, *names: str) -> str:
    query = params.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()
