"""The data plane's decisions: who may read what, under which agreement, now; and the access log.

Every request is checked against the database (the transfer is STARTED, the token is of its current
generation, the agreement exists) and against the agreement's usage policy in data-request scope; a
token alone never grants access. Accesses are recorded in batches off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import policies
from connector.domain.assets import Asset
from connector.domain.negotiation import Role
from connector.domain.participants import Participant
from connector.domain.transfer import Transfer, TransferMessage, TransferState
from connector.identity.access_tokens import AccessDenied, AccessTokenVerifier
from connector.identity.errors import TokenRejected
from connector.identity.tokens import strip_bearer
from connector.services.negotiations import now_ms
from connector.services.recent import Recent
from connector.services.transfers import (
    COUNT,
    TransferService,
    agreement_policy,
    give_back_use,
    take_use,
    usage_decision,
)
from connector.store import Store
from connector.store.negotiations import Agreement
from connector.store.transfers import AccessRow

log = logging.getLogger("connector.dataplane")

# A transfer whose end was decided stops serving at once, before the peer acknowledges it.
_ENDING = frozenset(
    {TransferMessage.TERMINATION.value, TransferMessage.SUSPENSION.value, TransferMessage.COMPLETION.value}
)


# Decisions kept per transfer lookup, by (consumer, declared purpose): a bound on what odd X-Purpose values can add.
DECISIONS_KEPT = 16


@dataclass(frozen=True, slots=True)
class _Lookup:
    """What a transfer's requests need, read at once: the rows, the parsed policy and how it is decided.

    `decisions` holds the usage decisions already made under this lookup when the policy's decision depends
    on nothing that changes while the lookup is kept (no clock, no counted uses: `Plan.time_dependent` false):
    a data request's context is then the consumer, the declared purpose and the agreement's own fields. It is
    None when every request must be decided anew.
    """

    transfer: Transfer | None
    agreement: Agreement | None
    asset: Asset | None
    policy: policies.Policy | None
    counted: bool
    decisions: dict[tuple[str, str | None], policies.Decision] | None


_NOTHING = _Lookup(None, None, None, None, False, None)

_STARTING = TransferMessage.START.value


def _starting(transfer: Transfer) -> bool:
    """A start (or a resume) decided and sent, its acknowledgement not yet recorded."""
    return transfer.awaiting_ack == _STARTING and transfer.state in (TransferState.REQUESTED, TransferState.SUSPENDED)


class Forbidden(Exception):
    """A valid token whose transfer or agreement does not allow this request now (403)."""


class InvalidRefresh(Exception):
    """A refresh request without the parameters the profile requires (400)."""


class SelfIssued(Protocol):
    """A verified self-issued token: who signed it, and its claims."""

    @property
    def participant_did(self) -> str: ...

    @property
    def claims(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Grant:
    """What a request may read: the transfer, its agreement and the asset."""

    transfer: Transfer
    agreement: Agreement
    asset: Asset
    counted: bool = False  # this request took one of the agreement's counted uses (given back if it fails)


class DataPlaneService:
    """Authorizes data-plane requests and refreshes tokens."""

    def __init__(
        self,
        store: Store,
        verifier: AccessTokenVerifier,
        transfers: TransferService,
        cache_seconds: float = 1.0,
        authenticate: Callable[[str | None], Awaitable[SelfIssued]] | None = None,
    ) -> None:
        self._store = store
        self._authenticate = authenticate
        self._verifier = verifier
        self._transfers = transfers
        # What a transfer's requests need, kept briefly: this node forgets a transfer the moment it changes
        # it (see TransferService.listeners); a change made by another replica is seen within cache_seconds.
        self._recent: Recent[str, _Lookup] = Recent(cache_seconds)
        transfers.listeners.append(self.forget)

    def forget(self, transfer_id: str) -> None:
        """Drop what is cached for a transfer (it changed)."""
        self._recent.forget(transfer_id)

    async def _lookup(self, transfer_id: str) -> _Lookup:
        async def read() -> _Lookup:
            async with self._store.read() as tx:
                transfer = await tx.transfers.get(transfer_id)
                if transfer is None:
                    return _NOTHING
                agreement = await tx.agreements.get(transfer.agreement_id)
                asset = await tx.assets.get(transfer.asset_id)
            try:
                policy = agreement_policy(agreement) if agreement is not None else None
            except policies.PolicyError:
                policy = None
            if policy is None:
                return _Lookup(transfer, agreement, asset, None, False, None)
            plan = policies.compile_policy(policy)
            counted = COUNT in plan.operands
            steady = not counted and not plan.time_dependent
            return _Lookup(transfer, agreement, asset, policy, counted, {} if steady else None)

        kept = self._recent.peek(transfer_id)
        return kept if kept is not None else await self._recent.get(transfer_id, read)

    async def authorize(self, authorization: str | None, purpose: str | None = None) -> Grant:
        """Return the grant for a request's token; AccessDenied (401) or Forbidden (403) naming the reason."""
        try:
            token = strip_bearer(authorization)
        except TokenRejected:
            raise AccessDenied(
                "no token: send the endpoint data reference's authorization as the Authorization header"
            ) from None
        claims = self._verifier.verify(token)
        found = await self._lookup(claims.transfer_id)
        transfer, agreement, asset, policy = found.transfer, found.agreement, found.asset, found.policy
        if (
            transfer is None
            or agreement is None
            or transfer.role is not Role.PROVIDER
            or agreement.id != claims.agreement_id
        ):
            raise Forbidden("the token's transfer process or agreement no longer exists")
        # The provider is STARTED once the consumer acknowledges the start message, but the consumer may use
        # the token it carried before that acknowledgement is recorded here: a start on its way counts.
        if transfer.state is not TransferState.STARTED and not _starting(transfer):
            detail = f" ({transfer.error_detail})" if transfer.error_detail else ""
            raise Forbidden(f"the transfer process is {transfer.state.value}{detail}")
        if transfer.awaiting_ack in _ENDING:
            raise Forbidden(f"the transfer process is ending ({transfer.error_detail or transfer.awaiting_ack})")
        if claims.generation != transfer.token_generation:
            raise Forbidden("the token was revoked: the transfer process was restarted with a new token")
        if asset is None:
            raise Forbidden(f"the dataset {transfer.asset_id!r} is no longer offered")
        if policy is None:
            raise Forbidden("the agreement's policy cannot be evaluated")
        if found.counted:
            decision = await take_use(self._store, agreement, Participant(claims.consumer_id), policy, purpose)
        else:
            decision = self._decide(found, agreement, policy, claims.consumer_id, purpose)
        if not decision.permitted:
            raise Forbidden(f"the usage policy is not satisfied: {decision.reason}")
        return Grant(transfer, agreement, asset, found.counted)

    @staticmethod
    def _decide(
        found: _Lookup, agreement: Agreement, policy: policies.Policy, consumer_id: str, purpose: str | None
    ) -> policies.Decision:
        """Decide a data request not counted under the agreement, reusing the lookup's decision when it may."""
        decisions = found.decisions
        key = (consumer_id, purpose)
        if decisions is not None:
            kept = decisions.get(key)
            if kept is not None:
                return kept
        decision = usage_decision(
            agreement, Participant(consumer_id), policies.Scope.DATA_REQUEST, purpose=purpose, policy=policy
        )
        if decisions is not None and len(decisions) < DECISIONS_KEPT:
            decisions[key] = decision
        return decision

    async def give_back(self, grant: Grant) -> None:
        """Return the use a counted request took, when it was not answered with data (not 2xx)."""
        if grant.counted:
            await give_back_use(self._store, grant.agreement.id)

    async def refresh(self, authorization: str | None, refresh_token: str | None) -> dict[str, Any]:
        """Return a new endpoint data reference (the Tractus-X token refresh profile), while the transfer is STARTED.

        `authorization` is the consumer's self-issued token: signed with its DID's key, addressed to this node
        (the EDR's refreshAudience), unexpired and never seen before, with the access token being replaced in
        its `token` claim. `refresh_token` is the EDR's refresh token. Both tokens must be of the same transfer
        and generation, and the signer must be that transfer's consumer.
        """
        if not refresh_token:
            raise InvalidRefresh("refresh_token is missing: send grant_type=refresh_token&refresh_token=<the EDR's>")
        claims = self._verifier.verify(strip_bearer(refresh_token), kind="refresh")
        if self._authenticate is None:
            raise AccessDenied("this node cannot verify the consumer's authentication token")
        if not authorization:
            raise AccessDenied(
                "no authentication token: send Authorization: Bearer <a token signed with your DID's key, "
                "with the access token in its 'token' claim>"
            )
        try:
            signed = await self._authenticate(authorization)
        except TokenRejected as exc:
            raise AccessDenied(f"the authentication token was refused: {exc.message}") from None
        if signed.participant_did != claims.consumer_id:
            raise AccessDenied("the authentication token is not signed by the consumer of the transfer process")
        access_token = signed.claims.get("token")
        if not isinstance(access_token, str) or not access_token:
            raise AccessDenied("the authentication token carries no 'token' claim (the access token to replace)")
        access = self._verifier.verify(strip_bearer(access_token), kind="access", allow_expired=True)
        if (access.transfer_id, access.generation) != (claims.transfer_id, claims.generation):
            raise AccessDenied("the access token and the refresh token are not of the same transfer and generation")
        async with self._store.read() as tx:
            transfer = await tx.transfers.get(claims.transfer_id)
        if transfer is None or (transfer.state is not TransferState.STARTED and not _starting(transfer)):
            raise Forbidden("the transfer process is not STARTED; its tokens cannot be refreshed")
        if transfer.awaiting_ack in _ENDING:
            raise Forbidden(f"the transfer process is ending ({transfer.error_detail or transfer.awaiting_ack})")
        if claims.generation != transfer.token_generation:
            raise Forbidden("the refresh token was revoked: the transfer process was restarted")
        return self._transfers.endpoint_data_reference(transfer)


