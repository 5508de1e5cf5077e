"""Email through Django's SMTP backend to a real SMTP server (aiosmtpd) on 127.0.0.1."""

import email
import email.policy
import smtplib
from collections import Counter

import pytest
from django.core import mail

from channels.backends import Outcome
from channels.backends.email import smtp_error_result
from channels.delivery import deliver_all_due, deliver_due
from channels.models import Message
from channels.outbox import queue_messages
from tests.channels.conftest import send_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue_email(make_template, make_customer, settings):
    settings.MAESTRA_EMAIL_FROM = "Shop <news@shop.example>"
    settings.MAESTRA_EMAIL_MESSAGE_ID_DOMAIN = ""
    make_template(
        "welcome",
        purpose="service",
        subject="Welcome, {{ customer.first_name }}",
        text="Hello {{ customer.first_name }}, your code is {{ promo_code }}.",
        html="<p>Hello <b>{{ customer.first_name }}</b>, code {{ promo_code }}</p>",
    )

    def queue(*, run_id=1, **customer_fields) -> Message:
        customer = make_customer(**customer_fields)
        req = send_request(customer.id, "welcome", run_id=run_id, context={"promo_code": "SAVE<10>"})
        return Message.objects.get(id=queue_messages(requests=[req])[req.key].id)

    return queue


def parse(envelope):
    return email.message_from_bytes(envelope.original_content, policy=email.policy.default)


def test_it_sends_text_and_autoescaped_html_over_smtp(smtp_server, queue_email):
    row = queue_email(first_name="<Ann & Bob>", email="ann@example.com")
    assert deliver_due()["sent"] == 1

    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "news@shop.example"
    assert envelope.rcpt_tos == ["ann@example.com"]
    message = parse(envelope)
    assert message["Subject"] == "Welcome, <Ann & Bob>"
    assert message["From"] == "Shop <news@shop.example>"
    assert message["Message-ID"] == f"<maestra-{row.id}@shop.example>"
    assert message.get_body(("plain",)).get_content().strip() == "Hello <Ann & Bob>, your code is SAVE<10>."
    assert message.get_body(("html",)).get_content().strip() == (
        "<p>Hello <b>&lt;Ann &amp; Bob&gt;</b>, code SAVE&lt;10&gt;</p>"
    )
    row.refresh_from_db()
    assert (row.status, row.provider_id) == ("sent", f"<maestra-{row.id}@shop.example>")


def assert_received_once_each(smtp_server, rows) -> None:
    ids = sorted(parse(e)["Message-ID"] for e in smtp_server.envelopes)
    assert ids == sorted(f"<maestra-{r.id}@shop.example>" for r in rows)


def test_several_messages_share_one_session(smtp_server, queue_email, settings):
    settings.MAESTRA_SMTP_CONNECTIONS = 1
    rows = [queue_email(run_id=i, email=f"p{i}@example.com") for i in range(3)]
    assert deliver_due()["sent"] == 3
    assert_received_once_each(smtp_server, rows)
    assert len(set(smtp_server.peers)) == 1


def test_a_drain_sends_over_its_parallel_sessions_and_keeps_them_across_chunks(
    smtp_server, queue_email, settings
):
    settings.MAESTRA_SMTP_CONNECTIONS = 4
    settings.MAESTRA_DELIVERY_GROUP = 8
    settings.MAESTRA_DELIVERY_CHUNK = 8
    rows = [queue_email(run_id=i, email=f"p{i}@example.com") for i in range(40)]
    assert deliver_all_due()["sent"] == 40
    assert_received_once_each(smtp_server, rows)
    # Five chunks of eight, each spread over the same four sessions in
    # shares of two: four client ports in all. Which session takes which
    # share is up to the thread pool (a session that finishes first may take
    # a second share of the same chunk under load), so only whole shares.
    assert len(set(smtp_server.peers)) == 4
    assert all(count % 2 == 0 for count in Counter(smtp_server.peers).values())


