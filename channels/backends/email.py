"""Email through Django's mail framework, so the transport is whatever
EMAIL_BACKEND says: SMTP in production (EMAIL_HOST, EMAIL_PORT, …), the
console or locmem backend in development and tests."""

from __future__ import annotations

import contextlib
import smtplib
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import DNS_NAME

from channels.backends import Backend, Outcome, Outgoing, SendResult


def message_id_domain() -> str:
    if settings.MAESTRA_EMAIL_MESSAGE_ID_DOMAIN:
        return settings.MAESTRA_EMAIL_MESSAGE_ID_DOMAIN
    _name, address = parseaddr(settings.MAESTRA_EMAIL_FROM)
    return address.rpartition("@")[2] or str(DNS_NAME)


def message_id(message_pk: int) -> str:
    # The row id in the Message-ID: bounces and replies lead back to the row,
    # and an SMTP relay that de-duplicates by Message-ID drops a second copy.
    return f"<maestra-{message_pk}@{message_id_domain()}>"


def email_headers(*, message_pk: int, rendered: dict) -> dict[str, str]:
    headers = {"Message-ID": message_id(message_pk), "X-Maestra-Message": str(message_pk)}
    if rendered.get("list_unsubscribe"):
        # RFC 2369 + RFC 8058: mail providers show an unsubscribe button and
        # POST "List-Unsubscribe=One-Click" to the URL (channels/links.py).
        headers["List-Unsubscribe"] = f"<{rendered['list_unsubscribe']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def smtp_error_result(exc: Exception) -> SendResult:
    """SMTP replies 4xx are temporary, 5xx permanent (RFC 5321), except the
    ones that say our own configuration is wrong (authentication): those are
    retried so fixing the settings lets the queue drain."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        text = "; ".join(
            f"{code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"
            for code, msg in exc.recipients.values()
        )
        outcome = Outcome.FAILED if codes and min(codes) >= 500 else Outcome.RETRY
        return SendResult(
            outcome=outcome,
            reason=f"smtp_recipient_refused: {text}"[:300],
            response_status=min(codes) if codes else None,
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SendResult(
            outcome=Outcome.RETRY, reason=f"smtp_auth: {exc.smtp_code}", response_status=exc.smtp_code
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        message = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        outcome = Outcome.FAILED if 500 <= exc.smtp_code < 600 else Outcome.RETRY
        return SendResult(
            outcome=outcome, reason=f"smtp_{exc.smtp_code}: {message}"[:300], response_status=exc.smtp_code
        )
    if isinstance(exc, smtplib.SMTPException | OSError):
        # Disconnected, refused connection, timeout, TLS trouble: the server
        # or the network, not the message.
        return SendResult(outcome=Outcome.RETRY, reason=f"smtp_connection: {type(exc).__name__}: {exc}"[:300])
    return SendResult(outcome=Outcome.FAILED, reason=f"email_error: {type(exc).__name__}: {exc}"[:300])


class DjangoEmailBackend(Backend):
    def __init__(self, *, channel: str) -> None:
        super().__init__(channel=channel)
        # One connection for the whole round (one SMTP session, many messages).
        self.connection = get_connection(fail_silently=False)

    def send(self, message: Outgoing) -> SendResult:
        rendered = message.rendered
        mid = message_id(message.id)
        email = EmailMultiAlternatives(
            subject=rendered.get("subject", ""),
            body=rendered.get("text", ""),
            from_email=settings.MAESTRA_EMAIL_FROM,
            to=[rendered["to"]],
            headers=email_headers(message_pk=message.id, rendered=rendered),
            connection=self.connection,
        )
        if rendered.get("html"):
            email.attach_alternative(rendered["html"], "text/html")
        try:
            self.connection.open()  # no-op while the session is open
            sent = self.connection.send_messages([email])
        except Exception as exc:
            # After an error the session may be half-way through a transaction
            # or gone: start a fresh one for the next message.
            self._reset()
            return smtp_error_result(exc)
        if not sent:
            self._reset()
            return SendResult(outcome=Outcome.RETRY, reason="smtp_connection: the backend sent nothing")
        return SendResult(outcome=Outcome.SENT, provider_id=mid)

    def _reset(self) -> None:
        # Closing a broken session may fail; a new one is opened next time.
        with contextlib.suppress(Exception):
            self.connection.close()

    def close(self) -> None:
        self._reset()
