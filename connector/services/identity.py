"""The node's identity in the dataspace (DCP 1.0): who it is, how it proves it, how it checks who asks.

Outbound, every DSP request carries a self-issued ID token (iss = sub = our DID, aud = the peer's DID)
with an access token for our Credential Service in its `token` claim. Inbound, the token is verified
against the caller's did:web document; then the caller's Credential Service is asked for a verifiable
presentation, whose credentials (from trusted issuers, bound to the caller, valid, not revoked) become
the claims the policy engine reads. Verified claims are kept for a short time per caller, as Tractus-X
does, because a negotiation alone is several DSP messages.

Catena-X partners may be named by BPN: the BPN directory (a BDRS, a directory file, or both) gives the DID an outbound
request is addressed to, and the BPN of an inbound caller whose credentials state none (docs/identity.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.domain.errors import InvalidInput, PeerError, Problem
from connector.domain.participants import Participant, TokenUse
from connector.identity import bdrs
from connector.identity import credentials as vc
from connector.identity import did as didweb
from connector.identity import issuer as issuing
from connector.identity.errors import DidResolutionError, PresentationRejected, Reason, TokenRejected
from connector.identity.keys import NodeKey
from connector.identity.resolver import CachingResolver, StaticResolver
from connector.identity.status import StatusListChecker
from connector.identity.tokens import MemoryReplayCache, ReplayCache, VerifiedToken, issue_token, verify_token
from connector.store import Store
from connector.store.repositories import HeldCredential
from connector.transport.peer import PeerClient
from policies.catenax import BPNL
from policies.registry import CLAIM_BPN, CLAIM_PARTNER_GROUPS

log = logging.getLogger("connector.identity")

# Scope aliases for "the credential of type X" (`<alias>:<type>:<operation>`): Tractus-X's (what Tractus-X EDC asks
# for and its wallet accepts), DCP's (EDC 0.17 and later) and EDC's older one (up to 0.16). Matched ignoring case.
SCOPE_ALIASES = ("org.eclipse.tractusx.vc.type", "org.eclipse.dspace.dcp.vc.type", "org.eclipse.edc.vc.type")
SCOPE_OPERATIONS = ("read", "*", "all")
TOKEN_LIFETIME = 300
# The access tokens this node hands providers for its credential service, kept per provider for half their
# lifetime (a provider then has at least 150 s to use one), for at most this many providers at once.
ACCESS_TOKENS_KEPT = 1024
MAX_DID_DOCUMENT_BYTES = 65_536
MAX_STATUS_LIST_BYTES = 1_048_576


def parse_trusted_issuers(text: str) -> vc.TrustedIssuers:
    """Read `did:web:a, MembershipCredential=did:web:b`: bare DIDs are trusted for every credential type."""
    mapping: dict[str, list[str]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        credential_type, _, issuer = item.rpartition("=")
        if not issuer.startswith("did:"):
            raise ValueError(f"{item!r} is not a DID (or TYPE=DID)")
        mapping.setdefault(credential_type.strip() or "*", []).append(issuer.strip())
    return vc.TrustedIssuers.of(mapping)


def parse_business_partner_groups(text: str) -> dict[str, frozenset[str]]:
    """Read `BPNL...=gold|silver, BPNL...=gold`: the business partner groups of each BPN (`BPN=`: in no group)."""
    groups: dict[str, frozenset[str]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        bpn, sep, names = item.partition("=")
        listed = frozenset(n.strip() for n in names.split("|") if n.strip())
        if not sep or not BPNL.match(bpn.strip()):
            raise ValueError(f"{item!r} is not BPN=group|group (a BPNL and its groups)")
        groups[bpn.strip()] = groups.get(bpn.strip(), frozenset()) | listed
    return groups


def credential_type_of(scope: str) -> str:
    """Return the credential type a DCP scope asks for; raise ValueError naming what is wrong with it.

    A scope is `<alias>:<credential type>:<operation>` as Tractus-X's and EDC's wallets read it; the operation may be
    left out (this node's earlier versions did).
    """
    tokens = scope.split(":")
    if len(tokens) not in (2, 3) or not tokens[1]:
        raise ValueError(f"scope {scope[:200]!r} is not <alias>:<credential type>:<operation>")
    if tokens[0].lower() not in SCOPE_ALIASES:
        raise ValueError(f"scope {scope[:200]!r}: the alias must be one of {', '.join(SCOPE_ALIASES)}")
    if len(tokens) == 3 and tokens[2] not in SCOPE_OPERATIONS:
        raise ValueError(f"scope {scope[:200]!r}: the operation must be one of {', '.join(SCOPE_OPERATIONS)}")
    return tokens[1]


def credential_types_of(scopes: list[str]) -> set[str]:
    """Return the credential types a list of DCP scopes asks for (ValueError for a scope that cannot be read)."""
    return {vc.type_name(credential_type_of(scope)) for scope in scopes}


def scope_for(credential_type: str, alias: str = SCOPE_ALIASES[0]) -> str:
    """Return the DCP scope asking for the credentials of one type, as Tractus-X EDC writes it."""
    return f"{alias}:{credential_type}:read"


class _ReusableAccessToken:
    """An access token may be presented several times within its lifetime; it is bound by audience instead."""

    async def remember(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        return True


class StoreReplayCache:
    """Remembers accepted token ids in the database, so a replay is refused on every replica.

    Each id is kept until its token expires (`expires_at`); the pruner (jobs/pruning.py) deletes the expired
    ones in small batches, off the request path.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def remember(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        """Record a token id; False when it was seen before."""
        async with self._store.transaction() as tx:
            return await tx.seen_tokens.remember(issuer, jti, expires_at)


# Token ids of live tokens held in memory at most (about 300 bytes each); past it, ids go to the database at once.
MAX_REMEMBERED_IN_MEMORY = 200_000
# How long a read's token id may wait in memory before it is written to the database with the others of that time.
READ_FLUSH_SECONDS = 0.5


class ReplayGuard:
    """Replay protection with a path for reads and one for state-changing requests (docs/decisions/0025).

    Every accepted token id is remembered in this process until its token expires. A state-changing request's id
    is also recorded in the database before the request goes on, so every replica refuses its replay. A read's (a
    catalog, a dataset, a process's state) is answered without a write: this process refuses its replay at once,
    and its id is written to the database with those of other reads, one transaction about every
    READ_FLUSH_SECONDS, so the other replicas refuse it from then on. When the memory is full, ids go to the
    database at once, and until the last of those has expired every read is checked there too: a replay is never
    let through for want of room. `reads_in_database`: reads take the write path.
    """

    def __init__(
        self,
        store: Store,
        reads_in_database: bool = False,
        max_entries: int = MAX_REMEMBERED_IN_MEMORY,
        flush_seconds: float = READ_FLUSH_SECONDS,
    ) -> None:
        self._store = store
        self._flush_seconds = flush_seconds
        self._seen = MemoryReplayCache(max_entries)
        self._durable = StoreReplayCache(store)
        self._spilled_until = 0  # expiry of the last id recorded only in the database
        self._pending: list[tuple[str, str, int]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._last_flush = time.monotonic()
        self._writing = asyncio.Lock()  # one flush at a time; a flush asked for waits for the one under way
        self.writes: ReplayCache = _Path(self._write)
        self.reads: ReplayCache = self.writes if reads_in_database else _Path(self._read)

    async def _read(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        state = self._seen.record(issuer, jti, expires_at, now)
        if state == "seen":
            return False
        if state == "full":
            self._spilled_until = max(self._spilled_until, expires_at)
        if now <= self._spilled_until:
            return await self._durable.remember(issuer, jti, expires_at, now)
        self._pending.append((issuer, jti, expires_at))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())
        return True

    async def _write(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        state = self._seen.record(issuer, jti, expires_at, now)
        if state == "seen":
            return False
        if state == "full":
            self._spilled_until = max(self._spilled_until, expires_at)
        return await self._durable.remember(issuer, jti, expires_at, now)

    async def _flush_soon(self) -> None:
        try:
            await asyncio.sleep(max(0.0, self._last_flush + self._flush_seconds - time.monotonic()))
            await self.flush()
        finally:
            self._flushing = None
            if self._pending:
                self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def flush(self) -> None:
        """Write the token ids of reads answered since the last flush to the database, in one transaction."""
        async with self._writing:
            pending, self._pending = self._pending, []
            self._last_flush = time.monotonic()
            if not pending:
                return
            try:
                async with self._store.transaction() as tx:
                    known = await tx.seen_tokens.remember_many(pending)
            except Exception as exc:  # the ids stay refused by this process; the next flush goes on
                log.warning("token ids of reads were not written", extra={"count": len(pending), "error": str(exc)})
                return
        if known:
            # Presented to another replica first: the read was a replay, seen only now.
            log.warning("a read presented a token id already used", extra={"count": known})

    async def close(self) -> None:
        """Write what is pending (at a graceful stop)."""
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
            self._flushing = None
        await self.flush()


class _Path:
    """One path of a ReplayGuard, as the ReplayCache token verification takes."""

    def __init__(self, remember: Callable[[str, str, int, int], Awaitable[bool]]) -> None:
        self._remember = remember

    async def remember(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        """Record a token id; False when it was seen before."""
        return await self._remember(issuer, jti, expires_at, now)


class _Unrecorded:
    """Takes the token id instead of recording it: the service records it with the state change it causes."""

    use: TokenUse | None = None

    async def remember(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        self.use = TokenUse(issuer, jti, expires_at)
        return True


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """What the identity needs from the settings."""

    did: str
    public_url: str
    dsp_url: str
    trusted_issuers: vc.TrustedIssuers
    requested_credentials: tuple[str, ...]
    allow_local: bool
    claims_ttl: float
    issuer_dir: Path | None = None
    scope_alias: str = SCOPE_ALIASES[0]
    business_partner_groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    bdrs_url: str | None = None
    bdrs_cache_seconds: float = 900.0
    bpn_directory_file: Path | None = None
    replay_reads_in_database: bool = False


class NodeIdentity:
    """Signs what the node sends, verifies what it receives, and answers presentation queries."""

    def __init__(self, config: IdentityConfig, key: NodeKey, store: Store, peer: PeerClient) -> None:
        self.config = config
        self.did = config.did
        self._key = key
        self._store = store
        self._peer = peer
        self.credential_service_url = f"{config.public_url}/api/credentials"
        self.document = didweb.build_did_document(
            config.did, key, config.dsp_url, credential_service_url=self.credential_service_url
        )
        self._own = StaticResolver([didweb.parse_did_document(self.document, config.did)])
        self._resolver = CachingResolver(self._fetch_did_document)
        self._replays = ReplayGuard(store, reads_in_database=config.replay_reads_in_database)
        self._status = StatusListChecker(self._fetch_status_list, self._resolver, ttl=config.claims_ttl)
        self._claims: dict[str, tuple[float, Mapping[str, Any]]] = {}
        # Per provider's DID: (renew after, on the monotonic clock; the access token in our tokens' `token` claim).
        self._access_tokens: dict[str, tuple[float, str]] = {}
        self._clock = time.monotonic
        self.issuer = self._load_issuer(config.issuer_dir)
        self.bpn_directory = bdrs.BpnDirectory(
            bdrs.FileDirectory(config.bpn_directory_file) if config.bpn_directory_file is not None else None,
            bdrs.BdrsDirectory(
                config.bdrs_url.rstrip("/"),
                self._fetch_bpn_directory,
                ttl=config.bdrs_cache_seconds,
                limit=peer.limits.max_body_bytes,
            )
            if config.bdrs_url
            else None,
        )

    @staticmethod
    def _load_issuer(directory: Path | None) -> issuing.IssuerIdentity | None:
        if directory is None or not (directory / issuing.REGISTRY_FILE_NAME).exists():
            return None
        registry = issuing.load_registry(directory)
        return issuing.create_issuer(directory, registry.did)

    # Fetching what peers publish, within the peer client's limits.

    async def _fetch_did_document(self, did: str) -> bytes:
        url = didweb.did_web_to_url(did, allow_http_loopback=self.config.allow_local)
        try:
            answer = await self._peer.request("GET", url, max_body_bytes=MAX_DID_DOCUMENT_BYTES)
        except PeerError as exc:
            raise DidResolutionError(f"{did[:100]}: {exc.message}") from None
        if not answer.ok:
            raise DidResolutionError(f"{did[:100]}: {url} answered {answer.status}")
        return answer.raw

    async def _fetch_status_list(self, url: str) -> str:
        answer = await self._peer.request("GET", url, max_body_bytes=MAX_STATUS_LIST_BYTES)
        if not answer.ok:
            raise PeerError(f"status list {url} answered {answer.status}")
        return answer.raw.decode("utf-8", errors="replace").strip()

    async def _fetch_bpn_directory(self) -> bytes:
        """GET the BDRS's directory with a presentation of this node's MembershipCredential as bearer (CX-0167)."""
        assert self.config.bdrs_url is not None
        url = self.config.bdrs_url.rstrip("/") + "/bpn-directory"
        headers = {"Authorization": "Bearer " + await self.membership_presentation(), "Accept-Encoding": "gzip"}
        # The body is read as bytes (within the peer client's limit, counted after decompression): it may be gzip
        # without the header saying so, which bdrs.read_directory decompresses within the same limit.
        answer = await self._peer.request("GET", url, headers=headers, decode=False)
        if answer.status in (401, 403):
            raise PeerError(
                f"it answered {answer.status}: it did not accept this node's MembershipCredential "
                "(is the credential's issuer the one the BDRS trusts?)"
            )
        if not answer.ok:
            raise PeerError(f"it answered {answer.status}")
        return answer.raw

    async def membership_presentation(self) -> str:
        """Return a VP-JWT, addressed to this node, of its MembershipCredentials (the VCDM 1.1 ones if it holds any)."""
        now = int(time.time())
        async with self._store.read() as tx:
            held = await tx.credentials.all()
        jwts = [
            c.jwt
            for c in held
            if vc.MEMBERSHIP_CREDENTIAL in {vc.type_name(t) for t in c.types}
            and (c.valid_until is None or c.valid_until > now)
        ]
        if not jwts:
            raise PeerError(
                "this node holds no valid MembershipCredential to present (import one: POST /management/v1/credentials)"
            )
        # The BDRS reads VCDM 1.1 JWT presentations (what Catena-X's issuers issue); the audience is this node, as
        # Tractus-X EDC writes it (the BDRS does not check it).
        vcdm1 = [jwt for jwt in jwts if vc.credential_format(jwt) == vc.VCDM1]
        return vc.presentations(self._key, self.did, vcdm1 or jwts, self.did)[0]

    async def did_document(self, did: str) -> didweb.DidDocument:
        """Return a peer's DID document (resolved within the peer client's limits, cached like every resolution)."""
        if did == self.did:
            return await self._own(did)
        return await self._resolver(did)

    async def participant_did(self, participant: str, field: str = "counterPartyId") -> str:
        """Return the DID a participant is addressed by: a BPN resolved through the BPN directory, a DID as it is."""
        return await self.bpn_directory.participant_did(participant, field)

    async def close(self) -> None:
        """Write the token ids of reads still pending to the database (the node is stopping)."""
        await self._replays.close()

    # Outbound.

    def self_issued(self, audience_did: str, access_token: str | None = None, lifetime: int = 60) -> str:
        """Return a self-issued token of this node for a peer (with `access_token` in its `token` claim)."""
        return issue_token(self._key, self.did, audience_did, lifetime=lifetime, access_token=access_token)

    def token_for(self, audience_did: str) -> str:
        """Return the Authorization value for a DSP request to a peer: a fresh self-issued token (its own `jti`,
        refused if replayed) carrying the access token the peer may present to this node's credential service."""
        access = self._access_token(audience_did)
        return "Bearer " + issue_token(self._key, self.did, audience_did, lifetime=TOKEN_LIFETIME, access_token=access)

    def _access_token(self, audience_did: str) -> str:
        """Return the access token for a peer's presentation queries to this node, signed anew once half its
        lifetime has passed. This node's credential service accepts one several times within its lifetime (it
        is bound to its audience, `_ReusableAccessToken`), so a new one per request would only cost a signature."""
        now = self._clock()
        held = self._access_tokens.get(audience_did)
        if held is not None and held[0] > now:
            return held[1]
        token = issue_token(self._key, self.did, audience_did, lifetime=TOKEN_LIFETIME)
        if len(self._access_tokens) >= ACCESS_TOKENS_KEPT:
            self._access_tokens.clear()
        self._access_tokens[audience_did] = (now + TOKEN_LIFETIME / 2, token)
        return token

    # Inbound.

    async def verify_self_issued(self, authorization: str | None) -> VerifiedToken:
        """Verify a peer's self-issued token addressed to this node (signature by its DID key, time, replay)."""
        return await verify_token(authorization, self.did, self._resolver, self._replays.writes)

    async def authenticate(self, authorization: str | None, read: bool = False, record: bool = True) -> Participant:
        """Verify a DSP request's token and return the caller with the claims of its credentials.

        `read`: the request changes nothing (a catalog, a dataset, a process's state), so its token id is
        remembered by this process only (ReplayGuard, docs/decisions/0025); otherwise in the database too.
        With `record=False` the token's id is not remembered here but handed back (`Participant.unrecorded`) for
        the service to remember in the transaction that acts on the message (docs/decisions/0027).
        """
        unrecorded = _Unrecorded()
        replays = unrecorded if not record else self._replays.reads if read else self._replays.writes
        verified = await verify_token(authorization, self.did, self._resolver, replays)
        caller = verified.participant_did
        cached = self._claims.get(caller)
        if cached is not None and cached[0] > time.monotonic():
            return Participant(caller, cached[1], unrecorded.use)
        try:
            claims = await self._fetch_claims(caller, verified.document.credential_service_url, verified.access_token)
            claims = self._with_groups(await self._with_directory_bpn(caller, claims))
        except Exception:
            # A request refused here never reaches the service: its token id is remembered now.
            await self.record(unrecorded.use)
            raise
        self._claims[caller] = (time.monotonic() + self.config.claims_ttl, claims)
        return Participant(caller, claims, unrecorded.use)

    async def record(self, use: TokenUse | None) -> None:
        """Remember a token id `authenticate(record=False)` handed out; raise TokenRejected if it was seen before."""
        if use is not None and not await self._replays.writes.remember(use.issuer, use.jti, use.expires_at, 0):
            raise TokenRejected(Reason.REPLAYED, "token id (jti) was already used")

    async def _with_directory_bpn(self, caller: str, claims: Mapping[str, Any]) -> Mapping[str, Any]:
        """Add the BPN the BPN directory gives the caller's DID, when its credentials state none (as Tractus-X does)."""
        if not self.bpn_directory.configured:
            return claims
        try:
            listed = await self.bpn_directory.bpn_of(caller)
        except bdrs.BpnDirectoryUnavailable as exc:
            log.warning("the caller's BPN was not looked up", extra={"participant": caller, "reason": exc.message})
            return claims
        stated = claims.get(CLAIM_BPN)
        if listed is None or stated == listed:
            return claims
        if stated is not None:
            # The credential is signed by a trusted issuer and bound to the caller: it is what the caller proves.
            log.warning(
                "the caller's credentials and the BPN directory name different BPNs; the credentials' one is used",
                extra={"participant": caller, "credentials": stated, "directory": listed},
            )
            return claims
        return {**claims, CLAIM_BPN: listed}

    async def _fetch_claims(self, caller: str, service: str | None, access_token: str | None) -> Mapping[str, Any]:
        if service is None or access_token is None:
            # A participant without a credential service proves who it is, and nothing more.
            log.info("caller offers no credentials", extra={"participant": caller})
            return {}
        query = {
            "@context": [vc.DCP_CONTEXT],
            "type": "PresentationQueryMessage",
            "scope": [scope_for(t, self.config.scope_alias) for t in self.config.requested_credentials],
        }
        token = issue_token(self._key, self.did, caller, lifetime=60, access_token=access_token)
        url = service.rstrip("/") + "/presentations/query"
        try:
            answer = await self._peer.request("POST", url, json=query, headers={"Authorization": "Bearer " + token})
        except PeerError as exc:
            raise PresentationRejected(
                Reason.UNRESOLVABLE, f"the credential service of {caller} could not be asked: {exc.message}"
            ) from None
        body = answer.body if isinstance(answer.body, dict) else {}
        presentations = body.get("presentation")
        if not answer.ok or not isinstance(presentations, list):
            raise PresentationRejected(
                Reason.MALFORMED, f"the credential service of {caller} answered {answer.status} without presentations"
            )
        verified = [
            await vc.verify_presentation(p, self.did, caller, self._resolver, self.config.trusted_issuers, self._status)
            for p in presentations
        ]
        for refused in (r for v in verified for r in v.refused):
            # The caller is still who its token proves; only this credential's claims are left out.
            log.warning(
                "credential refused; its claims are left out",
                extra={
                    "participant": caller,
                    "credential": refused.credential,
                    "reason": refused.reason.value,
                    "detail": refused.message,
                },
            )
        return vc.claims_from_credentials(c for v in verified for c in v.credentials)

    def _with_groups(self, claims: Mapping[str, Any]) -> Mapping[str, Any]:
        """Add the business partner groups this node assigns to the caller's verified BPN (when it lists it)."""
        bpn = claims.get(CLAIM_BPN)
        groups = self.config.business_partner_groups.get(bpn) if isinstance(bpn, str) else None
        return claims if groups is None else {**claims, CLAIM_PARTNER_GROUPS: groups}

    # Our Credential Service (the DCP resolution API).

    async def presentation_query(self, authorization: str | None, body: Any) -> dict[str, Any]:
        """Answer a verifier's PresentationQueryMessage with a VP of the credentials it may read."""
        outer = await verify_token(authorization, self.did, self._resolver, self._replays.writes)
        verifier = outer.participant_did
        if outer.access_token is None:
            raise TokenRejected(Reason.MISSING, "the token carries no access token for this credential service")
        inner = await verify_token(outer.access_token, verifier, self._own, _ReusableAccessToken())
        if inner.participant_did != self.did:
            raise TokenRejected(Reason.ISSUER_MISMATCH, "the access token was not issued by this node")
        if not isinstance(body, dict) or body.get("type") != "PresentationQueryMessage":
            raise InvalidInput("the body must be a PresentationQueryMessage", [Problem("wrong type", "type")])
        if "presentationDefinition" in body:
            raise InvalidInput(
                "presentationDefinition is not supported; ask by scope",
                [Problem("unsupported", "presentationDefinition")],
            )
        scopes = body.get("scope")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise InvalidInput("scope must be an array of strings", [Problem("bad scope", "scope", scopes)])
        try:
            wanted = credential_types_of(scopes)
        except ValueError as exc:
            raise InvalidInput(f"scope cannot be read: {exc}", [Problem(str(exc), "scope", scopes)]) from None
        now = int(time.time())
        async with self._store.read() as tx:
            held = await tx.credentials.all()
        chosen = [
            c.jwt
            for c in held
            if wanted & {vc.type_name(t) for t in c.types} and (c.valid_until is None or c.valid_until > now)
        ]
        log.info(
            "presentation query answered",
            extra={"participant": self.did, "verifier": verifier, "scopes": scopes, "credentials": len(chosen)},
        )
        # One presentation per data model, as Tractus-X's wallet answers: VCDM 1.1 credentials in a VCDM 1.1 one.
        return vc.presentation_response_message(vc.presentations(self._key, self.did, chosen, verifier))

    # Credentials the node holds.

    async def import_credential(self, jwt: str) -> HeldCredential:
        """Check a VC-JWT issued to this node (signature, subject, validity) and hold it."""
        checked = await vc.verify_credential(jwt, self._resolver)
        if checked.subject != self.did:
            raise InvalidInput(
                f"the credential is issued to {checked.subject}, not to this node ({self.did})",
                [Problem("wrong subject", "credential", None)],
            )
        held = HeldCredential(
            id=checked.id or f"urn:jwt:{abs(hash(jwt))}",
            types=tuple(checked.types),
            issuer=checked.issuer,
            valid_until=int(checked.valid_until.timestamp()) if checked.valid_until else None,
            jwt=jwt,
            created_at=int(datetime.now(UTC).timestamp() * 1000),
        )
        async with self._store.transaction() as tx:
            await tx.credentials.add(held)
        return held

    def issuer_document(self) -> dict[str, Any] | None:
        """Return the issuer's DID document when this node is also an issuer."""
        return self.issuer.did_document() if self.issuer else None

    def status_list(self) -> str | None:
        """Return the issuer's current signed status list credential."""
        if self.issuer is None or self.config.issuer_dir is None:
            return None
        return issuing.render_status_list(self.issuer, issuing.load_registry(self.config.issuer_dir))
