"""Which addresses a peer may make this node contact: globally reachable ones, transition forms judged by their IPv4."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.domain.addresses import embedded_ipv4, is_loopback_address, is_public_address

# (address, public?, why) — the IANA special-purpose registries' "globally reachable" column.
TABLE = [
    ("8.8.8.8", True, "public IPv4"),
    ("1.1.1.1", True, "public IPv4"),
    ("2001:4860:4860::8888", True, "public IPv6"),
    ("2606:4700:4700::1111", True, "public IPv6"),
    ("::ffff:8.8.8.8", True, "IPv4-mapped public"),
    ("64:ff9b::808:808", True, "NAT64 of a public IPv4"),
    ("2002:808:808::1", True, "6to4 of a public IPv4"),
    ("0.0.0.0", False, "unspecified"),
    ("0.1.2.3", False, "this network"),
    ("127.0.0.1", False, "loopback"),
    ("127.255.255.254", False, "loopback"),
    ("10.1.2.3", False, "private"),
    ("172.16.0.1", False, "private"),
    ("192.168.1.1", False, "private"),
    ("169.254.169.254", False, "link-local (cloud metadata)"),
    ("100.64.0.1", False, "shared address space"),
    ("100.127.255.255", False, "shared address space"),
    ("192.0.0.8", False, "IETF protocol assignments"),
    ("192.0.0.170", False, "IETF protocol assignments (NAT64 discovery)"),
    ("192.0.2.10", False, "documentation"),
    ("198.51.100.7", False, "documentation"),
    ("203.0.113.9", False, "documentation"),
    ("198.18.0.1", False, "benchmarking"),
    ("198.19.255.255", False, "benchmarking"),
    ("192.88.99.1", False, "6to4 relay anycast (deprecated)"),
    ("224.0.0.1", False, "multicast"),
    ("239.255.255.250", False, "multicast"),
    ("240.0.0.1", False, "reserved"),
    ("255.255.255.255", False, "broadcast"),
    ("::", False, "unspecified"),
    ("::1", False, "loopback"),
    ("fe80::1", False, "link-local"),
    ("fe80::1%eth0", False, "link-local with a zone"),
    ("fc00::1", False, "unique local"),
    ("fd12:3456::1", False, "unique local"),
    ("ff02::1", False, "multicast"),
    ("fec0::1", False, "site-local (deprecated)"),
    ("100::1", False, "discard prefix"),
    ("2001:db8::1", False, "documentation"),
    ("3fff::1", False, "documentation (RFC 9637)"),
    ("5f00::1", False, "SRv6 SIDs"),
    ("2001:2::1", False, "benchmarking"),
    ("2001::1", False, "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, "Teredo (even around public IPv4s)"),
    ("::ffff:169.254.169.254", False, "IPv4-mapped link-local"),
    ("::ffff:127.0.0.1", False, "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", False, "IPv4-mapped private"),
    ("64:ff9b::a9fe:a9fe", False, "NAT64 of link-local"),
    ("64:ff9b::7f00:1", False, "NAT64 of loopback"),
    ("64:ff9b::c000:8", False, "NAT64 of 192.0.0.8"),
    ("64:ff9b:1::808:808", False, "NAT64 local-use prefix"),
    ("2002:a9fe:a9fe::1", False, "6to4 of link-local"),
    ("2002:7f00:1::1", False, "6to4 of loopback"),
    ("2002:a00:1::1", False, "6to4 of private"),
    ("::a9fe:a9fe", False, "IPv4-compatible link-local"),
    ("::127.0.0.1", False, "IPv4-compatible loopback"),
    ("::8.8.8.8", False, "IPv4-compatible (deprecated, routed nowhere)"),
]


@pytest.mark.parametrize(("address", "public", "why"), TABLE, ids=[f"{a} ({w})" for a, _, w in TABLE])
def test_public_address_table(address: str, public: bool, why: str) -> None:
    assert is_public_address(address) is public, why


def test_transition_forms_yield_their_ipv4() -> None:
    metadata = ipaddress.IPv4Address("169.254.169.254")
    for form in ("::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::a9fe:a9fe"):
        assert embedded_ipv4(ipaddress.IPv6Address(form)) == metadata, form
    assert embedded_ipv4(ipaddress.IPv6Address("2001:4860:4860::8888")) is None


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_is_judged_alike_in_every_ipv6_form_that_reaches_it(ip: ipaddress.IPv4Address) -> None:
    expected = is_public_address(ip)
    value = int(ip)
    assert is_public_address(ipaddress.IPv6Address((0xFFFF << 32) | value)) is expected  # mapped
    assert is_public_address(ipaddress.IPv6Address((0x0064FF9B << 96) | value)) is expected  # NAT64
    assert is_public_address(ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | 1)) is expected  # 6to4


@given(st.ip_addresses(v=4))
def test_a_public_ipv4_is_never_in_a_range_python_calls_private(ip: ipaddress.IPv4Address) -> None:
    if is_public_address(ip):
        assert not ip.is_private and not ip.is_multicast and not ip.is_loopback and not ip.is_link_local


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("api.localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("[::ffff:127.0.0.1]", True),
        ("example.com", False),
        ("10.0.0.1", False),
        ("[::2]", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_address(host) is loopback
