"""The bytes of an outgoing email, written directly for the common case: the
same bytes, header for header, as Django's EmailMultiAlternatives turned
into bytes by the standard library's generator (what Django's SMTP backend
sends), at a fraction of the CPU. Building the MIME tree and folding every
header through email.header.Header was about a quarter of a delivery
worker's CPU per message (bench/delivery.py --profile).

`email_bytes` answers None whenever the message is not the plain case it
knows (non-ASCII or over-long header values, a header Django would fold or
encode, a body line over RFC 5322's 998 octets, an address that is not a
simple dot-atom, a charset other than utf-8): the caller then goes through
Django, which encodes, folds or refuses (header injection) as it always
did. tests/channels/test_email_mime.py compares the two byte for byte.
"""

from __future__ import annotations

import functools
import re

from django.core.mail.message import RFC5322_EMAIL_LINE_LENGTH_LIMIT, sanitize_address

# A header line the compat32 policy leaves as it is: printable ASCII (so no
# CR/LF: no injection), at most 78 characters with its name (RFC 5322's
# recommended length, where the generator would start folding).
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
FOLD_AT = 78
# A longer value with no whitespace and none of the generator's split
# characters (";" and ","): it cannot be split.
_UNFOLDABLE = re.compile(r"[\x21-\x7e]*")
_FOLD_CHARS = frozenset(";,")
# An addr-spec Django's sanitize_address gives back unchanged: a dot-atom of
# the common characters @ a hostname of ASCII labels (IDNA leaves those as
# they are).
_SIMPLE_ADDRESS = re.compile(
    r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*"
)
# A boundary of the kind channels.backends.email makes ("=" and hex digits),
# short enough to sit on one folded line.
_BOUNDARY = re.compile(r"[=0-9a-f]{1,60}")
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")

CRLF = b"\r\n"


def _header(name: str, value: str) -> bytes | None:
    """`Name: value` CRLF as the compat32 generator writes it, or None when
    it would fold or encode it."""
    if not _PRINTABLE.fullmatch(value):
        return None
    line = f"{name}: {value}"
    if len(line) <= FOLD_AT:
        return line.encode("ascii") + CRLF
    if value and _UNFOLDABLE.fullmatch(value) and _FOLD_CHARS.isdisjoint(value):
        # Too long and nowhere to split (a long List-Unsubscribe URL): the
        # generator moves it whole to a continuation line.
        return f"{name}: \r\n {value}\r\n".encode("ascii")
    return None


def _text_part(text: str, subtype: str) -> tuple[bytes, bytes] | None:
    """(headers, body) of Django's SafeMIMEText(text, subtype, "utf-8"):
    7bit when ASCII, else 8bit; None where Django would use
    quoted-printable (a line over 998 octets) or the text cannot be utf-8."""
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: Django's business
        return None
    # Django's own test, on str.splitlines()'s lines (which splits on more
    # than CR and LF).
    if len(body) > RFC5322_EMAIL_LINE_LENGTH_LIMIT and any(
        len(line.encode("utf-8")) > RFC5322_EMAIL_LINE_LENGTH_LIMIT for line in text.splitlines()
    ):
        return None
    cte = b"7bit" if body.isascii() else b"8bit"
    headers = (
        b"Content-Type: text/" + subtype.encode("ascii") + b'; charset="utf-8"\r\n'
        b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: " + cte + CRLF
    )
    # The generator writes every line end (CRLF, CR or LF) as CRLF.
    body = _LINE_ENDS.sub(CRLF, body) if b"\r" in body else body.replace(b"\n", CRLF)
    return headers, body


def _multipart_content_type(boundary: str) -> bytes | None:
    # The generator folds the header at "; " when it is longer than 78.
    if not _BOUNDARY.fullmatch(boundary):
        return None
    line = f'Content-Type: multipart/alternative; boundary="{boundary}"'
    if len(line) <= FOLD_AT:
        return line.encode("ascii") + CRLF
    return f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode("ascii")


@functools.lru_cache(maxsize=8)
def envelope_sender(from_email: str) -> str:
    # What Django's SMTP backend gives smtplib as the sender (constant per
    # setting, so parsed once).
    return sanitize_address(from_email, "utf-8")


def simple_recipient(address: str) -> bool:
    """True when Django's sanitize_address(address) is address itself."""
    return bool(_SIMPLE_ADDRESS.fullmatch(address))


def email_bytes(
    *,
    subject: str,
    text: str,
    html: str,
    from_email: str,
    to: str,
    headers: dict[str, str],
    date: str,
    boundary: str,
) -> bytes | None:
    """The message as Django's SMTP backend would send it (linesep CRLF), for
    EmailMultiAlternatives(subject, text, from_email, [to], headers=headers)
    with `html` attached as text/html when given, `date` as its Date and
    `boundary` as its MIME boundary; None when this is not the simple case
    (the caller then asks Django)."""
    if not simple_recipient(to):
        return None
    top = [
        _header("Subject", subject),
        _header("From", from_email),
        _header("To", to),
        _header("Date", date),
    ]
    lowered = {name.lower() for name in headers}
    if lowered & {"subject", "from", "to", "cc", "reply-to", "date", "content-type", "mime-version"}:
        return None  # Django treats these apart: not the plain case
    if "message-id" not in lowered:
        return None  # Django makes one up
    top += [_header(name, value) for name, value in headers.items()]
    if None in top:
        return None
    parts = []
    for body, subtype in ((text, "plain"), (html, "html")):
        # Django attaches the text part only when there is text, and the
        # html alternative when given; a message of text alone is one part.
        if body or (subtype == "plain" and not html):
            part = _text_part(body, subtype)
            if part is None:
                return None
            parts.append(part)
    if not html:
        ((part_headers, body),) = parts
        return part_headers + b"".join(top) + CRLF + body  # type: ignore[arg-type]
    content_type = _multipart_content_type(boundary)
    if content_type is None:
        return None
    mark = b"--" + boundary.encode("ascii")
    out = [
        content_type,
        b"MIME-Version: 1.0\r\n",
        *top,
        CRLF,
    ]
    for index, (part_headers, body) in enumerate(parts):
        out += [CRLF if index else b"", mark, CRLF, part_headers, CRLF, body]
    out += [CRLF, mark, b"--", CRLF]
    return b"".join(out)  # type: ignore[arg-type]
