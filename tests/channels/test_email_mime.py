"""channels.backends.mime writes an email's bytes without Django's MIME tree:
the same bytes as Django's EmailMultiAlternatives through the standard
library's generator, byte for byte, whenever it answers; and it answers None
(so Django does the work) for whatever it does not write the same way."""

from __future__ import annotations

import django.core.mail.message as django_message
import pytest
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import sanitize_address
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from channels.backends.mime import email_bytes, envelope_sender, simple_recipient

DATE = "Sun, 06 Dec 2026 22:38:00 -0000"
BOUNDARY = "===============0123456789abcdef0123456789abcdef=="


def django_bytes(*, subject, text, html, from_email, to, headers, boundary=BOUNDARY) -> bytes:
    email = EmailMultiAlternatives(
        subject=subject, body=text, from_email=from_email, to=[to], headers=headers
    )
    if html:
        email.attach_alternative(html, "text/html")
    msg = email.message()
    if msg.is_multipart():
        msg.set_boundary(boundary)
    return msg.as_bytes(linesep="\r\n")


@pytest.fixture(autouse=True)
def fixed_date(monkeypatch):
    monkeypatch.setattr(django_message, "formatdate", lambda localtime=False: DATE)


# The sender and recipient of the shop's emails in the examples below.
SHOP = {"from_email": "Shop <news@shop.example>", "to": "ann@example.com"}


def both(**kwargs) -> tuple[bytes | None, bytes]:
    fast = email_bytes(date=DATE, boundary=kwargs.pop("boundary", BOUNDARY), **kwargs)
    return fast, django_bytes(**kwargs)


def test_it_writes_a_text_and_html_email_as_django_does():
    fast, slow = both(
        subject="Your order",
        text="Thank you for your order.\nSee you soon. Grüße",
        html="<p>Thank you</p>\n",
        **SHOP,
        headers={"Message-ID": "<maestra-7@shop.example>", "X-Maestra-Message": "7"},
    )
    assert fast == slow
    assert b"Content-Transfer-Encoding: 8bit" in fast


def test_it_writes_text_alone_and_html_alone_as_django_does():
    common = {
        "subject": "Hi",
        "from_email": "a@b.example",
        "to": "c@d.example",
        "headers": {"Message-ID": "<1@b>"},
    }
    fast, slow = both(text="only text", html="", **common)
    assert fast == slow
    fast, slow = both(text="", html="<p>only html</p>", **common)
    assert fast == slow
    assert b"text/plain" not in fast


def test_a_long_unsubscribe_url_stays_on_its_line_as_django_writes_it():
    url = "https://shop.example/l/" + "x" * 200
    fast, slow = both(
        subject="News",
        text="t",
        html="<p>h</p>",
        **SHOP,
        headers={
            "Message-ID": "<maestra-7@shop.example>",
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    assert fast == slow


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "Grüße"},  # non-ASCII header: RFC 2047 encoding is Django's
        {"subject": "word " * 20},  # folded by the generator
        {"subject": "Hi\r\nBcc: x@evil.example"},  # header injection: Django refuses it
        {"to": "Ann <ann@example.com>"},  # a display name
        {"to": "ann@exämple.com"},  # IDNA
        {"to": '"a b"@example.com'},  # a quoted local part
        {"to": ""},
        {"text": "x" * 999},  # quoted-printable
        {"html": "<p>" + "é" * 600 + "</p>"},  # 1,200 octets on one line
        {"from_email": "Jürgen <j@example.com>"},
        {"headers": {"Message-ID": "<1@b>", "Date": DATE}},
        {"headers": {"Message-ID": "<1@b>", "X-Note": "a;" * 50}},  # long and foldable
        {"headers": {}},  # Django makes up a Message-ID
    ],
)
def test_it_leaves_to_django_what_it_does_not_write_the_same_way(change):
    kwargs = {
        "subject": "Hi",
        "text": "text",
        "html": "<p>html</p>",
        "from_email": "Shop <news@shop.example>",
        "to": "ann@example.com",
        "headers": {"Message-ID": "<1@b>"},
        **change,
    }
    assert email_bytes(date=DATE, boundary=BOUNDARY, **kwargs) is None


ascii_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=90)
# Pieces that matter to a MIME writer: line ends of every kind, dots at a
# line's start, non-ASCII, what str.splitlines() splits on, encoded words.
any_text = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
        st.sampled_from(
            ["\n", "\r", "\r\n", ".", "é", "ß", "€", "\u2028", "\x0b", "\t", "=?utf-8?q?x?=", "x" * 990]
        ),
    ),
    max_size=12,
).map("".join)
addresses = st.one_of(
    st.from_regex(r"[a-z0-9._%+\-]{1,12}@[a-z0-9\-]{1,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    st.emails().map(str),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subject=st.one_of(ascii_text, any_text),
    text=any_text,
    html=st.one_of(st.just(""), any_text),
    to=addresses,
    unsubscribe=st.one_of(st.just(""), ascii_text),
    boundary=st.sampled_from([BOUNDARY, "===============1==", "abc"]),
)
@example(subject="", text="", html="", to="a@b.c", unsubscribe="", boundary=BOUNDARY)
@example(subject=" x  y ", text="a\r\n\r\n.b\n", html="", to="a@b.c", unsubscribe="<u;v>", boundary=BOUNDARY)
def test_whenever_it_answers_it_answers_djangos_bytes(subject, text, html, to, unsubscribe, boundary):
    headers = {"Message-ID": "<maestra-1@shop.example>", "X-Maestra-Message": "1"}
    if unsubscribe:
        headers["List-Unsubscribe"] = unsubscribe
    kwargs = {
        "subject": subject,
        "text": text,
        "html": html,
        "from_email": "Shop <news@shop.example>",
        "to": to,
        "headers": headers,
    }
    fast = email_bytes(date=DATE, boundary=boundary, **kwargs)
    if fast is not None:
        assert fast == django_bytes(boundary=boundary, **kwargs)


@given(address=addresses)
def test_a_simple_recipient_is_what_django_gives_smtplib(address):
    if simple_recipient(address):
        assert sanitize_address(address, "utf-8") == address


def test_the_envelope_sender_is_djangos():
    assert envelope_sender("Shop <news@shop.example>") == sanitize_address(
        "Shop <news@shop.example>", "utf-8"
    )
