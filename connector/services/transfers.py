"""Transfer process use cases, provider and consumer, on the same durable outbox as negotiations.

Provider: a request is checked (the agreement exists between these two parties, its negotiation is
FINALIZED, the format is one this node serves, the usage policy holds in transfer scope) and started at
once: for HttpData-PULL the start message carries an endpoint data reference (the data plane's URL and
a short-lived token bound to the transfer); for HttpData-PUSH the push itself is an outbox item, so it is
retried with backoff, survives a restart, and completes the transfer when it succeeds.
Consumer: it asks, stores the endpoint data reference the provider sends, and can suspend, resume,
complete or terminate, as either side can.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import policies
from connector.domain import process
from connector.domain.errors import AlreadyExists, Conflict, InvalidInput, NotFound, Problem
from connector.domain.negotiation import Negotiation, NegotiationState, Role
from connector.domain.participants import Participant
from connector.domain.query import QuerySpec
from connector.domain.transfer import (
    SUFFIX,
    TRANSFER,
    TRANSFER_TERMINAL,
    EdrEntry,
    InvalidTransferTransition,
    Transfer,
    TransferMessage,
    TransferState,
    advance_transfer,
    next_transfer_state,
)
from connector.dsp import transfer as wire
from connector.dsp.negotiation import Pids
from connector.identity.access_tokens import ACCESS_LIFETIME, REFRESH_LIFETIME, issue_access_token
from connector.identity.keys import NodeKey
from connector.services.negotiations import now_ms
from connector.services.processes import ProcessEngine
from connector.services.reactions import Act, DefaultReactions, Reactions, Step
from connector.store import Store, Transaction
from connector.store.negotiations import Agreement, OutboxItem

log = logging.getLogger("connector.transfer")

T, M = TransferState, TransferMessage
PULL = "HttpData-PULL"
PUSH = "HttpData-PUSH"
FORMATS = (PULL, PUSH)
# The outbox item that performs a push (not a DSP message; delivered by the data mover).
PUSH_JOB = "HttpDataPush"


def agreement_policy(agreement: Agreement) -> policies.Policy:
    """Return an agreement's policy as the engine reads it (its DSP form minus the agreement's own fields)."""
    rules = {k: v for k, v in agreement.policy.items() if k not in ("target", "assigner", "assignee", "timestamp")}
    return policies.parse_policy(rules)


COUNT = "http://www.w3.org/ns/odrl/2/count"


def counts_uses(policy: policies.Policy) -> bool:
    """Whether a usage policy limits the number of uses (an `odrl:count` constraint anywhere in it)."""
    return COUNT in policies.compile_policy(policy).operands


async def next_use(tx: Transaction, agreement: Agreement) -> int | None:
    """Return the number the next use under an agreement would have, when its policy counts uses (else None).

    `count` in a usage policy is the number of the use being asked for: `count lteq 10` allows ten uses.
    """
    try:
        counted = counts_uses(agreement_policy(agreement))
    except policies.PolicyError:
        return None
    return await tx.usage.uses(agreement.id) + 1 if counted else None


async def take_use(
    store: Store,
    agreement: Agreement,
    participant: Participant,
    policy: policies.Policy,
    purpose: str | None = None,
) -> policies.Decision:
    """Take one of an agreement's counted uses if its policy allows the next (the count locked meanwhile).

    Concurrent requests, and replicas, never take the same last use (a write transaction on SQLite, a row
    lock on PostgreSQL). Give the use back with `give_back_use` when no data went out.
    """
    async with store.transaction() as tx:
        uses = await tx.usage.uses(agreement.id, for_update=True)
        decision = usage_decision(
            agreement, participant, policies.Scope.DATA_REQUEST, purpose=purpose, count=uses + 1, policy=policy
        )
        if decision.permitted:
            await tx.usage.add(agreement.id, 1, now_ms())
    return decision


async def give_back_use(store: Store, agreement_id: str) -> None:
    """Return a use taken by `take_use` (the request it was for sent no data)."""
    async with store.transaction() as tx:
        await tx.usage.add(agreement_id, -1, now_ms())


def usage_decision(
    agreement: Agreement,
    participant: Participant,
    scope: policies.Scope,
    purpose: str | None = None,
    count: int | None = None,
    policy: policies.Policy | None = None,
) -> policies.Decision:
    """Evaluate an agreement's usage policy for its consumer now (count = uses so far, on data requests)."""
    context = policies.EvaluationContext(
        participant_id=participant.id,
        claims=participant.claims,
        now=datetime.now(UTC),
        agreement_start=datetime.fromtimestamp(agreement.signed_at / 1000, UTC),
        count=count,
        purpose=purpose,
        target=agreement.asset_id,
    )
    return policies.evaluate(policy or agreement_policy(agreement), "use", context, scope)


