"""SMS and mobile push through a provider's JSON HTTP API.

Configured per channel in settings.MAESTRA_HTTP_JSON, e.g. for SMS:

    {"url": "https://sms.example.com/v1/messages",
     "headers": {"Authorization": "Bearer <token>"},
     "body": {"to": "{to}", "text": "{text}", "sender": "Shop"},
     "timeout": 10,
     "id_field": "id"}

`body` is the JSON sent, with placeholders filled in: a string that is exactly
one placeholder ("{data}") takes the value as it is (an object stays an
object), other strings get the values' text. Placeholders: to, text (SMS),
title, body, data (push), message_id, idempotency_key. `id_field` is the
dotted path of the provider's message id in its JSON answer. The
`Idempotency-Key` header is always sent.

Mobile push sends one request per device token ("to" is the token).
The URL comes from the operator's settings, so it is not behind the
private-address guard (an on-premises gateway is a normal setup).
"""

from __future__ import annotations

import json
import re

from django.conf import settings

from channels.backends import Backend, BackendMisconfigured, Outcome, Outgoing, SendResult
from channels.backends.http import classify_status, combine, http_request, transport_error_result
from channels.netguard import http_client

_PLACEHOLDER = re.compile(r"\{(\w+)\}")

DEFAULT_BODIES = {
    "sms": {"to": "{to}", "text": "{text}"},
    "mobile_push": {"to": "{to}", "title": "{title}", "body": "{body}", "data": "{data}"},
}


def fill(template, values: dict):
    """The body mapping with its placeholders replaced (see the module doc)."""
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return _value(whole.group(1), values)

    def text(match: re.Match) -> str:
        value = _value(match.group(1), values)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return _PLACEHOLDER.sub(text, template)


def _value(name: str, values: dict):
    if name not in values:
        raise BackendMisconfigured(f"unknown placeholder {{{name}}} (known: {', '.join(sorted(values))})")
    return values[name]


def dig(document, path: str) -> str:
    current = document
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return ""
    return "" if current is None or isinstance(current, dict | list) else str(current)


class HttpJsonBackend(Backend):
    def __init__(self, *, channel: str) -> None:
        super().__init__(channel=channel)
        options = settings.MAESTRA_HTTP_JSON.get(channel) or {}
        if not options.get("url"):
            raise BackendMisconfigured(f"MAESTRA_HTTP_JSON[{channel!r}] has no url")
        self.url = options["url"]
        self.headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        self.body = options.get("body") or DEFAULT_BODIES.get(channel, {"to": "{to}", "text": "{text}"})
        self.id_field = options.get("id_field", "id")
        self.client = http_client(timeout=float(options.get("timeout", 10)), guard=False)

    def send(self, message: Outgoing) -> SendResult:
        rendered = message.rendered
        to = rendered.get("to")
        destinations = to if isinstance(to, list) else [to]
        results = [self._send_one(message, destination) for destination in destinations if destination]
        return combine(results)

    def _send_one(self, message: Outgoing, destination: str) -> SendResult:
        values = {
            "to": destination,
            "text": message.rendered.get("text", ""),
            "title": message.rendered.get("title", ""),
            "body": message.rendered.get("body", ""),
            "data": message.rendered.get("data", {}),
            "message_id": str(message.id),
            "idempotency_key": message.idempotency_key,
        }
        try:
            payload = json.dumps(fill(self.body, values), ensure_ascii=False).encode()
        except BackendMisconfigured as exc:
            return SendResult(outcome=Outcome.RETRY, reason=f"backend_misconfigured: {exc}")
        headers = {
            "Content-Type": "application/json",
            **self.headers,
            "Idempotency-Key": message.idempotency_key,
        }
        try:
            answer = http_request(self.client, method="POST", url=self.url, headers=headers, content=payload)
        except Exception as exc:
            return transport_error_result(exc)
        provider_id = ""
        if self.id_field:
            try:
                provider_id = dig(json.loads(answer.body), self.id_field)[:200]
            except ValueError:
                provider_id = ""
        return classify_status(answer, provider_id=provider_id)

    def close(self) -> None:
        self.client.close()
