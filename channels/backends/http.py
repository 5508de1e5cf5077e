"""HTTP helpers shared by the HTTP backends (http_json, batch_json, webhook,
web push): one bounded request, the status as an outcome, Retry-After,
transport errors, and several devices' results as one row's."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

import httpx
from django.utils import timezone

from channels.backends import RESPONSE_BODY_LIMIT, Outcome, SendResult
from channels.netguard import DestinationNotAllowed


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: str
    headers: httpx.Headers


def http_request(
    client: httpx.Client,
    *,
    method: str,
    url: str,
    headers: dict,
    content: bytes | None,
    items: int = 0,
) -> HttpAnswer:
    """Send one request and read at most RESPONSE_BODY_LIMIT bytes of the
    answer, plus 512 per item of a batch (room for one short entry per
    item): a provider (or a hostile endpoint) cannot make us buffer more."""
    limit = RESPONSE_BODY_LIMIT + 512 * items
    with client.stream(method, url, headers=headers, content=content) as response:
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        body = b"".join(chunks)[:limit].decode("utf-8", errors="replace")
        return HttpAnswer(status=response.status_code, body=body, headers=response.headers)


def classify_status(answer: HttpAnswer, *, provider_id: str = "") -> SendResult:
    """2xx sent; 408, 429 and 5xx retried; any other answer failed at once
    (a redirect included: it is not followed)."""
    common = {"response_status": answer.status, "response_body": answer.body}
    if 200 <= answer.status < 300:
        return SendResult(outcome=Outcome.SENT, provider_id=provider_id, **common)
    reason = f"http_{answer.status}"
    if answer.status in (408, 429) or answer.status >= 500:
        return SendResult(
            outcome=Outcome.RETRY,
            reason=reason,
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
            **common,
        )
    return SendResult(outcome=Outcome.FAILED, reason=reason, **common)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def transport_error_result(exc: Exception) -> SendResult:
    """An exception from the HTTP client as a result: refused destinations and
    malformed requests fail at once; timeouts and network errors are retried."""
    if isinstance(exc, DestinationNotAllowed):
        return SendResult(outcome=Outcome.FAILED, reason=f"destination_not_allowed: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return SendResult(outcome=Outcome.RETRY, reason=f"timeout: {type(exc).__name__}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        return SendResult(outcome=Outcome.FAILED, reason=f"invalid_request: {exc}")
    if isinstance(exc, httpx.TransportError):
        return SendResult(outcome=Outcome.RETRY, reason=f"connection_error: {exc}")
    raise exc


def combine(results: list[SendResult]) -> SendResult:
    """One row, several devices: sent if any device took it (retrying would
    send the others a copy), else retried if any failure was transient, else
    failed. The per-device results go to the response body."""
    if not results:
        return SendResult(outcome=Outcome.FAILED, reason="no_token")
    if len(results) == 1:
        return results[0]
    summary = "; ".join(
        f"{r.outcome}{' ' + r.reason if r.reason else ''}{' ' + r.provider_id if r.provider_id else ''}"
        for r in results
    )[:RESPONSE_BODY_LIMIT]
    sent = [r for r in results if r.outcome == Outcome.SENT]
    if sent:
        return SendResult(
            outcome=Outcome.SENT,
            provider_id=",".join(r.provider_id for r in sent if r.provider_id)[:200],
            response_status=sent[0].response_status,
            response_body=summary,
            extra={"devices": results},
        )
    retry = [r for r in results if r.outcome == Outcome.RETRY]
    chosen = retry[0] if retry else results[0]
    return SendResult(
        outcome=chosen.outcome,
        reason=chosen.reason,
        response_status=chosen.response_status,
        response_body=summary,
        retry_after=max((r.retry_after or 0 for r in retry), default=None) or None,
        extra={"devices": results},
    )
