import ipaddress

import pytest

from channels.netguard import AllowList, DestinationNotAllowed, is_public, resolve_allowed


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
