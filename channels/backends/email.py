"""Email through Django's mail framework, so the transport is whatever
EMAIL_BACKEND says: SMTP in production (EMAIL_HOST, EMAIL_PORT, …), the
console or locmem backend in development and tests.

Throughput: one SMTP session is opened per connection and reused for the whole
drain (no handshake per message), and a group of messages
(MAESTRA_DELIVERY_GROUP) is spread over MAESTRA_SMTP_CONNECTIONS sessions sent
from as many threads: the time is spent waiting on the server's replies, which
threads overlap (the GIL is released on the socket)."""

from __future__ import annotations

import contextlib
import functools
import secrets
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPEmailBackend
from django.core.mail.message import DNS_NAME

from channels.backends import Backend, Outcome, Outgoing, SendResult, unknown_outcome_result
from channels.backends.mime import email_bytes, envelope_sender


def message_id_domain() -> str:
    return _domain(settings.MAESTRA_EMAIL_MESSAGE_ID_DOMAIN, settings.MAESTRA_EMAIL_FROM)


@functools.lru_cache(maxsize=8)
def _domain(configured: str, from_email: str) -> str:
    # Cached by the settings' values: parsing the From address is a fair
    # share of a message's CPU when done twice per message.
    if configured:
        return configured
    _name, address = parseaddr(from_email)
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


# Django's mail backends that hand a message over inside this process (tests,
# development): nothing leaves the machine, so a whole group is one call.
IN_PROCESS_EMAIL_BACKENDS = {
    f"django.core.mail.backends.{name}.EmailBackend" for name in ("locmem", "console", "filebased", "dummy")
}


