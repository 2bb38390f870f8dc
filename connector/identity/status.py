"""BitstringStatusList (W3C, VCDM 2.0): build a status list credential, read a bit, check credentials against it.

The list is a bitstring of at least 131,072 bits (16 KiB, the specification's privacy minimum); index 0 is the
left-most bit of the first byte. ``encodedList`` is the multibase base64url (prefix ``u``, no padding) of the
GZIP-compressed bitstring. Only ``statusSize`` 1 is supported.
"""

from __future__ import annotations

import base64
import gzip
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Final

from connector.domain.errors import PeerError

from .credentials import (
    StatusEntry,
    VerifiedCredential,
    issue_credential,
    verify_credential,
)
from .errors import PresentationRejected, Reason, StatusListError
from .keys import NodeKey
from .resolver import DidResolver

STATUS_LIST_CREDENTIAL: Final = "BitstringStatusListCredential"
STATUS_LIST: Final = "BitstringStatusList"
MIN_SIZE: Final = 131_072
# A decompressed list larger than this is refused (a gzip bomb would otherwise cost memory): 2^27 entries.
MAX_BYTES: Final = 16 * 1024 * 1024


def encode_status_list(set_indices: Iterable[int], size: int = MIN_SIZE) -> str:
    """Return the ``encodedList`` of a bitstring of ``size`` bits where exactly ``set_indices`` are 1."""
    if size < MIN_SIZE or size % 8:
        raise ValueError(f"size must be a multiple of 8 and at least {MIN_SIZE}, not {size}")
    bits = bytearray(size // 8)
    for index in set_indices:
        if not 0 <= index < size:
            raise ValueError(f"index {index} is outside the list (size {size})")
        bits[index // 8] |= 0x80 >> (index % 8)
    # mtime=0 keeps the encoding deterministic: the same revocations always give the same list.
    compressed = gzip.compress(bytes(bits), mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).decode("ascii").rstrip("=")


def decode_status_list(encoded: str) -> bytes:
    """Return the bitstring of an ``encodedList``; raise StatusListError if it is not multibase base64url GZIP."""
    if not isinstance(encoded, str) or not encoded.startswith("u"):
        raise StatusListError("encodedList must be multibase base64url (prefix 'u')")
    body = encoded[1:]
    try:
        if "+" in body or "/" in body:
            raise ValueError("standard base64 alphabet")
        compressed = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except ValueError:
        raise StatusListError("encodedList is not base64url") from None
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        bits = inflater.decompress(compressed, MAX_BYTES)
    except zlib.error:
        raise StatusListError("encodedList is not GZIP-compressed") from None
    if inflater.unconsumed_tail:
        raise StatusListError(f"encodedList expands beyond {MAX_BYTES} bytes")
    if not inflater.eof:
        raise StatusListError("encodedList is a truncated GZIP stream")
    return bits


def bit_is_set(bits: bytes, index: int) -> bool:
    """Tell whether bit ``index`` of a bitstring is 1; raise StatusListError when the index is out of range."""
    if not 0 <= index < len(bits) * 8:
        raise StatusListError(f"status index {index} is outside the list ({len(bits) * 8} entries)")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def create_status_list_credential(
    issuer_key: NodeKey,
    issuer_did: str,
    url: str,
    revoked_indices: Iterable[int],
    *,
    size: int = MIN_SIZE,
    purpose: str = "revocation",
    valid_from: datetime,
    valid_until: datetime | None = None,
) -> str:
    """Return the VC-JWT of a BitstringStatusListCredential published at ``url`` with ``revoked_indices`` set."""
    subject = {"type": STATUS_LIST, "statusPurpose": purpose, "encodedList": encode_status_list(revoked_indices, size)}
    return issue_credential(
        issuer_key,
        issuer_did,
        f"{url}#list",
        [STATUS_LIST_CREDENTIAL],
        subject,
        valid_from,
        valid_until,
        credential_id=url,
    )


def read_status_list(credential: VerifiedCredential, url: str, purpose: str) -> bytes:
    """Return the bitstring of a verified status list credential, checking it is the list at ``url`` for ``purpose``."""
    if STATUS_LIST_CREDENTIAL not in credential.types:
        raise StatusListError(f"{url}: credential is not a {STATUS_LIST_CREDENTIAL}")
    if credential.id is not None and credential.id != url:
        raise StatusListError(f"{url}: credential id {credential.id[:100]!r} is not the URL it was fetched from")
    subject = credential.subject_claims
    if subject.get("type") != STATUS_LIST:
        raise StatusListError(f"{url}: credentialSubject type is not {STATUS_LIST}")
    if subject.get("statusPurpose") != purpose:
        raise StatusListError(f"{url}: list is for {str(subject.get('statusPurpose'))[:40]!r}, not {purpose!r}")
    if subject.get("statusSize", 1) != 1:
        raise StatusListError(f"{url}: statusSize other than 1 is not supported")
    encoded = subject.get("encodedList")
    if not isinstance(encoded, str):
        raise StatusListError(f"{url}: encodedList is missing")
    return decode_status_list(encoded)


async def is_revoked(
    status_list_vc_jwt: str,
    entry: StatusEntry,
    resolver: DidResolver,
    expected_issuer: str,
    *,
    now: datetime | None = None,
) -> bool:
    """Verify a status list VC-JWT (signed by ``expected_issuer``, currently valid) and return the entry's bit."""
    try:
        vc = await verify_credential(status_list_vc_jwt, resolver, now=now)
    except PresentationRejected as exc:
        raise StatusListError(f"status list {entry.list_url}: {exc.message}") from None
    if vc.issuer != expected_issuer:
        raise StatusListError(
            f"status list {entry.list_url} is issued by {vc.issuer[:100]}, not by the credential's issuer"
        )
    return bit_is_set(read_status_list(vc, entry.list_url, entry.purpose), entry.index)


#: Fetches the status list VC-JWT published at a URL (the transport's HTTP client).
FetchStatusList = Callable[[str], Awaitable[str]]


class StatusListChecker:
    """A StatusChecker over a fetch function: verifies each list once and keeps its bits for ``ttl`` seconds.

    The list must be issued by the credential's issuer. Any failure refuses the credential (fail closed).
    """

    def __init__(
        self,
        fetch: FetchStatusList,
        resolver: DidResolver,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._resolver = resolver
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, bytes]] = {}

    async def __call__(self, entry: StatusEntry, issuer: str) -> bool:
        """Return the status bit of ``entry`` for a credential of ``issuer``."""
        key = (entry.list_url, entry.purpose, issuer)
        hit = self._cache.get(key)
        if hit is None or hit[0] <= self._clock():
            try:
                jwt = await self._fetch(entry.list_url)
                vc = await verify_credential(jwt, self._resolver)
                if vc.issuer != issuer:
                    raise StatusListError(f"status list {entry.list_url} is not issued by {issuer[:100]}")
                bits = read_status_list(vc, entry.list_url, entry.purpose)
            except (StatusListError, PresentationRejected, PeerError) as exc:
                # Unreachable, unverifiable or not the issuer's: the credential cannot be shown unrevoked.
                raise PresentationRejected(Reason.STATUS_UNCHECKED, f"status list unusable: {exc.message}") from None
            hit = (self._clock() + self._ttl, bits)
            self._cache[key] = hit
        try:
            return bit_is_set(hit[1], entry.index)
        except StatusListError as exc:
            raise PresentationRejected(Reason.STATUS_UNCHECKED, exc.message) from None