MAX_PENDING = 100_000


# One access as queued on the request path: the fields of `Access`, in its order, as a plain tuple, written as it
# is (AccessLogRepository.add_rows).
_Queued = AccessRow


class AccessLog:
    """Records data-plane accesses in batches (one transaction per batch, not per request)."""

    def __init__(self, store: Store, flush_seconds: float = 0.5, max_batch: int = 500) -> None:
        self._store = store
        self._pending: list[_Queued] = []
        self.dropped = 0
        self._flush_seconds = flush_seconds
        self._max_batch = max_batch
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(
        self,
        grant: Grant | None,
        method: str,
        path: str,
        status: int,
        size: int,
        reason: str | None = None,
        consumer_id: str | None = None,
    ) -> None:
        """Queue one access for the log."""
        at = now_ms()
        pending = self._pending
        if grant is None:
            pending.append((at, None, None, consumer_id, None, method, path, status, size, reason))
        else:
            transfer = grant.transfer
            pending.append(
                (
                    at,
                    transfer.id,
                    grant.agreement.id,
                    transfer.counterparty_id,
                    grant.asset.id,
                    method,
                    path,
                    status,
                    size,
                    reason,
                )
            )
        if len(pending) >= self._max_batch:
            self._wakeup.set()
        if len(pending) > MAX_PENDING:
            # The database has been failing for a while: keep memory bounded, and say what was lost.
            lost = len(pending) - MAX_PENDING
            del pending[:lost]
            self.dropped += lost
            log.error("data-plane access log entries dropped: the database is not taking them", extra={"dropped": lost})

    @property
    def running(self) -> bool:
        """Tell whether the loop's task runs (started and not ended)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start flushing in the background."""
        self._task = asyncio.create_task(self._run(), name="access-log")

    async def stop(self) -> None:
        """Stop and write what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_seconds):
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing the data-plane access log failed; will retry")

    async def flush(self) -> None:
        """Write the queued entries now."""
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                async with self._store.transaction() as tx:
                    await tx.access_log.add_rows(batch)
            except Exception:
                self._pending = batch + self._pending
                raise
