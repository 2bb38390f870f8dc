"""Which IP addresses a node may contact when a peer names them: the globally reachable ones only.

One rule for every place that decides whether a peer-supplied host may be fetched (the peer client's
resolver and its check of literal addresses, hence DSP callbacks, DID documents, credential services,
status lists and push destinations). The tables follow the IANA IPv4 and IPv6 Special-Purpose Address
Registries (the "Globally Reachable" column), written out here so that the answer does not change with
the Python version's own `is_global` tables. An IPv6 address that carries an IPv4 address (mapped,
NAT64, 6to4) is public only when that IPv4 address is public too, so a transition form cannot smuggle
in 169.254.169.254 or 10.0.0.1.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4: Final = ipaddress.IPv4Network
_V6: Final = ipaddress.IPv6Network

# Not globally reachable (IANA IPv4 Special-Purpose Address Registry, plus multicast and broadcast).
NOT_PUBLIC_V4: Final = tuple(
    _V4(net)
    for net in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata services live here)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (192.0.0.8, DS-Lite, NAT64 discovery, ...)
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 (limited broadcast)
    )
)

# IPv6 global unicast space; everything outside it (::/8 forms, ULA, link-local, multicast, ...) is not public,
# except the two prefixes that embed an IPv4 address and are judged by it (below).
GLOBAL_UNICAST_V6: Final = _V6("2000::/3")
MAPPED_V6: Final = _V6("::ffff:0:0/96")  # IPv4-mapped (a dual-stack socket's view of an IPv4 peer)
NAT64_V6: Final = _V6("64:ff9b::/96")  # NAT64 well-known prefix (RFC 6052): reaches the embedded IPv4 address
SIX_TO_FOUR_V6: Final = _V6("2002::/16")  # 6to4 (RFC 3056): reaches the embedded IPv4 address

# Not globally reachable inside 2000::/3 (IANA IPv6 Special-Purpose Address Registry).
NOT_PUBLIC_V6: Final = tuple(
    _V6(net)
    for net in (
        "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID, ...
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 transition form carries (mapped, NAT64, 6to4, IPv4-compatible), if any."""
    if ip in MAPPED_V6:
        return ip.ipv4_mapped
    if ip in NAT64_V6:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in SIX_TO_FOUR_V6:
        return ip.sixtofour
    if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d, IPv4-compatible (deprecated by RFC 4291)
        return ipaddress.IPv4Address(int(ip))
    return None


def _public_v4(ip: ipaddress.IPv4Address) -> bool:
    return not any(ip in net for net in NOT_PUBLIC_V4)


def is_public_address(address: str | IPAddress) -> bool:
    """Tell whether an IP address is globally reachable unicast, judging an embedded IPv4 address too.

    Raise ValueError when `address` is not an IP address.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_v4(ip)
    inner = embedded_ipv4(ip)
    if ip in MAPPED_V6 or ip in NAT64_V6:
        return inner is not None and _public_v4(inner)
    if ip not in GLOBAL_UNICAST_V6 or any(ip in net for net in NOT_PUBLIC_V6):
        return False  # also IPv4-compatible ::a.b.c.d, which no network routes
    return inner is None or _public_v4(inner)


def is_loopback_address(host: str) -> bool:
    """Tell whether a host (a name, an IP literal, or a bracketed IPv6 literal) is this machine's loopback."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
