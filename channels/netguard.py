"""Outgoing HTTP that cannot be pointed at our own network.

Webhook URLs are written by marketers and web-push endpoints are sent by
browsers, so both could aim the delivery worker at an internal service
(server-side request forgery). The guard sits where the socket is opened: the
host name is resolved once, every address it resolves to must be public, and
the connection goes to exactly the address that was checked, so a DNS answer
that changes between check and connect (DNS rebinding) gains nothing. TLS still
verifies the certificate against the original host name, because httpcore
takes the server name from the URL, not from the socket.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationNotAllowed(Exception):
    """The destination resolves to a private, loopback or link-local address
    that is not allow-listed. Deliberately not an OSError: httpcore maps those
    to connection errors, which would be retried."""


@dataclass(frozen=True)
class AllowList:
    # Exact names: "hooks.internal" (any port) or "hooks.internal:8443".
    names: frozenset[tuple[str, int | None]]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        names: set[tuple[str, int | None]] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            names.add(_split_host_port(entry))
        return cls(names=frozenset(names), networks=tuple(networks))

    def allows_name(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return (host, None) in self.names or (host, port) in self.names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080
        host, _, rest = entry[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def is_public(address: IPAddress) -> bool:
    # An IPv4 address wrapped in IPv6 (::ffff:127.0.0.1) is judged as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve_allowed(*, host: str, port: int, allow: AllowList) -> list[str]:
    """The addresses a connection to host:port may use, or DestinationNotAllowed.

    An allow-listed name may resolve anywhere. Otherwise every address the name
    resolves to must be public or inside an allow-listed network: refusing the
    whole name when one answer is private keeps a round-robin record from
    sneaking an internal address in."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = sockaddr[0].split("%", 1)[0]  # drop an IPv6 zone id
        if text not in addresses:
            addresses.append(text)
    if allow.allows_name(host, port):
        return addresses
    for text in addresses:
        address = ipaddress.ip_address(text)
        if not is_public(address) and not allow.allows_address(address):
            raise DestinationNotAllowed(f"{host} resolves to {text}, a non-public address")
    return addresses


class GuardedNetworkBackend(httpcore.NetworkBackend):
    def __init__(self, *, allow: AllowList) -> None:
        self.allow = allow
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last_error: Exception | None = None
        for address in resolve_allowed(host=host, port=port, allow=self.allow):
            try:
                return self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:  # try the next address, like create_connection
                last_error = exc
        raise last_error or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):  # pragma: no cover
        raise DestinationNotAllowed("unix sockets are not a delivery destination")

    def sleep(self, seconds: float) -> None:  # pragma: no cover
        self.inner.sleep(seconds)


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a noticeable fraction of a second; one
    # context serves every client of the process (SSLContext is thread-safe).
    return httpx.create_ssl_context()


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, *, allow: AllowList) -> None:
        super().__init__(verify=ssl_context(), trust_env=False)
        # httpx 0.28 (pinned) builds its pool in __init__ without a way to pass a
        # network backend; swapping the pool is the documented httpcore way in.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context(),
            max_connections=20,
            max_keepalive_connections=10,
            keepalive_expiry=5.0,
            network_backend=GuardedNetworkBackend(allow=allow),
        )


def http_client(*, timeout: float, guard: bool, allowed_hosts: Iterable[str] = ()) -> httpx.Client:
    """An httpx client for delivery: no redirects (a redirect could leave the
    guard's checks behind), no proxies from the environment, and, with guard on,
    no private destinations except the allow-listed ones."""
    transport = (
        _GuardedTransport(allow=AllowList.parse(allowed_hosts))
        if guard
        else httpx.HTTPTransport(verify=ssl_context(), trust_env=False)
    )
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        headers={"User-Agent": "Maestra-Delivery/1"},
    )
