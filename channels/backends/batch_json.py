"""A provider's batch JSON API: many messages in one HTTP request, over one
kept-alive connection for the whole drain.

Configured per channel in settings.MAESTRA_BATCH_JSON (env MAESTRA_BATCH_JSON,
a JSON object), e.g. for SMS:

    {"sms": {"url": "https://sms.example.com/v1/batch",
             "headers": {"Authorization": "Bearer <token>"},
             "item": {"to": "{to}", "text": "{text}", "ref": "{idempotency_key}"},
             "envelope": "messages",
             "batch_size": 100,
             "results": "results",
             "id_field": "id",
             "error_field": "error",
             "timeout": 10}}

The request body is {envelope: [item, item, …]} (placeholders as in
http_json.py: to, text, subject, html, title, body, data, message_id,
idempotency_key); without `envelope`, the bare list. The
`Idempotency-Key` header is the batch's first and last keys. The answer:
a non-2xx status applies to every message of the batch (429, 408 and 5xx
retried, Retry-After honoured; other 4xx failed). On 2xx, when `results`
names a list in the answer with one entry per item, in order, an entry whose
`error_field` is set fails that message (its text is the reason) and
`id_field` is the provider's id; otherwise every message is sent. (The
answer is read up to 4 KB plus 512 bytes per item.)

A message to several destinations (mobile push tokens) is one item per
destination; its row is sent if any item was (http_json.combine).
`batch_size` (default 100, at most 1,000) is also the group the worker marks
`sending` together: a crash of the worker loses at most one batch, the
request in flight.
"""

from __future__ import annotations

import json

from django.conf import settings

from channels.backends import Backend, BackendMisconfigured, Outcome, Outgoing, SendResult
from channels.backends.http import classify_status, combine, http_request, transport_error_result
from channels.backends.http_json import dig, fill
from channels.netguard import http_client

DEFAULT_ITEM = {"to": "{to}", "text": "{text}", "idempotency_key": "{idempotency_key}"}
MAX_BATCH = 1000


class BatchJsonBackend(Backend):
    def __init__(self, *, channel: str) -> None:
        super().__init__(channel=channel)
        options = (settings.MAESTRA_BATCH_JSON or {}).get(channel) or {}
        if not options.get("url"):
            raise BackendMisconfigured(f"MAESTRA_BATCH_JSON[{channel!r}] has no url")
        self.url = options["url"]
        self.headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        self.item = options.get("item") or DEFAULT_ITEM
        self.envelope = options.get("envelope", "messages")
        self.results_path = options.get("results", "")
        self.id_field = options.get("id_field", "id")
        self.error_field = options.get("error_field", "error")
        try:
            self.group_size = max(1, min(MAX_BATCH, int(options.get("batch_size", 100))))
            timeout = float(options.get("timeout", 10))
        except (TypeError, ValueError):
            raise BackendMisconfigured(
                f"MAESTRA_BATCH_JSON[{channel!r}]: batch_size and timeout are numbers"
            ) from None
        # One client, so one kept-alive connection, for the backend's life (a drain).
        self.client = http_client(timeout=timeout, guard=False)

    def send(self, message: Outgoing) -> SendResult:
        return self.send_many([message])[0]

    def send_many(self, messages: list[Outgoing]) -> list[SendResult]:
        items, owners, early = [], [], {}
        for index, message in enumerate(messages):
            to = message.rendered.get("to")
            destinations = [d for d in (to if isinstance(to, list) else [to]) if d]
            if not destinations:
                early[index] = SendResult(outcome=Outcome.FAILED, reason="no_token")
                continue
            for destination in destinations:
                try:
                    items.append(fill(self.item, _values(message, destination)))
                except BackendMisconfigured as exc:
                    early[index] = SendResult(outcome=Outcome.RETRY, reason=f"backend_misconfigured: {exc}")
                    break
                owners.append(index)
        per_item = self._post(items, keys=[messages[i].idempotency_key for i in owners]) if items else []
        results = []
        for index in range(len(messages)):
            if index in early:
                results.append(early[index])
            else:
                results.append(
                    combine([r for owner, r in zip(owners, per_item, strict=True) if owner == index])
                )
        return results

    def _post(self, items: list, *, keys: list[str]) -> list[SendResult]:
        body = {self.envelope: items} if self.envelope else items
        headers = {
            "Content-Type": "application/json",
            **self.headers,
            "Idempotency-Key": f"{keys[0]}..{keys[-1]}",
        }
        try:
            answer = http_request(
                self.client,
                method="POST",
                url=self.url,
                headers=headers,
                content=json.dumps(body, ensure_ascii=False).encode(),
                items=len(items),
            )
        except Exception as exc:
            return [transport_error_result(exc)] * len(items)
        batch = classify_status(answer)
        if batch.outcome != Outcome.SENT:
            return [batch] * len(items)
        entries = self._entries(answer.body, expected=len(items))
        if entries is None:
            return [batch] * len(items)
        results = []
        for entry in entries:
            error = dig(entry, self.error_field) if self.error_field else ""
            if error:
                results.append(
                    SendResult(
                        outcome=Outcome.FAILED,
                        reason=f"provider_error: {error}"[:300],
                        response_status=answer.status,
                        response_body=json.dumps(entry)[:4096],
                    )
                )
            else:
                provider_id = dig(entry, self.id_field)[:200] if self.id_field else ""
                results.append(
                    SendResult(outcome=Outcome.SENT, provider_id=provider_id, response_status=answer.status)
                )
        return results

    def _entries(self, body: str, *, expected: int) -> list | None:
        """The per-item entries of the answer, or None when there are none to
        read (no `results` path, a body that is not JSON, a list of another
        length: the whole batch's status then speaks for every item)."""
        if not self.results_path:
            return None
        try:
            document = json.loads(body)
        except ValueError:
            return None
        entries = document
        for part in self.results_path.split("."):
            entries = entries.get(part) if isinstance(entries, dict) else None
        if not isinstance(entries, list) or len(entries) != expected:
            return None
        return [entry if isinstance(entry, dict) else {} for entry in entries]

    def close(self) -> None:
        self.client.close()


def _values(message: Outgoing, destination) -> dict:
    rendered = message.rendered
    return {
        "to": destination,
        "text": rendered.get("text", ""),
        "subject": rendered.get("subject", ""),
        "html": rendered.get("html", ""),
        "title": rendered.get("title", ""),
        "body": rendered.get("body", ""),
        "data": rendered.get("data", {}),
        "message_id": str(message.id),
        "idempotency_key": message.idempotency_key,
    }
