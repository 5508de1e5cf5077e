import ipaddress
import socket

import pytest

from channels.netguard import (
    AllowList,
    DestinationNotAllowed,
    embedded_ipv4,
    http_client,
    is_public,
    resolve_allowed,
)
from tests.channels.conftest import Reply


@pytest.mark.parametrize(
    "address, public",
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:8.8.8.8", True),
    ],
)
def test_public_addresses(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


# IPv6 addresses that embed an IPv4 one: (address, embedded, public).
EMBEDDING = [
    # IPv4-mapped ::ffff:a.b.c.d
    ("::ffff:127.0.0.1", ["127.0.0.1"], False),
    ("::ffff:10.1.2.3", ["10.1.2.3"], False),
    ("::ffff:169.254.169.254", ["169.254.169.254"], False),
    ("::ffff:8.8.8.8", ["8.8.8.8"], True),
    # IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks)
    ("::127.0.0.1", ["127.0.0.1"], False),
    ("::7f00:1", ["127.0.0.1"], False),
    ("::192.168.0.1", ["192.168.0.1"], False),
    ("::8.8.8.8", ["8.8.8.8"], True),
    # IPv4-translated ::ffff:0:a.b.c.d (SIIT)
    ("::ffff:0:7f00:1", ["127.0.0.1"], False),
    ("::ffff:0:808:808", ["8.8.8.8"], True),
    # NAT64, the well-known prefix 64:ff9b::/96
    ("64:ff9b::7f00:1", ["127.0.0.1"], False),
    ("64:ff9b::a9fe:a9fe", ["169.254.169.254"], False),
    ("64:ff9b::a00:1", ["10.0.0.1"], False),
    ("64:ff9b::808:808", ["8.8.8.8"], True),
    # 6to4 2002:aabb:ccdd::/48
    ("2002:7f00:1::", ["127.0.0.1"], False),
    ("2002:7f00:1::1", ["127.0.0.1"], False),
    ("2002:c0a8:101:1::1", ["192.168.1.1"], False),
    ("2002:808:808::1", ["8.8.8.8"], True),
    # Teredo 2001::/32: the server, then the client stored XOR 0xffffffff
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", ["65.54.227.120", "127.0.0.1"], False),
    ("2001:0:4136:e378:8000:63bf:f5ff:fefe", ["65.54.227.120", "10.0.1.1"], False),
    ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", ["127.0.0.1", "8.8.8.8"], False),  # a loopback server
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", ["65.54.227.120", "8.8.8.8"], True),
]


@pytest.mark.parametrize("address, embedded, public", EMBEDDING)
def test_an_ipv6_address_embedding_ipv4_is_judged_by_the_embedded_address(address, embedded, public):
    ip = ipaddress.ip_address(address)
    assert [str(inner) for inner in embedded_ipv4(ip)] == embedded
    assert is_public(ip) is public


@pytest.mark.parametrize("address", ["::", "::1", "2001:4860:4860::8888", "fd00::1", "8.8.8.8"])
def test_addresses_that_embed_nothing(address):
    assert embedded_ipv4(ipaddress.ip_address(address)) == ()


@pytest.mark.parametrize("address", ["64:ff9b:1::7f00:1", "64:ff9b:1::808:808", "64:ff9b:1:7f00:1::"])
def test_the_local_use_nat64_prefix_is_refused_unless_allow_listed(address):
    """Where the IPv4 address sits in 64:ff9b:1::/48 depends on the local
    translator, so none of it is public."""
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(DestinationNotAllowed):
        resolve_allowed(host=address, port=80, allow=AllowList.parse([]))
    assert resolve_allowed(host=address, port=80, allow=AllowList.parse(["64:ff9b:1::/48"])) == [address]


def test_allow_listing_an_ipv4_network_allows_its_embedded_forms():
    allow = AllowList.parse(["10.0.0.0/8"])
    for address in ("64:ff9b::a00:1", "::ffff:10.0.0.1", "2002:a00:1::1"):
        assert resolve_allowed(host=address, port=80, allow=allow) == [address]
    with pytest.raises(DestinationNotAllowed, match=r"embedding 127\.0\.0\.1"):
        resolve_allowed(host="64:ff9b::7f00:1", port=80, allow=allow)


# --- no connection is ever attempted to a refused address ------------------------


@pytest.fixture
def connections(monkeypatch):
    """Every connection attempt made through the socket module (httpcore
    opens its sockets with socket.create_connection)."""
    attempts = []
    real = socket.create_connection

    def spy(address, *args, **kwargs):
        attempts.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return attempts


REFUSED = [address for address, _embedded, public in EMBEDDING if not public] + ["64:ff9b:1::7f00:1"]


@pytest.mark.parametrize("address", REFUSED)
def test_a_refused_literal_address_is_never_connected_to(address, connections):
    with http_client(timeout=2, guard=True) as client, pytest.raises(DestinationNotAllowed):
        client.post(f"http://[{address}]:8080/hook", content=b"{}")
    assert connections == []


@pytest.mark.parametrize("address", REFUSED)
def test_a_name_resolving_to_a_refused_address_is_never_connected_to(address, connections, monkeypatch):
    """The check runs on what DNS answered, before the connection."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "hooks.example":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with http_client(timeout=2, guard=True) as client, pytest.raises(DestinationNotAllowed, match=address):
        client.post("http://hooks.example/hook", content=b"{}")
    assert connections == []


def test_a_redirect_to_a_refused_address_is_not_followed(http_server, connections):
    http_server.script(Reply(status=307, headers={"Location": "http://[64:ff9b::7f00:1]/"}))
    with http_client(timeout=2, guard=True, allowed_hosts=[f"127.0.0.1:{http_server.port}"]) as client:
        answer = client.post(http_server.url(), content=b"{}")
    assert answer.status_code == 307
    assert connections == [("127.0.0.1", http_server.port)]
    assert len(http_server.requests) == 1


def test_the_mapped_form_of_loopback_really_reaches_loopback_so_it_is_refused(http_server, connections):
    """On a dual-stack host ::ffff:127.0.0.1 is 127.0.0.1: allow-listed it
    reaches the local server (the spy sees the attempt); otherwise it is
    refused and the server hears nothing."""
    url = f"http://[::ffff:127.0.0.1]:{http_server.port}/hook"
    with http_client(timeout=2, guard=True) as client, pytest.raises(DestinationNotAllowed):
        client.post(url, content=b"{}")
    assert (connections, http_server.requests) == ([], [])
    with http_client(timeout=2, guard=True, allowed_hosts=["127.0.0.0/8"]) as client:
        assert client.post(url, content=b"{}").status_code == 200
    assert connections == [("::ffff:127.0.0.1", http_server.port)]
    assert len(http_server.requests) == 1


def test_allow_list_parsing_and_matching():
    allow = AllowList.parse(
        ["Hooks.Internal", "gw.internal:8443", "10.0.0.0/8", "192.168.1.5", "[::1]:9000", " "]
    )
    assert allow.allows_name("hooks.internal", 443)
    assert allow.allows_name("gw.internal", 8443)
    assert not allow.allows_name("gw.internal", 443)
    assert allow.allows_name("::1", 9000)
    assert not allow.allows_name("::1", 9001)
    assert allow.allows_address(ipaddress.ip_address("10.9.9.9"))
    assert allow.allows_address(ipaddress.ip_address("192.168.1.5"))
    assert not allow.allows_address(ipaddress.ip_address("192.168.1.6"))


def test_resolve_refuses_private_and_passes_allowed():
    with pytest.raises(DestinationNotAllowed, match="127.0.0.1"):
        resolve_allowed(host="127.0.0.1", port=80, allow=AllowList.parse([]))
    with pytest.raises(DestinationNotAllowed):
        resolve_allowed(host="localhost", port=80, allow=AllowList.parse([]))
    assert resolve_allowed(host="127.0.0.1", port=80, allow=AllowList.parse(["127.0.0.0/8"])) == ["127.0.0.1"]
    assert "127.0.0.1" in resolve_allowed(host="localhost", port=80, allow=AllowList.parse(["localhost"]))
