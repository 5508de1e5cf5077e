"""Web push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload
encryption (RFC 8291), through pywebpush's encryption and py_vapid's signing.

The request itself goes through our own HTTP client, because the endpoint
comes from a browser and so gets the private-address guard (allow-list:
MAESTRA_WEBPUSH_ALLOWED_HOSTS). A 404 or 410 from the push service means the
subscription no longer exists: that device fails for good.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from py_vapid import Vapid, VapidException
from pywebpush import WebPusher, WebPushException

from channels.backends import Backend, BackendMisconfigured, Outcome, Outgoing, SendResult
from channels.backends.http import classify_status, combine, http_request, transport_error_result
from channels.netguard import http_client

# A VAPID token is valid for at most 24 hours (RFC 8292); 12 is the usual choice.
VAPID_TOKEN_SECONDS = 12 * 3600


class WebPushBackend(Backend):
    def __init__(self, *, channel: str) -> None:
        super().__init__(channel=channel)
        if not settings.MAESTRA_VAPID_PRIVATE_KEY:
            raise BackendMisconfigured("MAESTRA_VAPID_PRIVATE_KEY is not set (manage.py generate_vapid_keys)")
        try:
            self.vapid = Vapid.from_string(settings.MAESTRA_VAPID_PRIVATE_KEY)
        except Exception as exc:
            raise BackendMisconfigured(f"MAESTRA_VAPID_PRIVATE_KEY cannot be read: {exc}") from None
        self.client = http_client(
            timeout=float(settings.MAESTRA_WEBPUSH_TIMEOUT),
            guard=True,
            allowed_hosts=settings.MAESTRA_WEBPUSH_ALLOWED_HOSTS,
        )
        # Signed tokens per push service origin, reused for the whole round.
        self.tokens: dict[str, dict] = {}

    def _vapid_headers(self, endpoint: str) -> dict:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        if audience not in self.tokens:
            claims = {
                "sub": settings.MAESTRA_VAPID_SUBJECT,
                "aud": audience,
                "exp": int(timezone.now().timestamp()) + VAPID_TOKEN_SECONDS,
            }
            self.tokens[audience] = self.vapid.sign(claims)
        return self.tokens[audience]

    def send(self, message: Outgoing) -> SendResult:
        rendered = message.rendered
        payload = json.dumps(
            {
                "title": rendered.get("title", ""),
                "body": rendered.get("body", ""),
                "data": {**(rendered.get("data") or {}), "message_id": message.id},
            },
            ensure_ascii=False,
        ).encode()
        subscriptions = rendered.get("to") or []
        return combine([self._send_one(message, subscription, payload) for subscription in subscriptions])

    def _send_one(self, message: Outgoing, subscription: dict, payload: bytes) -> SendResult:
        endpoint = subscription.get("endpoint", "")
        try:
            body = WebPusher(subscription).encode(payload, content_encoding="aes128gcm")["body"]
            headers = {
                **self._vapid_headers(endpoint),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
                "TTL": str(settings.MAESTRA_WEBPUSH_TTL),
                "Urgency": "normal",
            }
        except (WebPushException, VapidException, ValueError, TypeError) as exc:
            # Keys that cannot be used to encrypt: this subscription is broken.
            return SendResult(outcome=Outcome.FAILED, reason=f"push_invalid_subscription: {exc}"[:300])
        try:
            answer = http_request(self.client, method="POST", url=endpoint, headers=headers, content=body)
        except Exception as exc:
            return transport_error_result(exc)
        result = classify_status(answer, provider_id=answer.headers.get("location", "")[:200])
        if answer.status in (404, 410):
            result.reason = f"push_subscription_gone: http_{answer.status}"
            result.extra["gone_endpoint"] = endpoint
        return result

    def close(self) -> None:
        self.client.close()