class TransferError(InvalidInput):
    """A transfer request this provider refuses outright (400 with a TransferError)."""


class TransferService:
    """Runs transfer processes in both roles."""

    def __init__(
        self,
        store: Store,
        participant_id: str,
        did: str,
        key: NodeKey,
        dsp_url: str,
        public_url: str,
        wake: Callable[[], None],
        token_lifetime: int = ACCESS_LIFETIME,
        reactions: Reactions | None = None,
        deadline_seconds: float = 0,
    ) -> None:
        self.engine: ProcessEngine[Transfer] = ProcessEngine(
            TRANSFER,
            lambda tx: tx.transfers,
            self._tell_termination,
            now_ms,
            settle=self._settle,
            deadline_seconds=deadline_seconds,
        )
        self._store = store
        self.participant_id = participant_id
        self._did = did
        self._key = key
        self.dsp_url = dsp_url
        self.data_plane_url = public_url.rstrip("/") + "/public"
        self._wake = wake
        self._lifetime = token_lifetime
        self._react: Reactions = reactions or DefaultReactions()
        # Called with a transfer's id whenever this node changes it (the data plane drops what it cached).
        self.listeners: list[Callable[[str], None]] = []
        # Applies the implied acknowledgement of a negotiation's FINALIZED event (NegotiationService.finalized).
        self.finalize: Callable[[str], Awaitable[Negotiation | None]] | None = None

    async def _save(self, tx: Transaction, transfer: Transfer, new: bool = False) -> Transfer:
        return await self.engine.save(tx, transfer, new)

    async def _settle(self, tx: Transaction, transfer: Transfer) -> Transfer:
        for listener in self.listeners:
            # Now, so this node stops serving at once, and after the commit, so a read made in between
            # (of the row as it was) is not kept.
            listener(transfer.id)
            tx.after_commit.append(partial(listener, transfer.id))
        return transfer

    async def _tell_termination(self, tx: Transaction, transfer: Transfer, code: str, reason: str) -> Transfer:
        return await self._owe_message(tx, transfer, M.TERMINATION, code, reason)

    # Recording what is owed.

    async def _owe(
        self,
        tx: Transaction,
        transfer: Transfer,
        message: str,
        url: str,
        payload: dict[str, Any],
        delay_ms: int = 0,
    ) -> None:
        await tx.outbox.owe(transfer.id, message, url, payload, transfer.counterparty_id, now_ms(), delay_ms)

    def _peer_url(self, transfer: Transfer, suffix: str) -> str:
        return f"{transfer.counterparty_address.rstrip('/')}/transfers/{transfer.peer_pid}{suffix}"

    @staticmethod
    def _pids(transfer: Transfer) -> Pids:
        return Pids(transfer.provider_pid or "", transfer.consumer_pid or "")

    async def _owe_message(
        self,
        tx: Transaction,
        transfer: Transfer,
        message: TransferMessage,
        code: str | None = None,
        reason: str | None = None,
        data_address: dict[str, Any] | None = None,
        delay_ms: int = 0,
    ) -> Transfer:
        if message is M.START:
            payload = wire.render_start(self._pids(transfer), data_address)
        else:
            payload = wire.render_reasoned(message, self._pids(transfer), code, reason)
        await self._owe(tx, transfer, message.value, self._peer_url(transfer, SUFFIX[message]), payload, delay_ms)
        return replace(transfer, awaiting_ack=message.value)

    def endpoint_data_reference(self, transfer: Transfer) -> dict[str, Any]:
        """Return the DataAddress of a pull transfer: the data plane's endpoint and tokens for this generation."""
        access = issue_access_token(
            self._key,
            self._did,
            transfer.id,
            transfer.agreement_id,
            transfer.counterparty_id,
            transfer.token_generation,
            lifetime=self._lifetime,
        )
        refresh = issue_access_token(
            self._key,
            self._did,
            transfer.id,
            transfer.agreement_id,
            transfer.counterparty_id,
            transfer.token_generation,
            kind="refresh",
            lifetime=REFRESH_LIFETIME,
        )
        return wire.render_data_address(
            self.data_plane_url,
            {
                "authorization": access,
                "authType": "bearer",
                # Also under EDC's names: Tractus-X's token refresh reads the access token only from
                # `https://w3id.org/edc/v0.0.1/ns/authorization` (an EDC DataAddress property read by its full IRI).
                wire.EDC + "authorization": access,
                wire.EDC + "endpointType": wire.HTTP_ENDPOINT_TYPE,
                # The Tractus-X token refresh profile's properties, under its names (docs/transfer.md).
                wire.TX_AUTH + "expiresIn": str(self._lifetime),
                wire.TX_AUTH + "refreshToken": refresh,
                wire.TX_AUTH + "refreshEndpoint": self.data_plane_url + "/token",
                wire.TX_AUTH + "refreshAudience": self._did,
                "transferProcessId": transfer.id,
                "agreementId": transfer.agreement_id,
            },
        )

    async def _owe_start(self, tx: Transaction, transfer: Transfer, delay_ms: int = 0) -> Transfer:
        """Owe the consumer a start: a new token generation (earlier tokens stop working) and, for pull, an EDR."""
        transfer = replace(transfer, token_generation=transfer.token_generation + 1)
        address = self.endpoint_data_reference(transfer) if transfer.transfer_type == PULL else None
        return await self._owe_message(tx, transfer, M.START, data_address=address, delay_ms=delay_ms)

    async def _follow_up(self, tx: Transaction, transfer: Transfer, step: Step) -> Transfer:
        """Owe what the reactions script after a step (the conformance test mode's; a production node: nothing)."""
        act = self._react(step, transfer.agreement_id)
        message = {
            Act.START: M.START,
            Act.SUSPEND: M.SUSPENSION,
            Act.COMPLETE: M.COMPLETION,
            Act.TERMINATE: M.TERMINATION,
        }.get(act)
        if message is None or transfer.peer_pid is None:
            return transfer
        next_transfer_state(transfer, message, transfer.role)
        delay = self._react.follow_up_delay_ms
        reason = f"scripted reaction ({step.value}) for agreement {transfer.agreement_id}"
        if message is M.START and transfer.role is Role.PROVIDER:
            return await self._owe_start(tx, transfer, delay)
        if message is M.TERMINATION:
            transfer = replace(transfer, error_detail=f"terminated by this node's {reason}")
            return await self._owe_message(tx, transfer, message, "scripted", reason, delay_ms=delay)
        return await self._owe_message(tx, transfer, message, None, reason, delay_ms=delay)

    # Consumer: starting.

    async def start(
        self,
        address: str,
        agreement_id: str,
        transfer_type: str,
        destination: dict[str, Any] | None,
        counterparty_id: str | None = None,
        check_agreement: bool = True,
    ) -> Transfer:
        """Ask a provider to transfer the data of an agreement this node (as consumer) holds."""
        if transfer_type not in FORMATS:
            raise InvalidInput(
                f"transferType {transfer_type!r} is not supported; use one of {', '.join(FORMATS)}",
                [Problem("unsupported", "transferType", transfer_type)],
            )
        if transfer_type == PUSH and destination is None:
            raise InvalidInput(
                "an HttpData-PUSH transfer needs a dataDestination (where the provider pushes to)",
                [Problem("missing", "dataDestination")],
            )
        asset_id = ""
        async with self._store.read() as tx:
            agreement = await tx.agreements.get(agreement_id)
        if agreement is not None:
            if agreement.consumer_id != self.participant_id:
                raise InvalidInput(f"agreement {agreement_id!r} was not made with this node as consumer")
            counterparty_id = agreement.provider_id
            asset_id = agreement.asset_id
        elif check_agreement:
            raise InvalidInput(
                f"contractId {agreement_id!r} names no contract agreement of this node",
                [Problem("unknown agreement", "contractId", agreement_id)],
            )
        if counterparty_id is None:
            raise InvalidInput("the provider's id is unknown", [Problem("missing", "counterPartyId")])
        async with self._store.transaction() as tx:
            transfer = await self._open(
                tx, address, agreement_id, asset_id, counterparty_id, transfer_type, destination
            )
        self._wake()
        return transfer

    async def start_pull(self, tx: Transaction, address: str, agreement: Agreement) -> Transfer:
        """Ask a provider for an HttpData-PULL transfer of an agreement, in the caller's transaction.

        The negotiation service calls it in the transaction that finalizes a negotiation started for an EDR
        (POST /v3/edrs), so the agreement and the request it owes are stored together or not at all.
        """
        if agreement.consumer_id != self.participant_id:
            raise InvalidInput(f"agreement {agreement.id!r} was not made with this node as consumer")
        return await self._open(tx, address, agreement.id, agreement.asset_id, agreement.provider_id, PULL, None)

    async def _open(
        self,
        tx: Transaction,
        address: str,
        agreement_id: str,
        asset_id: str,
        counterparty_id: str,
        transfer_type: str,
        destination: dict[str, Any] | None,
    ) -> Transfer:
        """Store a new consumer transfer and owe the provider its TransferRequestMessage."""
        pid = "urn:uuid:" + str(uuid.uuid4())
        at = now_ms()
        transfer = Transfer(
            id=pid,
            role=Role.CONSUMER,
            state=T.INITIAL,
            provider_pid=None,
            consumer_pid=pid,
            counterparty_id=counterparty_id,
            counterparty_address=address.rstrip("/"),
            agreement_id=agreement_id,
            asset_id=asset_id,
            transfer_type=transfer_type,
            destination=destination,
            awaiting_ack=M.REQUEST.value,
            created_at=at,
            updated_at=at,
        )
        transfer = await self._save(tx, transfer, new=True)
        await self._owe(
            tx,
            transfer,
            M.REQUEST.value,
            f"{transfer.counterparty_address}/transfers/request",
            wire.render_request(transfer, self.dsp_url),
        )
        return transfer

    # Provider: a consumer's request.

    async def on_request(self, participant: Participant, message: wire.TransferRequest) -> tuple[Transfer, bool]:
        """Handle a TransferRequestMessage; return the transfer and whether it is new."""
        async with self._store.read() as tx:
            existing = await tx.transfers.find_by_peer(Role.PROVIDER, participant.id, message.consumer_pid)
            if existing is not None:
                return existing, False
            agreement = await tx.agreements.get(message.agreement_id)
            negotiation = await tx.negotiations.get(agreement.negotiation_id) if agreement else None
            uses = await next_use(tx, agreement) if agreement else None
        if agreement is None or agreement.provider_id != self.participant_id or agreement.consumer_id != participant.id:
            raise TransferError(
                f"agreement {message.agreement_id!r} is not an agreement between this provider and {participant.id}",
                [Problem("unknown agreement", "agreementId", message.agreement_id)],
            )
        if (
            negotiation is not None
            and negotiation.state is not NegotiationState.FINALIZED
            and self.finalize is not None
        ):
            # A transfer request under the agreement shows the consumer received our FINALIZED event.
            negotiation = await self.finalize(negotiation.id)
        if negotiation is not None and negotiation.state is not NegotiationState.FINALIZED:
            raise TransferError(
                f"the negotiation of agreement {agreement.id!r} is {negotiation.state.value}, not FINALIZED",
                [Problem("agreement not finalized", "agreementId", agreement.id)],
            )
        if message.format not in FORMATS:
            raise TransferError(
                f"format {message.format!r} is not served by this node; use one of {', '.join(FORMATS)}",
                [Problem("unsupported format", "format", message.format)],
            )
        if message.format == PUSH:
            if message.data_address is None:
                raise TransferError(
                    "an HttpData-PUSH request needs a dataAddress (where to push to)",
                    [Problem("missing", "dataAddress")],
                )
            try:
                wire.parse_push_destination(message.data_address)
            except InvalidInput as exc:
                raise TransferError(exc.message, exc.problems) from None
        try:
            decision = usage_decision(agreement, participant, policies.Scope.TRANSFER, count=uses)
            refusal = None if decision.permitted else f"the usage policy is not satisfied: {decision.reason}"
            if refusal is None and message.format == PUSH and decision.explanation.deferred:
                # Deferred checks are made on each data request (a declared purpose), and a push makes none.
                left = ", ".join(c.line() for c in decision.explanation.deferred)
                refusal = (
                    f"the usage policy leaves checks to each data request, which a push transfer does not make: "
                    f"{left}; pull the data instead"
                )
        except policies.PolicyError as exc:
            refusal = f"the agreement's policy cannot be evaluated: {exc}"
        at = now_ms()
        pid = "urn:uuid:" + str(uuid.uuid4())
        transfer = Transfer(
            id=pid,
            role=Role.PROVIDER,
            state=T.REQUESTED,
            provider_pid=pid,
            consumer_pid=message.consumer_pid,
            counterparty_id=participant.id,
            counterparty_address=message.callback_address.rstrip("/"),
            agreement_id=agreement.id,
            asset_id=agreement.asset_id,
            transfer_type=message.format,
            destination=message.data_address,
            error_detail=refusal,
            created_at=at,
            updated_at=at,
        )
        act = self._react(Step.ON_TRANSFER_REQUEST, agreement.id) if refusal is None else Act.DEFAULT
        try:
            async with self._store.transaction() as tx:
                if refusal is not None:
                    log.info(
                        "transfer refused", extra={"transfer": pid, "participant": participant.id, "reason": refusal}
                    )
                    transfer = await self._owe_message(tx, transfer, M.TERMINATION, "400", refusal)
                elif act is Act.TERMINATE:
                    transfer = await self._follow_up(tx, transfer, Step.ON_TRANSFER_REQUEST)
                elif act is not Act.NOTHING:
                    transfer = await self._owe_start(tx, transfer)
                transfer = await self._save(tx, transfer, new=True)
        except AlreadyExists:
            # Another replica (or a redelivery racing this one) opened it first: answer with that one.
            async with self._store.read() as tx:
                existing = await tx.transfers.find_by_peer(Role.PROVIDER, participant.id, message.consumer_pid)
            if existing is None:
                raise
            return existing, False
        self._wake()
        return transfer, True

    # Follow-up messages, both roles.

    async def _own(self, participant: Participant, pid: str) -> Transfer:
        async with self._store.read() as tx:
            transfer = await tx.transfers.get(pid)
        if transfer is None or transfer.counterparty_id != participant.id:
            raise NotFound(f"no transfer process {pid!r} with {participant.id}")
        return transfer

    async def for_peer(self, participant: Participant, pid: str) -> Transfer:
        """Return a transfer to its counterparty (GET on the protocol surface)."""
        return await self._own(participant, pid)

    async def receive(self, participant: Participant, pid: str, message: TransferMessage, body: Any) -> Transfer:
        """Handle a start, suspension, completion or termination for transfer `pid` from the participant."""
        address = None
        reason = ""
        if message is M.START:
            pids, address = wire.parse_start(body)
        else:
            pids, reason = wire.parse_reasoned(body, message)
        async with self._store.transaction() as tx:
            arrival = await self.engine.arrive(tx, participant, pid, pids, message)
            transfer, sender = arrival.process, arrival.sender
            if arrival.repeat:
                if message is M.START and transfer.role is Role.CONSUMER and address is not None:
                    # The provider's tokens after a resume, or its start again: keep the newest EDR.
                    transfer = replace(transfer, data_address=address, version=transfer.version + (not arrival.changed))
                    transfer = await self._save(tx, transfer)
                elif arrival.changed:
                    transfer = await self._save(tx, transfer)
                return transfer  # a redelivery: acknowledged, nothing else changes
            who = process.who(sender)
            changes: dict[str, Any] = {}
            resumed = message is M.START and transfer.state is T.SUSPENDED
            if message is M.START:
                if transfer.role is Role.CONSUMER:
                    changes["provider_pid"] = pids.provider_pid
                    if address is not None:
                        changes["data_address"] = address
                changes["error_detail"] = None
            elif message is M.TERMINATION:
                changes["error_detail"] = f"terminated by the {who}: {reason}"
                changes["awaiting_ack"] = None
                await tx.outbox.drop_for(transfer.id)
            elif message is M.SUSPENSION:
                changes["error_detail"] = f"suspended by the {who}: {reason}"
            transfer = advance_transfer(transfer, message, sender, now_ms(), **changes)
            if resumed and transfer.role is Role.PROVIDER:
                # The consumer resumed: tokens issued before the suspension stay dead, and it gets fresh ones.
                transfer = await self._owe_start(tx, transfer)
            elif (
                message is M.START
                and transfer.role is Role.PROVIDER
                and transfer.transfer_type == PUSH
                and transfer.awaiting_ack is None
            ):
                transfer = await self._owe_push(tx, transfer)
            if message is M.START and transfer.role is Role.CONSUMER and transfer.awaiting_ack is None:
                transfer = await self._follow_up(tx, transfer, Step.AFTER_START)
            transfer = await self._save(tx, transfer)
        self._wake()
        return transfer

    async def _owe_push(self, tx: Transaction, transfer: Transfer) -> Transfer:
        """Owe the push itself: an outbox item the data mover performs, retried like any message."""
        assert transfer.destination is not None
        # The item names where the data goes (shown and logged: never the query, which may carry a credential);
        # the mover reads the destination itself from the transfer.
        url = wire.parse_push_destination(transfer.destination).url.split("?", 1)[0]
        await self._owe(tx, transfer, PUSH_JOB, url, {})
        return replace(transfer, awaiting_ack=PUSH_JOB)

    # Delivery results (from the dispatcher).

    async def on_delivered(self, item: OutboxItem, answer: Any, owner: str) -> None:
        """Advance a transfer once the peer acknowledged a message (or a push succeeded), in one transaction."""
        async with self._store.transaction() as tx:
            transfer = await self.engine.pending_for(tx, item, owner)
            if transfer is None:
                return
            at = now_ms()
            if item.message == PUSH_JOB:
                # The data arrived: the provider completes the transfer.
                transfer = replace(transfer, awaiting_ack=None, updated_at=at, version=transfer.version + 1)
                transfer = await self._owe_message(tx, transfer, M.COMPLETION)
                transfer = await self._save(tx, transfer)
                self._wake()
                return
            message = TransferMessage(item.message)
            changes: dict[str, Any] = {"awaiting_ack": None}
            if message is M.START and transfer.state is T.STARTED and transfer.role is Role.PROVIDER:
                # Our fresh tokens after the consumer resumed: the transfer was STARTED already.
                moved: Transfer | None = replace(
                    transfer, awaiting_ack=None, updated_at=at, version=transfer.version + 1
                )
            else:
                if message is M.REQUEST:
                    provider_pid = answer.get("providerPid") if isinstance(answer, dict) else None
                    if not isinstance(provider_pid, str) or not provider_pid:
                        changes["error_detail"] = "the provider acknowledged the request without a providerPid"
                        message = M.TERMINATION
                    else:
                        changes["provider_pid"] = transfer.provider_pid or provider_pid
                moved = await self.engine.acknowledged(tx, transfer, message, **changes)
            if moved is None:
                return
            transfer = moved
            if message is M.START and transfer.role is Role.PROVIDER and transfer.transfer_type == PUSH:
                transfer = await self._owe_push(tx, transfer)
            elif transfer.state not in TRANSFER_TERMINAL:
                step = {
                    M.REQUEST: Step.AFTER_TRANSFER_REQUEST,
                    M.SUSPENSION: Step.AFTER_SUSPENSION,
                    M.START: Step.AFTER_START
                    if transfer.role is Role.PROVIDER and transfer.token_generation <= 1
                    else Step.AFTER_RESUME,
                }.get(message)
                if step is not None:
                    transfer = await self._follow_up(tx, transfer, step)
            transfer = await self._save(tx, transfer)
        self._wake()

    async def on_undeliverable(self, item: OutboxItem, error: str, owner: str) -> None:
        """End a transfer whose peer could not be reached, or whose push failed for good, and tell the peer why."""
        what, code = ("the push", "push.failed") if item.message == PUSH_JOB else (item.message, "error")
        await self.engine.give_up(self._store, item, f"{what} to {item.url} failed: {error}", owner, code=code)
        self._wake()

    # Operator commands and reads.

    async def command(
        self, transfer_id: str, message: TransferMessage, reason: str | None = None, by: str = "the operator"
    ) -> Transfer:
        """Suspend, resume (start), complete or terminate a transfer on the operator's word."""
        async with self._store.transaction() as tx:
            transfer = await tx.transfers.get(transfer_id, for_update=True)
            if transfer is None:
                raise NotFound(f"no transfer process {transfer_id!r}")
            if transfer.state in TRANSFER_TERMINAL:
                raise InvalidTransferTransition(f"the transfer process is already {transfer.state.value}")
            if transfer.awaiting_ack is not None and message is not M.TERMINATION and transfer.awaiting_ack != PUSH_JOB:
                raise InvalidTransferTransition(
                    f"the transfer process is waiting for the peer to acknowledge {transfer.awaiting_ack}; try again"
                )
            next_transfer_state(transfer, message, transfer.role)
            await tx.outbox.drop_for(transfer.id)
            at = now_ms()
            if transfer.peer_pid is None:
                # The provider never acknowledged: nothing to tell it.
                transfer = process.terminate(TRANSFER, transfer, at, error_detail=f"terminated by {by}: {reason}")
                transfer = await self._save(tx, transfer)
                return transfer
            transfer = replace(transfer, updated_at=at, version=transfer.version + 1)
            if message is M.START and transfer.role is Role.PROVIDER:
                transfer = await self._owe_start(tx, transfer)
            elif message is M.TERMINATION:
                transfer = replace(transfer, error_detail=f"terminated by {by}: {reason}")
                transfer = await self._owe_message(tx, transfer, message, "terminated", reason)
            else:
                transfer = await self._owe_message(tx, transfer, message, None, reason)
            transfer = await self._save(tx, transfer)
        self._wake()
        return transfer

    async def monitor_once(self, batch: int = 500) -> int:
        """Terminate provider transfers whose agreement's usage policy no longer holds; return how many."""
        ended = 0
        after = ""
        while True:
            async with self._store.read() as tx:
                running = await tx.transfers.running(batch, after)
                agreements = {t.agreement_id: await tx.agreements.get(t.agreement_id) for t in running}
                uses = {a.id: await next_use(tx, a) for a in agreements.values() if a is not None}
            for transfer in running:
                agreement = agreements[transfer.agreement_id]
                if transfer.awaiting_ack == M.TERMINATION.value:
                    continue
                reason: str | None = None
                if agreement is None:
                    reason = "the agreement no longer exists"
                else:
                    try:
                        decision = usage_decision(
                            agreement,
                            Participant(transfer.counterparty_id),
                            policies.Scope.MONITOR,
                            count=uses.get(agreement.id),
                        )
                        reason = None if decision.permitted else f"the usage policy no longer holds: {decision.reason}"
                    except policies.PolicyError as exc:
                        reason = f"the agreement's policy cannot be evaluated: {exc}"
                if reason is not None:
                    try:
                        await self.command(transfer.id, M.TERMINATION, reason, by="the policy monitor")
                        ended += 1
                        log.info(
                            "transfer terminated by the policy monitor",
                            extra={"transfer": transfer.id, "reason": reason},
                        )
                    except (InvalidTransferTransition, NotFound):
                        pass  # it ended meanwhile
            if len(running) < batch:
                return ended
            after = running[-1].id

    async def edr_entries(self, spec: QuerySpec) -> list[EdrEntry]:
        """Return the endpoint data references this node holds as consumer that a QuerySpec selects."""
        async with self._store.read() as tx:
            return await tx.transfers.edr_entries(spec)

    async def forget_edr(self, transfer_id: str) -> None:
        """Forget the endpoint data reference a consumer holds (the transfer itself stays)."""
        async with self._store.transaction() as tx:
            transfer = await tx.transfers.get(transfer_id, for_update=True)
            if transfer is None or transfer.role is not Role.CONSUMER or transfer.data_address is None:
                raise NotFound(f"no endpoint data reference for transfer process {transfer_id!r}")
            await self._save(tx, replace(transfer, data_address=None, version=transfer.version + 1))

    async def update_edr(self, transfer_id: str, data_address: dict[str, Any], refreshed_version: int) -> Transfer:
        """Store a refreshed endpoint data reference, unless the transfer changed while it was refreshed."""
        async with self._store.transaction() as tx:
            transfer = await tx.transfers.get(transfer_id, for_update=True)
            if transfer is None or transfer.role is not Role.CONSUMER or transfer.data_address is None:
                raise NotFound(f"no endpoint data reference for transfer process {transfer_id!r}")
            if transfer.version != refreshed_version:
                raise Conflict(
                    f"transfer process {transfer_id!r} changed while its tokens were refreshed (a new start?); "
                    "read its endpoint data reference again"
                )
            transfer = replace(transfer, data_address=data_address, updated_at=now_ms(), version=transfer.version + 1)
            transfer = await self._save(tx, transfer)
        return transfer

    async def get(self, transfer_id: str) -> Transfer:
        """Return one transfer (management view)."""
        async with self._store.read() as tx:
            found = await tx.transfers.get(transfer_id)
        if found is None:
            raise NotFound(f"no transfer process {transfer_id!r}")
        return found


class Mover(Protocol):
    """Moves an asset's data to a push destination (the transport layer does the HTTP)."""

    async def push(self, transfer: Transfer, destination_url: str) -> int:
        """Push the data; return the bytes sent or raise PeerError."""
        ...
