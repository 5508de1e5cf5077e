"""Email engagement tracking (SPEC §13 "Email engagement", docs/channels.md).

An email template's `track` is {"opens": bool, "clicks": bool}; left out
(null), a marketing template tracks both and a service template neither.
settings.MAESTRA_EMAIL_TRACKING = False turns tracking off everywhere.

The outbox records the template's decision on the rendered message
(`rendered["track"]`); the delivery worker, which knows the row's id, makes
the HTML part that goes out (`tracked_rendered`): every http(s) link of an
<a href> becomes a signed redirect /t/c/<token> and a 1×1 image /t/o/<token>
goes before </body>. The stored row keeps the original HTML.

A token is signed with django.core.signing (one salt per kind) and carries
the message id, and for a click the link's number in the message and its
URL: the redirect only ever goes to a URL that was in the message, so it is
no open redirect, and a tampered token is a 404 with nothing recorded.
Tokens do not expire (an email is opened months later too).

The first open of a message and the first click of each link store the
system events `email_opened` / `email_clicked` through customers.services
(store_events), with external ids derived from the message and the link, so
they are stored once however often, and however concurrently, the pixel is
loaded or the link clicked (ON CONFLICT on the unique external id). They are
stored unprocessed, so the flows engine's sweep matches them like any event:
they start flows and satisfy wait_event. Message.opened_at / clicked_at are
set once as well (the unique opens and clicks of the statistics).

Erased customers are not tracked: erasure empties every message's rendered
content (flows/privacy.py), and a message without it records nothing; the
click still redirects and the pixel still answers.
"""

from __future__ import annotations

import base64
import html as html_lib
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from channels.models import Message
from customers.services import store_events

