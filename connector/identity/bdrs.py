"""The BPN directory: Catena-X business partner numbers (BPNL) resolved to DIDs, and DIDs back to BPNs (CX-0167).

Catena-X names participants by BPN; DSP and DCP address them by DID. The BPN-DID Resolution Service (BDRS) serves its
whole directory at `GET <directory API>/bpn-directory`: a gzipped JSON object `{BPN: DID}`, to members only (the
bearer is a verifiable presentation of the caller's MembershipCredential), with no caching headers. Tractus-X EDC
keeps the whole map for 15 minutes and fetches it again once it has expired; so does this node, with one fetch at a
time however many lookups wait for it. A BPN missing from a map older than `MISS_REFRESH_SECONDS` fetches it again too
(a partner registered a minute ago need not wait a whole cache period). When a fetch fails, the map already held is
used for up to one more cache period, and the fetch is not tried again for `RETRY_SECONDS`, so an outage costs one
timeout, not one per request.

A directory file (the same JSON object, not gzipped) serves local dataspaces and tests; its entries come before the
BDRS's. It is read at start (a broken file stops the node, naming it) and again whenever it changes.

This module does no network I/O: the service layer gives `BdrsDirectory` its fetch function (the peer client, with
its limits on time and size).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import orjson

from connector.domain.errors import InvalidInput, PeerError, Problem
from policies.catenax import BPNL

log = logging.getLogger("connector.identity")

MISS_REFRESH_SECONDS = 30.0
RETRY_SECONDS = 5.0
MAX_FILE_BYTES = 10 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"

#: Fetches the BDRS's directory as the bytes of its body (decompressed or not); raises PeerError when it cannot.
Fetch = Callable[[], Awaitable[bytes]]


class BpnUnknown(InvalidInput):
    """A BPN is in none of the directories this node reads (or the node reads none)."""


class BpnDirectoryUnavailable(PeerError):
    """The BDRS could not be read (unreachable, refused this node, or answered something that is no directory)."""


class BpnDirectoryFileError(InvalidInput):
    """The directory file cannot be used; the message names the file and what is wrong."""


def is_bpn(value: str) -> bool:
    """Tell whether a participant id is a legal entity's BPN (what a BPN directory resolves)."""
    return bool(BPNL.match(value))


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress gzip, refusing (ValueError) output larger than `limit` bytes without ever producing more."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"its body is not valid gzip ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ValueError(f"its body is larger than {limit} bytes once decompressed")
    if not inflater.eof:
        raise ValueError("its gzip body is cut short")
    return out


def read_directory(raw: bytes, limit: int, strict: bool) -> tuple[dict[str, str], list[str]]:
    """Read a directory (a JSON object BPN -> DID, gzipped or not); return its entries and what was left out.

    Raise ValueError naming what is wrong. `strict` refuses a bad entry (a file the operator wrote) instead of
    leaving it out (a BDRS: one bad entry must not stop every lookup).
    """
    if raw.startswith(GZIP_MAGIC):
        # The BDRS gzips its body and says so; a body gzipped without the header is read the same way.
        raw = _gunzip(raw, limit)
    if len(raw) > limit:
        raise ValueError(f"it is larger than {limit} bytes")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"it is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError(f"it is a JSON {type(document).__name__}, not an object of BPN to DID")
    entries: dict[str, str] = {}
    left_out: list[str] = []
    for bpn, did in document.items():
        problem = None
        if not BPNL.match(bpn):
            problem = f"{bpn[:40]!r} is not a BPNL ({BPNL.pattern})"
        elif not isinstance(did, str) or not did.startswith("did:") or len(did) > 2048:
            problem = f"the DID of {bpn} is not a DID"
        if problem is None:
            entries[bpn] = str(did)
        elif strict:
            raise ValueError(problem)
        else:
            left_out.append(problem)
    return entries, left_out


