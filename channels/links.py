"""Confirm, unsubscribe and preferences links, and the public pages they open.

A link carries a signed token (django.core.signing, one salt per action, so an
unsubscribe token cannot be replayed as a confirm token) holding the customer
id and the channel. Tokens expire after settings.MAESTRA_LINK_MAX_AGE seconds.
A forged, altered or expired token changes nothing: the page says so (400).

The pages need no login (the token is the credential) and live under /p/.
GET never changes anything: mail scanners and link previewers fetch links, so
each page shows a button and only its POST acts. The unsubscribe URL is also
the RFC 8058 one-click target (List-Unsubscribe-Post), which mail providers
POST to without a CSRF token: that one view alone is csrf_exempt.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from customers.errors import InvalidInput
from customers.models import Channel, Customer, Subscription
from customers.services import set_subscriptions

ACTIONS = ("confirm", "unsubscribe", "preferences")
# Channels a person can subscribe to (a webhook goes to an integrator, not a person).
PERSONAL_CHANNELS = tuple(c for c in Channel.values if c != Channel.WEBHOOK)
SOURCE = "link"
GONE = "This link belongs to a profile that no longer exists."


class InvalidLink(Exception):
    """The token is forged, altered, expired or meant for another action."""


def _salt(action: str) -> str:
    return f"maestra.links.{action}"


def make_token(*, customer_id: int, channel: str, action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown link action {action!r}")
    return signing.dumps([int(customer_id), str(channel)], salt=_salt(action), compress=False)


def read_token(*, token: str, action: str) -> tuple[int, str]:
    """(customer_id, channel) of a valid token, else InvalidLink."""
    try:
        value = signing.loads(token, salt=_salt(action), max_age=settings.MAESTRA_LINK_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise InvalidLink("This link has expired.") from exc
    except signing.BadSignature as exc:
        raise InvalidLink("This link is not valid (it may have been cut or altered).") from exc
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or value[1] not in PERSONAL_CHANNELS
    ):
        raise InvalidLink("This link is not valid.")
    return value[0], value[1]


def link_url(*, customer_id: int, channel: str, action: str) -> str:
    token = make_token(customer_id=customer_id, channel=channel, action=action)
    base = settings.MAESTRA_PUBLIC_BASE_URL.rstrip("/")
    return base + reverse(f"public-{action}", kwargs={"token": token})


def links_for(*, customer_id: int, channel: str) -> dict[str, str]:
    """The `links` of a template context: confirm, unsubscribe (for the
    message's channel) and preferences, as absolute URLs."""
    if channel not in PERSONAL_CHANNELS:
        return {}
    return {action: link_url(customer_id=customer_id, channel=channel, action=action) for action in ACTIONS}


def template_uses_links(template) -> bool:
    """Signing costs a little per message: only contexts of templates that
    mention `links` get them."""
    sources = [template.subject, template.text, template.html, template.url]
    sources += [v for v in (template.headers or {}).values() if isinstance(v, str)]
    return any("links" in (s or "") for s in sources)


# --- the public pages -----------------------------------------------------------

CHANNEL_LABELS = dict(Channel.choices)


def _invalid(request, error: InvalidLink):
    return render(request, "public/link_invalid.html", {"message": str(error)}, status=400)


def _open(token: str, action: str) -> tuple[int, str]:
    """(customer_id, channel) of a valid token whose customer still exists,
    else InvalidLink."""
    customer_id, channel = read_token(token=token, action=action)
    if not Customer.objects.filter(id=customer_id).exists():
        raise InvalidLink(GONE)
    return customer_id, channel


def _set(changes: list[tuple[int, str, str]]) -> None:
    """Change through the customers service (emits subscription_changed);
    InvalidLink when the customer was erased meanwhile."""
    try:
        set_subscriptions(changes=changes, source=SOURCE)
    except InvalidInput:
        raise InvalidLink(GONE) from None


def _subscription_view(request, token: str, *, action: str, status: str):
    """GET: a button; POST (the button): sets the subscription to the
    token's channel to `status`. The page is public/<action>.html."""
    try:
        customer_id, channel = _open(token, action)
        if request.method == "POST":
            _set([(customer_id, channel, status)])
    except InvalidLink as exc:
        return _invalid(request, exc)
    context = {"channel": CHANNEL_LABELS[channel], "token": token, "done": request.method == "POST"}
    return render(request, f"public/{action}.html", context)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request, token: str):
    """GET: a confirm button. POST (the button, or a provider's RFC 8058
    one-click `List-Unsubscribe=One-Click`): unsubscribes from the channel."""
    return _subscription_view(request, token, action="unsubscribe", status=Subscription.Status.UNSUBSCRIBED)


@require_http_methods(["GET", "POST"])
def confirm_view(request, token: str):
    """GET: a confirm button; POST: subscribes the customer to the channel."""
    return _subscription_view(request, token, action="confirm", status=Subscription.Status.SUBSCRIBED)


@require_http_methods(["GET", "POST"])
def preferences_view(request, token: str):
    """Every personal channel with a subscribe / unsubscribe choice; POST
    applies the choices that differ from what is stored."""
    try:
        customer_id, channel = _open(token, "preferences")
    except InvalidLink as exc:
        return _invalid(request, exc)
    current = dict(Subscription.objects.filter(customer_id=customer_id).values_list("channel", "status"))
    saved = False
    errors = []
    if request.method == "POST":
        changes = []
        for name in PERSONAL_CHANNELS:
            wanted = request.POST.get(name)
            if wanted is None:
                continue
            if wanted not in (Subscription.Status.SUBSCRIBED, Subscription.Status.UNSUBSCRIBED):
                errors.append(f"{CHANNEL_LABELS[name]}: choose subscribed or unsubscribed")
            elif wanted != current.get(name):
                changes.append((customer_id, name, wanted))
        if not errors:
            try:
                _set(changes)
            except InvalidLink as exc:
                return _invalid(request, exc)
            current.update({name: status for _cid, name, status in changes})
            saved = True
    rows = [
        {
            "name": name,
            "label": CHANNEL_LABELS[name],
            "status": current.get(name, ""),
            "subscribed": current.get(name) == Subscription.Status.SUBSCRIBED,
        }
        for name in PERSONAL_CHANNELS
    ]
    return render(
        request,
        "public/preferences.html",
        {"rows": rows, "saved": saved, "errors": errors, "token": token, "channel": channel},
        status=400 if errors else 200,
    )


# Included by maestra/urls.py under "p/".
urlpatterns = [
    path("confirm/<str:token>", confirm_view, name="public-confirm"),
    path("unsubscribe/<str:token>", unsubscribe_view, name="public-unsubscribe"),
    path("preferences/<str:token>", preferences_view, name="public-preferences"),
]