def test_a_permanent_refusal_fails_and_a_temporary_one_is_retried(smtp_server, queue_email):
    smtp_server.refuse = {
        "gone@example.com": "550 5.1.1 No such user",
        "busy@example.com": "451 4.3.0 Try later",
    }
    gone = queue_email(run_id=1, email="gone@example.com")
    busy = queue_email(run_id=2, email="busy@example.com")
    ok = queue_email(run_id=3, email="ok@example.com")
    assert deliver_due() == {"claimed": 3, "sent": 1, "retried": 1, "failed": 1, "expired": 0}
    for row in (gone, busy, ok):
        row.refresh_from_db()
    assert gone.status == "failed" and gone.reason.startswith("smtp_recipient_refused: 550")
    assert busy.status == "queued" and busy.reason.startswith("smtp_recipient_refused: 451")
    # The session survived the refusals: the next message went through.
    assert ok.status == "sent"
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [["ok@example.com"]]


def test_an_unreachable_server_is_retried(settings, queue_email):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    row = queue_email()
    assert deliver_due()["retried"] == 1
    row.refresh_from_db()
    assert row.status == "queued"
    assert row.reason.startswith("smtp_connection: ConnectionRefusedError")


def test_the_locmem_backend_gets_the_message_id_too(queue_email, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    row = queue_email()
    deliver_due()
    [sent] = mail.outbox
    assert sent.extra_headers["Message-ID"] == f"<maestra-{row.id}@shop.example>"
    assert sent.alternatives[0][1] == "text/html"


@pytest.mark.parametrize(
    "exc, outcome",
    [
        (smtplib.SMTPDataError(554, b"rejected"), Outcome.FAILED),
        (smtplib.SMTPDataError(452, b"full"), Outcome.RETRY),
        (smtplib.SMTPSenderRefused(553, b"bad sender", "x@y"), Outcome.FAILED),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), Outcome.RETRY),
        (smtplib.SMTPServerDisconnected("gone"), Outcome.RETRY),
        (TimeoutError("slow"), Outcome.RETRY),
        (ValueError("bad header"), Outcome.FAILED),
    ],
)
def test_smtp_errors_are_classified(exc, outcome):
    assert smtp_error_result(exc).outcome == outcome


def test_each_customer_gets_their_own_content_over_the_written_bytes(smtp_server, queue_email, settings):
    # The plain case is written without Django's MIME tree
    # (channels/backends/mime.py): nothing of one message may end up in another.
    settings.MAESTRA_SMTP_CONNECTIONS = 2
    rows = {
        name: queue_email(run_id=i, first_name=name) for i, name in enumerate(["Ann", "Bob", "Cleo", "Dan"])
    }
    assert deliver_all_due()["sent"] == 4
    received = {envelope.rcpt_tos[0]: parse(envelope) for envelope in smtp_server.envelopes}
    for name, row in rows.items():
        message = received[row.customer.email]
        assert message["To"] == row.customer.email
        assert message["Subject"] == f"Welcome, {name}"
        assert message["Message-ID"] == f"<maestra-{row.id}@shop.example>"
        assert message["Date"]
        assert message.get_body(("plain",)).get_content().strip() == f"Hello {name}, your code is SAVE<10>."
        assert f"<b>{name}</b>" in message.get_body(("html",)).get_content()
        others = [other for other in rows if other != name]
        raw = smtp_server.envelopes[[e.rcpt_tos[0] for e in smtp_server.envelopes].index(row.customer.email)]
        assert not any(f"Hello {other}".encode() in raw.original_content for other in others)


def test_non_ascii_headers_still_go_through_django_encoded(smtp_server, queue_email):
    row = queue_email(first_name="Jürgen", email="j@example.com")
    assert deliver_due()["sent"] == 1
    [envelope] = smtp_server.envelopes
    assert b"=?utf-8?" in envelope.original_content  # RFC 2047, Django's encoding
    message = parse(envelope)
    assert message["Subject"] == "Welcome, Jürgen"
    assert message["Message-ID"] == f"<maestra-{row.id}@shop.example>"
    assert message.get_body(("plain",)).get_content().strip() == "Hello Jürgen, your code is SAVE<10>."