@dataclass(frozen=True, slots=True)
class _Snapshot:
    by_bpn: Mapping[str, str]
    by_did: Mapping[str, str]
    read_at: float

    @classmethod
    def of(cls, entries: Mapping[str, str], read_at: float) -> _Snapshot:
        by_did: dict[str, str] = {}
        shared: set[str] = set()
        for bpn, did in entries.items():
            if did in by_did:
                shared.add(did)
            by_did[did] = bpn
        # A DID that several BPNs name says nothing about which one the caller is.
        for did in shared:
            del by_did[did]
        return cls(MappingProxyType(dict(entries)), MappingProxyType(by_did), read_at)


class FileDirectory:
    """A directory file (JSON object BPN -> DID), read at start and again whenever it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = f"the BPN directory file {path}"
        self._stamp: tuple[int, int] | None = None
        self._snapshot = _Snapshot.of(self._read(), 0.0)

    def _read(self) -> dict[str, str]:
        try:
            stat = self.path.stat()
            if stat.st_size > MAX_FILE_BYTES:
                raise ValueError(f"it is larger than {MAX_FILE_BYTES} bytes")
            raw = self.path.read_bytes()
            entries, _ = read_directory(raw, MAX_FILE_BYTES, strict=True)
        except OSError as exc:
            raise BpnDirectoryFileError(
                f"{self.source} cannot be read ({exc.strerror or exc})",
                [Problem("unreadable", "CONNECTOR_BPN_DIRECTORY_FILE", str(self.path))],
            ) from None
        except ValueError as exc:
            raise BpnDirectoryFileError(
                f"{self.source} cannot be used: {exc}",
                [Problem(str(exc), "CONNECTOR_BPN_DIRECTORY_FILE", str(self.path))],
            ) from None
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        return entries

    def _current(self) -> _Snapshot:
        try:
            stat = self.path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            try:
                self._snapshot = _Snapshot.of(self._read(), 0.0)
            except BpnDirectoryFileError as exc:
                # Keep what was read last (an edit under way must not stop resolution); warn once per change.
                self._stamp = stamp
                log.warning("the BPN directory file was not reloaded", extra={"reason": exc.message})
        return self._snapshot

    def did_of(self, bpn: str) -> str | None:
        """Return the DID the file gives a BPN."""
        return self._current().by_bpn.get(bpn)

    def bpn_of(self, did: str) -> str | None:
        """Return the BPN the file gives a DID (none when several BPNs name it)."""
        return self._current().by_did.get(did)


class BdrsDirectory:
    """The BDRS's directory, fetched whole and kept for `ttl` seconds; one fetch at a time."""

    def __init__(
        self,
        url: str,
        fetch: Fetch,
        ttl: float,
        limit: int,
        clock: Callable[[], float] = time.monotonic,
        miss_refresh: float = MISS_REFRESH_SECONDS,
        retry: float = RETRY_SECONDS,
    ) -> None:
        self.url = url
        self.source = f"the BDRS at {url}"
        self._fetch = fetch
        self._ttl = ttl
        self._limit = limit
        self._clock = clock
        self._miss_refresh = min(miss_refresh, ttl)
        self._retry = retry
        self._snapshot: _Snapshot | None = None
        self._failed: tuple[float, str] | None = None
        self._lock = asyncio.Lock()

    async def did_of(self, bpn: str) -> str | None:
        """Return the DID the BDRS gives a BPN; raise BpnDirectoryUnavailable when it cannot be read."""
        found = (await self._read(self._ttl)).by_bpn.get(bpn)
        if found is None and self._miss_refresh < self._ttl:
            found = (await self._read(self._miss_refresh)).by_bpn.get(bpn)
        return found

    async def bpn_of(self, did: str) -> str | None:
        """Return the BPN the BDRS gives a DID (none when several BPNs name it)."""
        found = (await self._read(self._ttl)).by_did.get(did)
        if found is None and self._miss_refresh < self._ttl:
            found = (await self._read(self._miss_refresh)).by_did.get(did)
        return found

    async def _read(self, max_age: float) -> _Snapshot:
        """Return the directory, fetching it first when what is held is `max_age` seconds old or more."""
        held = self._snapshot
        if held is not None and self._clock() - held.read_at < max_age:
            return held
        async with self._lock:
            held, now = self._snapshot, self._clock()
            if held is not None and now - held.read_at < max_age:
                return held  # another lookup fetched it while this one waited
            if self._failed is not None and now - self._failed[0] < self._retry:
                return self._held_or_raise(self._failed[1], warn=False)  # warned when it failed
            try:
                raw = await self._fetch()
                entries, left_out = read_directory(raw, self._limit, strict=False)
            except PeerError as exc:
                return self._failed_now(exc.message)
            except ValueError as exc:
                return self._failed_now(f"its answer is not a BPN directory: {exc}")
            if left_out:
                log.warning(
                    "BDRS entries left out",
                    extra={"directory": self.url, "count": len(left_out), "first": left_out[0]},
                )
            self._snapshot = _Snapshot.of(entries, self._clock())
            self._failed = None
            log.info("BPN directory fetched", extra={"directory": self.url, "entries": len(entries)})
            return self._snapshot

    def _failed_now(self, reason: str) -> _Snapshot:
        self._failed = (self._clock(), reason)
        return self._held_or_raise(reason, warn=True)

    def _held_or_raise(self, reason: str, warn: bool) -> _Snapshot:
        held = self._snapshot
        if held is not None and self._clock() - held.read_at < 2 * self._ttl:
            if warn:
                log.warning(
                    "the BDRS cannot be read; the directory held is used",
                    extra={"directory": self.url, "reason": reason, "age_s": round(self._clock() - held.read_at)},
                )
            return held
        if warn:
            log.warning("the BDRS cannot be read", extra={"directory": self.url, "reason": reason})
        raise BpnDirectoryUnavailable(f"{self.source} cannot be read: {reason}")