EMAIL_OPENED = "email_opened"
EMAIL_CLICKED = "email_clicked"
PARTS = ("opens", "clicks")
_OPEN_SALT = "maestra.tracking.open"
_CLICK_SALT = "maestra.tracking.click"
# A transparent 1×1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# The href of an <a> tag, quoted (an attribute such as data-href is not it).
_ANCHOR_HREF = re.compile(r"""(<a\s[^>]*?(?<![\w-])href\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


# --- the template's setting ----------------------------------------------------


def track_problems(track: Any, *, channel: str | None) -> dict[str, str]:
    """The check of a template's `track` on save (admin, API)."""
    if track is None:
        return {}
    if not isinstance(track, Mapping):
        return {"track": 'must be an object {"opens": true|false, "clicks": true|false} or null'}
    problems = {}
    for key, value in track.items():
        if key not in PARTS:
            problems[f"track.{key}"] = "unknown part (one of opens, clicks)"
        elif not isinstance(value, bool):
            problems[f"track.{key}"] = "must be true or false"
    if channel not in (None, "email") and any(track.get(part) for part in PARTS):
        problems.setdefault("track", "only email templates can be tracked")
    return problems


def effective_track(*, track: Any, purpose: str, channel: str) -> dict[str, bool]:
    """What a template tracks: its `track`, parts left out defaulting by
    purpose (marketing: tracked, service: not)."""
    default = channel == "email" and purpose == "marketing"
    given = track if isinstance(track, Mapping) else {}
    return {part: channel == "email" and bool(given.get(part, default)) for part in PARTS}


# --- rewriting the HTML part at send time -----------------------------------------


def _url(name: str, token: str) -> str:
    return settings.MAESTRA_PUBLIC_BASE_URL.rstrip("/") + reverse(name, kwargs={"token": token})


def _is_tracked_link(url: str) -> bool:
    # Our own confirm / unsubscribe / preferences pages stay direct links: an
    # unsubscribe must never depend on a redirect.
    own = settings.MAESTRA_PUBLIC_BASE_URL.rstrip("/") + "/p/"
    return url.lower().startswith(("http://", "https://")) and not url.startswith(own)


def tracked_html(*, message_id: int, html: str, opens: bool, clicks: bool) -> str:
    """The HTML part with its links as signed redirects (`clicks`) and the
    open pixel (`opens`). The same URL twice is one link (one number)."""
    if clicks:
        numbers: dict[str, int] = {}

        def rewrite(match: re.Match) -> str:
            raw = match.group(2) if match.group(2) is not None else match.group(3)
            url = html_lib.unescape(raw).strip()
            if not _is_tracked_link(url):
                return match.group(0)
            number = numbers.setdefault(url, len(numbers))
            token = signing.dumps([message_id, number, url], salt=_CLICK_SALT, compress=True)
            return f'{match.group(1)}"{html_lib.escape(_url("tracking-click", token))}"'

        html = _ANCHOR_HREF.sub(rewrite, html)
    if opens:
        token = signing.dumps(message_id, salt=_OPEN_SALT)
        pixel = (
            f'<img src="{html_lib.escape(_url("tracking-open", token))}" width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0">'
        )
        ends = list(_BODY_END.finditer(html))
        html = html[: ends[-1].start()] + pixel + html[ends[-1].start() :] if ends else html + pixel
    return html


def tracked_rendered(*, message_id: int, rendered: dict) -> dict:
    """What the delivery worker hands the email backend: `rendered` without
    the outbox's `track` note, its HTML part tracked as noted (nothing when
    tracking is off site-wide, or for a message without HTML)."""
    if "track" not in rendered:
        return rendered
    rendered = dict(rendered)
    track = rendered.pop("track") or {}
    if settings.MAESTRA_EMAIL_TRACKING and rendered.get("html") and any(track.get(p) for p in PARTS):
        rendered["html"] = tracked_html(
            message_id=message_id,
            html=rendered["html"],
            opens=bool(track.get("opens")),
            clicks=bool(track.get("clicks")),
        )
    return rendered


# --- recording -------------------------------------------------------------------


def event_external_id(*, kind: str, message_id: int, link: int | None = None) -> str:
    """The stored event's id: one per message (opens), one per link (clicks)."""
    return f"maestra:{kind}:{message_id}" + (f":{link}" if link is not None else "")


def record(*, message_id: int, kind: str, link: int | None = None, url: str = "") -> bool:
    """Record an open (link None) or a click of link number `link`: sets the
    message's first open / click and stores the event once. False when
    nothing was recorded (no such message, a test, an erased customer, an
    event already stored)."""
    with transaction.atomic():
        row = (
            Message.objects.filter(id=message_id, is_test=False, channel="email")
            .values("customer_id", "flow_id", "node_key", "template_slug", "rendered")
            .first()
        )
        if row is None or not row["rendered"]:
            return False
        now = timezone.now()
        column = "opened_at" if kind == EMAIL_OPENED else "clicked_at"
        Message.objects.filter(id=message_id, **{f"{column}__isnull": True}).update(**{column: now})
        payload = {
            "message": message_id,
            "flow": row["flow_id"],
            "node": row["node_key"],
            "template": row["template_slug"],
        }
        if kind == EMAIL_CLICKED:
            payload["url"] = url
        result = store_events(
            events=[
                {
                    "external_id": event_external_id(kind=kind, message_id=message_id, link=link),
                    "customer_id": row["customer_id"],
                    "type": kind,
                    "occurred_at": now,
                    "payload": payload,
                }
            ]
        )
    return bool(result["accepted"])


# --- the public URLs (/t/) ------------------------------------------------------------


@never_cache
@require_safe
def open_view(request, token: str):
    """The pixel: records the first open, answers a 1×1 GIF."""
    try:
        message_id = signing.loads(token, salt=_OPEN_SALT)
    except signing.BadSignature:
        raise Http404("unknown link") from None
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise Http404("unknown link")
    record(message_id=message_id, kind=EMAIL_OPENED)
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_safe
def click_view(request, token: str):
    """A tracked link: records the first click of this link of this message,
    redirects to the URL the token carries (one that was in the message)."""
    try:
        value = signing.loads(token, salt=_CLICK_SALT)
    except signing.BadSignature:
        raise Http404("unknown link") from None
    if not (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value[:2])
        and isinstance(value[2], str)
        and _is_tracked_link(value[2])
    ):
        raise Http404("unknown link")
    message_id, link, url = value
    record(message_id=message_id, kind=EMAIL_CLICKED, link=link, url=url)
    return HttpResponseRedirect(url)


# Included by maestra/urls.py under "t/".
urlpatterns = [
    path("o/<str:token>", open_view, name="tracking-open"),
    path("c/<str:token>", click_view, name="tracking-click"),
]
