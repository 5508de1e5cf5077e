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


# IPv6 ranges whose addresses carry an IPv4 address, which is where a
# connection really ends up (through a translator, a tunnel or the kernel's
# dual stack). Python's is_global judges the IPv6 range instead: it calls
# 64:ff9b::7f00:1 (NAT64 of 127.0.0.1) or 2002:7f00:1:: (6to4) global.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d (RFC 4291)
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d (RFC 2765)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known NAT64 prefix (RFC 6052)
# The local-use NAT64 prefix (RFC 8215): where the IPv4 address sits inside it
# depends on how the local translator is set up (RFC 6052 allows six
# layouts), so it cannot be judged; it is refused unless allow-listed.
LOCAL_USE_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address embeds, () for none: IPv4-mapped
    (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), IPv4-translated
    (::ffff:0:a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:aabb:ccdd::/48)
    and Teredo (2001::/32: the server, and the client, whose address is
    stored XOR 0xffffffff)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return ()
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        server, client = address.teredo
        return (server, client)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # :: and ::1 are IPv6's own unspecified and loopback addresses.
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return (low32,)
    if address in _IPV4_TRANSLATED or address in _NAT64:
        return (low32,)
    return ()


def _is_global(address: IPAddress) -> bool:
    return address.is_global and not address.is_multicast and address not in LOCAL_USE_NAT64


def is_public(address: IPAddress) -> bool:
    """A public unicast address. An IPv6 address that embeds IPv4 addresses
    is judged by them (::ffff:127.0.0.1 and 64:ff9b::7f00:1 are loopback)."""
    embedded = embedded_ipv4(address)
    if embedded:
        return all(_is_global(inner) for inner in embedded)
    return _is_global(address)


def is_allowed(address: IPAddress, allow: AllowList) -> bool:
    """Public, or allow-listed: the address itself, or every IPv4 address it
    embeds (allowing 10.0.0.0/8 also allows NAT64 addresses of it)."""
    if is_public(address) or allow.allows_address(address):
        return True
    embedded = embedded_ipv4(address)
    return bool(embedded) and all(_is_global(inner) or allow.allows_address(inner) for inner in embedded)


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
        if not is_allowed(address, allow):
            embedded = embedded_ipv4(address)
            inside = f" (embedding {', '.join(map(str, embedded))})" if embedded else ""
            raise DestinationNotAllowed(f"{host} resolves to {text}{inside}, a non-public address")
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
