"""Webhooks: the request the template describes, signed, to a public address.

The body is signed with HMAC-SHA256 under the template's secret and the
signature sent as `X-Maestra-Signature: sha256=<hex>`, so the receiver can
check the request came from us and was not altered. Destinations that resolve
to private, loopback or link-local addresses are refused unless allow-listed
in MAESTRA_WEBHOOK_ALLOWED_HOSTS (see channels/netguard.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings

from channels.backends import Backend, Outcome, Outgoing, SendResult
from channels.backends.http import classify_status, http_request, transport_error_result
from channels.netguard import http_client

SIGNATURE_HEADER = "X-Maestra-Signature"


def sign(*, secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _content_type(body: str) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


class WebhookBackend(Backend):
    def __init__(self, *, channel: str) -> None:
        super().__init__(channel=channel)
        self.client = http_client(
            timeout=float(settings.MAESTRA_WEBHOOK_TIMEOUT),
            guard=True,
            allowed_hosts=settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS,
        )

    def send(self, message: Outgoing) -> SendResult:
        rendered = message.rendered
        if not message.secret:
            return SendResult(outcome=Outcome.FAILED, reason="template_missing: no signing secret")
        method = (rendered.get("method") or "POST").upper()
        body = (rendered.get("body") or "").encode()
        # A GET carries no body; its signature is that of the empty body.
        content = None if method == "GET" else body
        headers = {str(k): str(v) for k, v in (rendered.get("headers") or {}).items()}
        if content is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = _content_type(rendered.get("body") or "")
        headers.update(
            {
                SIGNATURE_HEADER: sign(secret=message.secret, body=content or b""),
                "Idempotency-Key": message.idempotency_key,
                "X-Maestra-Message": str(message.id),
            }
        )
        try:
            answer = http_request(
                self.client, method=method, url=rendered["url"], headers=headers, content=content
            )
        except Exception as exc:
            return transport_error_result(exc)
        return classify_status(answer, provider_id=answer.headers.get("x-request-id", "")[:200])

    def close(self) -> None:
        self.client.close()
