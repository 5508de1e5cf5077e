"""Fixtures for the channels tests: model factories and real servers on
127.0.0.1 (an HTTP server and an SMTP server) that record what they receive."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from channels.models import Message, Template
from channels.outbox import SendRequest, queue_messages
from customers.models import Customer, Subscription

# A valid template as the admin's add form posts it.
ADMIN_FORM = {
    "slug": "news",
    "name": "News",
    "channel": "email",
    "purpose": "marketing",
    "subject": "Hello {{ customer.first_name }}",
    "text": "Hi",
    "html": "",
    "method": "POST",
    "url": "",
    "headers": "{}",
    "secret": "s3cret-s3cret-s3cret",
}


@pytest.fixture
def make_customer(db):
    counter = iter(range(1, 1_000_000))

    def make(*, subscriptions: dict | None = None, **fields) -> Customer:
        n = next(counter)
        defaults = {
            "external_id": f"c{n}",
            "email": f"c{n}@example.com",
            "phone": "+49 151 2345678",
            "first_name": "Ann",
        }
        customer = Customer.objects.create(**{**defaults, **fields})
        for channel, status in (subscriptions or {}).items():
            Subscription.objects.create(customer=customer, channel=channel, status=status)
        return customer

    return make


@pytest.fixture
def make_template(db):
    def make(slug: str, channel: str = "email", **fields) -> Template:
        defaults = {
            "name": slug,
            "subject": "Hello {{ customer.first_name }}",
            "text": "Hi {{ customer.first_name }}",
        }
        return Template.objects.create(slug=slug, channel=channel, **{**defaults, **fields})

    return make


def use_backend(settings, backend: str, *channels: str) -> None:
    """Send `channels` (email if none are named) through `backend`, a dotted
    path; the other channels keep the backends they have."""
    chosen = dict.fromkeys(channels or ("email",), backend)
    settings.MAESTRA_CHANNEL_BACKENDS = {**settings.MAESTRA_CHANNEL_BACKENDS, **chosen}


def send_request(
    customer_id: int, slug: str, channel: str = "email", *, run_id: int, **fields
) -> SendRequest:
    """What a steps node asks the outbox for: one message of template `slug`,
    from node "n", step 0, pass 1 unless `fields` say otherwise."""
    fields = {"node_key": "n", "step_index": 0, "pass_no": 1, **fields}
    return SendRequest(customer_id=customer_id, template_slug=slug, channel=channel, run_id=run_id, **fields)


def queue_one(customer, slug: str, channel: str = "email", run_id: int = 1) -> Message:
    """Queue one message of template `slug` for `customer` through the
    outbox, as a steps node would; the row written."""
    request = send_request(customer.id, slug, channel, run_id=run_id)
    return Message.objects.get(id=queue_messages(requests=[request])[request.key].id)


# --- a real HTTP server -------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    peer: tuple = ()  # the client's (host, port): one per connection

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"id": "prov-1"}'
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0


class RecordingServer:
    """ThreadingHTTPServer on 127.0.0.1 that records every request and answers
    from a script of replies (then 200s)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.replies: list[Reply] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.requests.append(
                        Received(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            self.client_address,
                        )
                    )
                    reply = server.replies.pop(0) if server.replies else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:  # the client gave up (timeout test)
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = _handle

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server():
    server = RecordingServer()
    yield server
    server.stop()


# --- a real SMTP server ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpRecorder:
    """aiosmtpd handler: keeps every accepted envelope; recipients listed in
    `refuse` get that SMTP reply at RCPT time."""

    def __init__(self) -> None:
        self.envelopes = []
        self.peers = []  # the client address of each accepted message's session
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.peers.append(session.peer)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings):
    from aiosmtpd.controller import Controller

    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    # Generous: on a loaded CI machine the server thread can be slow to answer,
    # and a timeout would turn the send into a retry (seen once in a full run).
    settings.EMAIL_TIMEOUT = 30
    yield recorder
    controller.stop()