class BpnDirectory:
    """Where BPNs are resolved: the directory file first, then the BDRS (either, both or neither configured)."""

    def __init__(self, file: FileDirectory | None = None, bdrs: BdrsDirectory | None = None) -> None:
        self.file = file
        self.bdrs = bdrs

    @property
    def configured(self) -> bool:
        """Tell whether any directory is configured."""
        return self.file is not None or self.bdrs is not None

    def _sources(self) -> str:
        return " or ".join(d.source for d in (self.file, self.bdrs) if d is not None)

    async def participant_did(self, participant: str, field: str = "counterPartyId") -> str:
        """Return the DID to address a participant by: a BPN resolved through the directory, anything else as it is."""
        if not is_bpn(participant):
            return participant
        return await self.did_of(participant, field)

    async def did_of(self, bpn: str, field: str = "counterPartyId") -> str:
        """Return the DID of a BPN; raise BpnUnknown (naming the BPN and the directories) or BpnDirectoryUnavailable."""
        if not self.configured:
            raise BpnUnknown(
                f"{field} {bpn} is a BPN, and this node has no BPN directory to resolve it: give the partner's DID, "
                "or set CONNECTOR_BDRS_URL (the dataspace's BDRS) or CONNECTOR_BPN_DIRECTORY_FILE",
                [Problem("a BPN this node cannot resolve", field, bpn)],
            )
        found = self.file.did_of(bpn) if self.file is not None else None
        if found is None and self.bdrs is not None:
            found = await self.bdrs.did_of(bpn)
        if found is None:
            raise BpnUnknown(
                f"{field} {bpn} is not in {self._sources()}: the BPN is unknown to the dataspace's directory",
                [Problem("unknown BPN", field, bpn)],
            )
        return found

    async def bpn_of(self, did: str) -> str | None:
        """Return the BPN a DID belongs to, or None; raise BpnDirectoryUnavailable when the BDRS cannot be read."""
        found = self.file.bpn_of(did) if self.file is not None else None
        if found is None and self.bdrs is not None:
            found = await self.bdrs.bpn_of(did)
        return found