class DjangoEmailBackend(Backend):
    def __init__(self, *, channel: str) -> None:
        super().__init__(channel=channel)
        self.connections_wanted = max(1, settings.MAESTRA_SMTP_CONNECTIONS)
        self.in_process = settings.EMAIL_BACKEND in IN_PROCESS_EMAIL_BACKENDS
        if self.in_process:
            # One send_messages() call for the whole group: one in-process
            # provider call, so the whole group is legitimately in flight.
            self.group_size = max(1, settings.MAESTRA_DELIVERY_GROUP or settings.MAESTRA_DELIVERY_CHUNK)
        else:
            # Messages marked `sending` together: one group over all the
            # sessions. By default one message per session: `sending` is
            # then exactly what is inside a provider call
            # (MAESTRA_DELIVERY_GROUP in settings.py).
            group = settings.MAESTRA_DELIVERY_GROUP or self.connections_wanted
            self.group_size = max(1, group) if self.connections_wanted > 1 else 1
        self._local = threading.local()
        self._connections: list = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def connection(self):
        """This thread's mail connection (one SMTP session, many messages)."""
        conn = getattr(self._local, "connection", None)
        if conn is None:
            conn = self._local.connection = get_connection(fail_silently=False)
            with self._lock:
                self._connections.append(conn)
        return conn

    def _email(self, message: Outgoing, connection) -> EmailMultiAlternatives:
        rendered = message.rendered
        email = _Email(
            subject=rendered.get("subject", ""),
            body=rendered.get("text", ""),
            from_email=settings.MAESTRA_EMAIL_FROM,
            to=[rendered["to"]],
            headers=email_headers(message_pk=message.id, rendered=rendered),
            connection=connection,
        )
        if rendered.get("html"):
            email.attach_alternative(rendered["html"], "text/html")
        return email

    def _smtp_bytes(self, message: Outgoing, connection) -> bytes | None:
        """The message's bytes written directly (channels/backends/mime.py)
        when it goes through Django's own SMTP backend (not a subclass, which
        may sign or rewrite messages in its _send) and is the plain case;
        else None, and Django builds it."""
        if type(connection) is not SMTPEmailBackend or settings.DEFAULT_CHARSET != "utf-8":
            return None
        rendered = message.rendered
        # As _email() reads them; anything but strings is left to Django.
        subject, text = rendered.get("subject", ""), rendered.get("text", "")
        html, to = rendered.get("html") or "", rendered["to"]
        if not all(isinstance(value, str) for value in (subject, text, html, to)):
            return None
        return email_bytes(
            subject=subject,
            text=text,
            html=html,
            from_email=settings.MAESTRA_EMAIL_FROM,
            to=to,
            headers=email_headers(message_pk=message.id, rendered=rendered),
            date=formatdate(localtime=settings.EMAIL_USE_LOCALTIME),
            boundary=_boundary(),
        )

    def send(self, message: Outgoing) -> SendResult:
        connection = self.connection
        mid = message_id(message.id)
        data = self._smtp_bytes(message, connection)
        email = None if data is not None else self._email(message, connection)
        try:
            if email is None:
                sent = _send_bytes(connection, to=message.rendered["to"], data=data)
            else:
                connection.open()  # no-op while the session is open
                sent = connection.send_messages([email])
        except Exception as exc:
            # After an error the session may be half-way through a transaction
            # or gone: start a fresh one for the next message.
            _close_quietly(connection)
            return smtp_error_result(exc)
        if not sent:
            _close_quietly(connection)
            return SendResult(outcome=Outcome.RETRY, reason="smtp_connection: the backend sent nothing")
        return SendResult(outcome=Outcome.SENT, provider_id=mid)

    def send_many(self, messages: list[Outgoing]) -> list[SendResult]:
        """In process (locmem, console…): the group in one send_messages()
        call. Else the group spread over the sessions: session i sends
        messages i, i+k, i+2k… one after the other (k sessions), all
        sessions at once."""
        if self.in_process and len(messages) > 1:
            return self._send_in_one_call(messages)
        lanes = min(self.connections_wanted, len(messages))
        if lanes <= 1:
            return super().send_many(messages)
        shares = [messages[i::lanes] for i in range(lanes)]
        answers = list(self._session_pool().map(super().send_many, shares))
        results: list[SendResult] = [None] * len(messages)  # type: ignore[list-item]
        for i, answer in enumerate(answers):
            results[i::lanes] = answer
        return results

    def _send_in_one_call(self, messages: list[Outgoing]) -> list[SendResult]:
        connection = self.connection
        results: list[SendResult | None] = [None] * len(messages)
        emails = []
        for index, message in enumerate(messages):
            try:
                emails.append((index, self._email(message, connection)))
            except Exception as exc:  # this message only, as send() would answer it
                results[index] = unknown_outcome_result(exc)
        try:
            sent = connection.send_messages([email for _index, email in emails]) if emails else 0
        except Exception as exc:
            return [result or unknown_outcome_result(exc) for result in results]
        for index, _email in emails:
            # An in-process backend sends all or raises; should one answer
            # fewer, which ones went is unknown, and unknown is never retried.
            results[index] = (
                SendResult(outcome=Outcome.SENT, provider_id=message_id(messages[index].id))
                if sent == len(emails)
                else unknown_outcome_result(RuntimeError(f"{sent} of {len(emails)} sent"))
            )
        return results  # type: ignore[return-value]

    def _session_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.connections_wanted, thread_name_prefix="maestra-smtp")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            _close_quietly(connection)
        self._local = threading.local()


def _boundary() -> str:
    # Chosen at random up front: the standard library otherwise makes one by
    # compiling a regular expression per message to search the body for it
    # (a quarter of the CPU of turning a message into bytes). 128 random
    # bits cannot be guessed into a body.
    return f"==============={secrets.token_hex(16)}=="


class _Email(EmailMultiAlternatives):
    """Django's email with its MIME boundary chosen up front (_boundary)."""

    def message(self, **kwargs):
        msg = super().message(**kwargs)
        if msg.is_multipart():
            msg.set_boundary(_boundary())
        return msg


def _send_bytes(connection: SMTPEmailBackend, *, to: str, data: bytes) -> int:
    """What Django's SMTP send_messages() does with one message, given its
    bytes: open the session if needed (0 when it could not, silently), then
    smtplib's sendmail from the same envelope sender to the same recipient
    (mime.email_bytes wrote `data` only for an address Django would pass
    on unchanged). smtplib's errors propagate, as with fail_silently=False.
    No lock: a session is used by its own thread only (connection above)."""
    created = connection.open()
    if not connection.connection or created is None:
        return 0
    connection.connection.sendmail(envelope_sender(settings.MAESTRA_EMAIL_FROM), [to], data)
    return 1


def _close_quietly(connection) -> None:
    # Closing a broken session may fail; a new one is opened next time.
    with contextlib.suppress(Exception):
        connection.close()
