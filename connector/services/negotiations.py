"""Contract negotiation use cases, provider and consumer: every change in one transaction with the messages it owes.

Inbound messages are acted on at once (the provider decides while answering the request) and what the node
owes its peer is written to the outbox in the same transaction; the dispatcher delivers it and calls
`on_delivered`, which is when the protocol state advances. A message the peer sends after ours implies
the peer received ours, so a delivery acknowledgement that arrives late changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import policies
from connector.domain import process
from connector.domain.errors import AlreadyExists, InvalidInput, NotFound, Problem
from connector.domain.negotiation import (
    NEGOTIATION,
    TERMINAL,
    InvalidTransition,
    Message,
    Negotiation,
    NegotiationState,
    Role,
    advance,
)
from connector.domain.participants import Participant
from connector.dsp import negotiation as wire
from connector.identity.errors import Reason, TokenRejected
from connector.services.catalog import CatalogService, ResolvedOffer
from connector.services.offers import has_rules, same_rules
from connector.services.processes import ProcessEngine
from connector.services.reactions import Act, DefaultReactions, Reactions, Step
from connector.store import Store, Transaction
from connector.store.negotiations import Agreement, OutboxItem

log = logging.getLogger("connector.negotiation")

S = NegotiationState
# (provider's DSP address, provider's id, dataset id, offer id) -> the offer as the provider publishes it.
PublishedOffer = Callable[[str, str, str, str], Awaitable[dict[str, Any]]]
# Opens a pull transfer under an agreement, in the given transaction: (tx, provider's DSP address, agreement).
StartPull = Callable[[Transaction, str, Agreement], Awaitable[Any]]
# The states in which an agreement binds both sides; it is stored in the same transaction as the state.
BINDING = frozenset({S.AGREED, S.VERIFIED, S.FINALIZED})


async def _record_token(tx: Transaction, participant: Participant) -> None:
    """Remember the token id of the participant's request in this transaction; raise TokenRejected if seen before."""
    use = participant.unrecorded
    if use is not None and not await tx.seen_tokens.remember(use.issuer, use.jti, use.expires_at):
        raise TokenRejected(Reason.REPLAYED, "token id (jti) was already used")


def now_ms() -> int:
    """Return the time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class NegotiationService:
    """Runs negotiations in both roles."""

    def __init__(
        self,
        store: Store,
        catalog: CatalogService,
        participant_id: str,
        dsp_url: str,
        wake: Callable[[], None],
        manual_approval: bool = False,
        reactions: Reactions | None = None,
        deadline_seconds: float = 0,
        published_offer: PublishedOffer | None = None,
    ) -> None:
        self.engine: ProcessEngine[Negotiation] = ProcessEngine(
            NEGOTIATION,
            lambda tx: tx.negotiations,
            self._tell_termination,
            now_ms,
            settle=self._settle,
            deadline_seconds=deadline_seconds,
        )
        self._manual = manual_approval
        self._react: Reactions = reactions or DefaultReactions()
        self._store = store
        self._catalog = catalog
        self.participant_id = participant_id
        self.dsp_url = dsp_url
        self._wake = wake
        self._published_offer = published_offer
        # Set by the composition root (the transfer service imports this module, not the other way round).
        self.start_pull: StartPull | None = None

    # A peer's message: its token's replay record with the change it causes.

    @asynccontextmanager
    async def _acting_on(self, participant: Participant) -> AsyncIterator[Transaction]:
        """Open the transaction that acts on a peer's message, its token's id remembered in it (one commit for both).

        A message refused (an error, the transaction rolled back) has its token id remembered by the DSP pipeline
        (transport/dsp.py), so a token is accepted once whatever became of its message.
        """
        async with self._store.transaction() as tx:
            await _record_token(tx, participant)
            yield tx

    async def _record_alone(self, participant: Participant) -> None:
        """Remember the token id of a message that changes nothing (a redelivery)."""
        if participant.unrecorded is not None:
            async with self._store.transaction() as tx:
                await _record_token(tx, participant)

    # Recording what is owed.

    async def _owe(
        self,
        tx: Transaction,
        negotiation: Negotiation,
        message: Message,
        url: str,
        payload: dict[str, Any],
        delay_ms: int = 0,
    ) -> None:
        at = now_ms()
        if delay_ms:
            # Woken when it comes due, not at the next poll.
            asyncio.get_running_loop().call_later(delay_ms / 1000, self._wake)
        await tx.outbox.owe(negotiation.id, message.value, url, payload, negotiation.counterparty_id, at, delay_ms)

    def _peer_url(self, negotiation: Negotiation, suffix: str) -> str:
        base = negotiation.counterparty_address.rstrip("/")
        return f"{base}/negotiations/{negotiation.peer_pid}{suffix}"

    @staticmethod
    def _pids(negotiation: Negotiation) -> wire.Pids:
        return wire.Pids(negotiation.provider_pid or "", negotiation.consumer_pid or "")

    async def _owe_agreement(self, tx: Transaction, negotiation: Negotiation, agreement: dict[str, Any]) -> None:
        message = wire.render_agreement(self._pids(negotiation), agreement)
        await self._owe(tx, negotiation, Message.AGREEMENT, self._peer_url(negotiation, "/agreement"), message)

    async def _owe_termination(
        self, tx: Transaction, negotiation: Negotiation, code: str, reason: str, delay_ms: int = 0
    ) -> None:
        message = wire.render_termination(self._pids(negotiation), code, reason)
        await self._owe(
            tx, negotiation, Message.TERMINATION, self._peer_url(negotiation, "/termination"), message, delay_ms
        )

    async def _tell_termination(self, tx: Transaction, negotiation: Negotiation, code: str, reason: str) -> Negotiation:
        await self._owe_termination(tx, negotiation, code, reason)
        return replace(negotiation, awaiting_ack=Message.TERMINATION.value)

    async def _settle(self, tx: Transaction, negotiation: Negotiation) -> Negotiation:
        """Store the agreement with the state that makes it binding, however that state was reached; and open the
        pull transfer a negotiation started for an EDR waits for, once, when it is finalized."""
        if negotiation.state in BINDING and negotiation.agreement is not None:
            agreement = self._agreement_record(negotiation, negotiation.agreement)
            await tx.agreements.add(agreement)
            if (
                negotiation.pull_when_finalized
                and negotiation.state is S.FINALIZED
                and negotiation.role is Role.CONSUMER
                and self.start_pull is not None
            ):
                await self.start_pull(tx, negotiation.counterparty_address, agreement)
                negotiation = replace(negotiation, pull_when_finalized=False)
        return negotiation

    async def _terminate_scripted(
        self, tx: Transaction, negotiation: Negotiation, step: Step, delay_ms: int = 0
    ) -> Negotiation:
        """Owe a termination the reactions chose (the conformance test mode's script) and say so in errorDetail."""
        reason = f"terminated by this node's scripted reaction ({step.value}) for dataset {negotiation.asset_id}"
        negotiation = replace(negotiation, error_detail=reason, awaiting_ack=Message.TERMINATION.value)
        await self._owe_termination(tx, negotiation, "scripted", reason, delay_ms)
        return negotiation

    # Consumer: starting.

    async def start(
        self, address: str, counterparty_id: str, offer: dict[str, Any], pull_when_finalized: bool = False
    ) -> Negotiation:
        """Ask a provider for an agreement on one of its offers (the offer as its catalog showed it).

        A request that names only the offer (its id, target and assigner, as edc-client sends it) is completed
        with the offer as the provider publishes it: that is what the request asks for, what the provider is
        sent, and what its agreement is checked against. With `pull_when_finalized` (the Tractus-X EDR API), an
        HttpData-PULL transfer is started under the agreement once the negotiation is finalized.
        """
        target = offer.get("target")
        if not isinstance(target, str) or not target:
            raise InvalidInput("the offer needs a target (the dataset id)", [Problem("missing", "policy.target")])
        if not has_rules(offer) and self._published_offer is not None:
            published = await self._published_offer(address, counterparty_id, target, str(offer["@id"]))
            offer = {**published, **{k: offer[k] for k in ("assigner",) if k in offer}, "target": target}
        pid = "urn:uuid:" + str(uuid.uuid4())
        at = now_ms()
        negotiation = Negotiation(
            id=pid,
            role=Role.CONSUMER,
            state=S.INITIAL,
            provider_pid=None,
            consumer_pid=pid,
            counterparty_id=counterparty_id,
            counterparty_address=address.rstrip("/"),
            offer=offer,
            asset_id=target,
            awaiting_ack=Message.REQUEST.value,
            pull_when_finalized=pull_when_finalized,
            created_at=at,
            updated_at=at,
        )
        async with self._store.transaction() as tx:
            negotiation = await self.engine.save(tx, negotiation, new=True)
            await self._owe(
                tx,
                negotiation,
                Message.REQUEST,
                f"{negotiation.counterparty_address}/negotiations/request",
                wire.render_request(pid, self.dsp_url, offer),
            )
        self._wake()
        return negotiation

    # Consumer: an offer a provider makes on its own.

    async def on_initial_offer(self, participant: Participant, body: Any) -> tuple[Negotiation, bool]:
        """Open a negotiation on a provider's own offer; it waits for the operator to accept (or terminate) it."""
        provider_pid, callback, offer = wire.parse_initial_offer(body)
        async with self._store.read() as tx:
            existing = await tx.negotiations.find_by_peer(Role.CONSUMER, participant.id, provider_pid)
        if existing is not None:
            return existing, False
        pid = "urn:uuid:" + str(uuid.uuid4())
        at = now_ms()
        negotiation = Negotiation(
            id=pid,
            role=Role.CONSUMER,
            state=S.OFFERED,
            provider_pid=provider_pid,
            consumer_pid=pid,
            counterparty_id=participant.id,
            counterparty_address=callback.rstrip("/"),
            offer=offer,
            asset_id=offer["target"],
            pending=True,
            created_at=at,
            updated_at=at,
        )
        async with self._store.transaction() as tx:
            negotiation = await self.engine.save(tx, negotiation, new=True)
        log.info("offer received, held for the operator", extra={"negotiation": pid, "participant": participant.id})
        return negotiation, True

    # Provider: a consumer's request.

    async def on_request(self, participant: Participant, message: wire.ContractRequest) -> tuple[Negotiation, bool]:
        """Handle a ContractRequestMessage; return the negotiation and whether it is new."""
        if message.provider_pid is not None:
            return await self._on_counter_request(participant, message), False
        try:
            reason, agreement, definition_id, asset_id = await self._decide(participant, message.offer, message.rules)
        except Exception:
            # A redelivered request is answered with its negotiation whatever deciding it again would say now
            # (the offer withdrawn since, say); only a request that opened none gets the error.
            existing = await self._opened(participant, message.consumer_pid)
            if existing is None:
                raise
            await self._record_alone(participant)
            return existing, False
        target = message.offer.get("target")
        dataset = asset_id or (target if isinstance(target, str) else None)
        act = self._react(Step.ON_REQUEST, dataset)
        # Refusals go out at once; agreements wait for the operator when approval is manual.
        hold = self._manual and reason is None and act in (Act.DEFAULT, Act.AGREE)
        at = now_ms()
        pid = "urn:uuid:" + str(uuid.uuid4())
        negotiation = Negotiation(
            id=pid,
            role=Role.PROVIDER,
            state=S.REQUESTED,
            provider_pid=pid,
            consumer_pid=message.consumer_pid,
            counterparty_id=participant.id,
            counterparty_address=(message.callback_address or "").rstrip("/"),
            offer=message.offer,
            asset_id=dataset,
            definition_id=definition_id,
            agreement=agreement,
            agreement_id=agreement["@id"] if agreement else None,
            error_detail=reason,
            pending=hold,
            created_at=at,
            updated_at=at,
        )
        try:
            async with self._acting_on(participant) as tx:
                # A redelivered request (looked for here, in the transaction that remembers its token, rather
                # than in a read of its own before deciding): the same negotiation, nothing new.
                existing = await tx.negotiations.find_by_peer(Role.PROVIDER, participant.id, message.consumer_pid)
                if existing is not None:
                    return existing, False
                if reason is not None:
                    log.info(
                        "negotiation refused",
                        extra={"negotiation": pid, "participant": participant.id, "reason": reason},
                    )
                    negotiation = replace(negotiation, awaiting_ack=Message.TERMINATION.value)
                    await self._owe_termination(tx, negotiation, "400", reason)
                elif act is Act.TERMINATE:
                    negotiation = await self._terminate_scripted(tx, negotiation, Step.ON_REQUEST)
                elif act is Act.OFFER:
                    negotiation = replace(negotiation, awaiting_ack=Message.OFFER.value)
                    await self._owe_offer(tx, negotiation, message.offer["@id"])
                elif act is Act.NOTHING:
                    pass
                elif hold:
                    log.info("negotiation held for approval", extra={"negotiation": pid, "participant": participant.id})
                else:
                    assert agreement is not None
                    negotiation = replace(negotiation, awaiting_ack=Message.AGREEMENT.value)
                    await self._owe_agreement(tx, negotiation, agreement)
                negotiation = await self.engine.save(tx, negotiation, new=True)
        except AlreadyExists:
            # Another replica (or a redelivery racing this one) opened it first: answer with that one.
            existing = await self._opened(participant, message.consumer_pid)
            if existing is None:
                raise
            await self._record_alone(participant)
            return existing, False
        self._wake()
        return negotiation, True

    async def _opened(self, participant: Participant, consumer_pid: str) -> Negotiation | None:
        """Return the negotiation a consumer's request opened here, if any."""
        async with self._store.read() as tx:
            return await tx.negotiations.find_by_peer(Role.PROVIDER, participant.id, consumer_pid)

    async def _owe_offer(self, tx: Transaction, negotiation: Negotiation, offer_id: str) -> None:
        """Owe the consumer an offer: the rules this provider would agree to, under the offer id it asked for."""
        agreement = negotiation.agreement or {}
        offer = {
            "@id": offer_id,
            "@type": "Offer",
            **{k: v for k, v in agreement.items() if k in ("permission", "prohibition", "obligation", "profile")},
            "target": negotiation.asset_id,
            "assigner": self.participant_id,
        }
        if not any(k in offer for k in ("permission", "prohibition")):
            offer["permission"] = [{"action": "use"}]
        message = wire.render_offer(self._pids(negotiation), offer)
        await self._owe(tx, negotiation, Message.OFFER, self._peer_url(negotiation, "/offers"), message)

    async def _on_counter_request(self, participant: Participant, message: wire.ContractRequest) -> Negotiation:
        """A consumer's counter-offer on an offer of ours: decide on it again (or as scripted)."""
        assert message.provider_pid is not None
        current = await self._own(participant, message.provider_pid)
        if current.role is not Role.PROVIDER:
            raise NotFound(f"no negotiation {message.provider_pid!r} with {participant.id} in which this node provides")
        if current.consumer_pid != message.consumer_pid:
            raise InvalidInput(f"the message names consumerPid {message.consumer_pid!r}, not this negotiation's")
        act = self._react(Step.ON_COUNTER_REQUEST, current.asset_id)
        decided: tuple[str | None, dict[str, Any] | None, str | None, str | None] = (None, None, None, None)
        if act is Act.DEFAULT:
            decided = await self._decide(participant, message.offer, message.rules)
        reason, agreement, _, _ = decided
        async with self._acting_on(participant) as tx:
            pids = wire.Pids(current.id, message.consumer_pid)
            negotiation = (await self.engine.arrive(tx, participant, current.id, pids, Message.REQUEST)).process
            negotiation = advance(
                negotiation, Message.REQUEST, Role.CONSUMER, now_ms(), offer=message.offer, pending=False
            )
            if act is Act.TERMINATE:
                negotiation = await self._terminate_scripted(tx, negotiation, Step.ON_COUNTER_REQUEST)
            elif act is Act.NOTHING:
                pass
            elif reason is not None:
                negotiation = replace(negotiation, error_detail=reason, awaiting_ack=Message.TERMINATION.value)
                await self._owe_termination(tx, negotiation, "400", reason)
            else:
                assert agreement is not None
                negotiation = replace(negotiation, agreement=agreement, agreement_id=agreement["@id"])
                if self._manual:
                    negotiation = replace(negotiation, pending=True)
                else:
                    negotiation = replace(negotiation, awaiting_ack=Message.AGREEMENT.value)
                    await self._owe_agreement(tx, negotiation, agreement)
            negotiation = await self.engine.save(tx, negotiation)
        self._wake()
        return negotiation

    async def approve(self, negotiation_id: str) -> None:
        """Send the agreement (provider) or accept the provider's counter-offer (consumer) held for approval."""
        async with self._store.transaction() as tx:
            negotiation = await tx.negotiations.get(negotiation_id, for_update=True)
            if negotiation is None:
                raise NotFound(f"no contract negotiation {negotiation_id!r}")
            if negotiation.role is Role.CONSUMER and negotiation.pending and negotiation.state is S.OFFERED:
                negotiation = replace(
                    negotiation,
                    pending=False,
                    awaiting_ack=Message.ACCEPTED.value,
                    updated_at=now_ms(),
                    version=negotiation.version + 1,
                )
                await self._owe_acceptance(tx, negotiation)
                negotiation = await self.engine.save(tx, negotiation)
                self._wake()
                return
            agreement = negotiation.agreement
            if not negotiation.pending or agreement is None or negotiation.state in TERMINAL:
                raise InvalidTransition(
                    f"negotiation {negotiation_id!r} is not waiting for approval (state {negotiation.state.value})"
                )
            negotiation = replace(
                negotiation,
                pending=False,
                awaiting_ack=Message.AGREEMENT.value,
                updated_at=now_ms(),
                version=negotiation.version + 1,
            )
            await self._owe_agreement(tx, negotiation, agreement)
            negotiation = await self.engine.save(tx, negotiation)
        self._wake()

    async def _decide(
        self, participant: Participant, offer: dict[str, Any], rules: Any = None
    ) -> tuple[str | None, dict[str, Any] | None, str | None, str | None]:
        """Return (reason to refuse, agreement, definition id, asset id) for a requested offer.

        `rules` is the offer read in the request's @context (the terms a peer's own contexts give it); the
        offer as sent when that is not given. An offer this provider does not know (or does not offer to this
        participant) is an error the request is answered with at once (NotFound: 404), as DSP requires and EDC
        does; no negotiation is opened for it.
        """
        resolved = await self._resolve(participant, offer["@id"])
        asset_id = resolved.asset.id
        target = offer.get("target")
        if target is not None and target != asset_id:
            return f"the offer {offer['@id']} is for dataset {asset_id}, not {target}", None, None, None
        if has_rules(offer):
            read = rules if isinstance(rules, dict) else offer
            try:
                policies.parse_policy({k: v for k, v in read.items() if k not in ("target", "assigner", "assignee")})
            except policies.PolicyError as exc:
                return f"the offer's policy cannot be read: {exc}", None, None, None
            if not same_rules(read, resolved.policy):
                return "the offer's rules differ from the offer this provider made (it was altered)", None, None, None
        context = policies.EvaluationContext(
            participant_id=participant.id, claims=participant.claims, now=datetime.now(UTC), target=asset_id
        )
        decision = policies.evaluate(resolved.policy, "use", context, policies.Scope.NEGOTIATION)
        if not decision.permitted:
            return f"the contract policy is not satisfied: {decision.reason}", None, None, None
        rules = policies.render_dsp(resolved.policy)
        agreement = {
            **{k: v for k, v in rules.items() if k in ("permission", "prohibition", "obligation", "profile")},
            "@id": "urn:uuid:" + str(uuid.uuid4()),
            "@type": "Agreement",
            "target": asset_id,
            "assigner": self.participant_id,
            "assignee": participant.id,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return None, agreement, resolved.definition.id, asset_id

    async def _resolve(self, participant: Participant, offer_id: str) -> ResolvedOffer:
        alias = self._react.offer_alias(offer_id)
        if alias is not None:
            return await self._catalog.resolve(participant, alias[0], alias[1], None, offer_id)
        return await self._catalog.resolve_offer(participant, offer_id)

    # Follow-up messages, both roles.

    async def _own(self, participant: Participant, pid: str) -> Negotiation:
        async with self._store.read() as tx:
            negotiation = await tx.negotiations.get(pid)
        if negotiation is None or negotiation.counterparty_id != participant.id:
            # Never say whether another participant's negotiation exists.
            raise NotFound(f"no negotiation {pid!r} with {participant.id}")
        return negotiation

    async def receive(self, participant: Participant, pid: str, message: Message, body: Any) -> Negotiation:
        """Handle a follow-up message for negotiation `pid` from the participant."""
        if message is Message.AGREEMENT:
            pids, agreement = wire.parse_agreement_message(body)
            rules = wire.agreement_rules(body)
        elif message is Message.OFFER:
            pids, offer = wire.parse_offer_message(body)
        elif message is Message.TERMINATION:
            pids, reason = wire.parse_termination(body)
        elif message in (Message.ACCEPTED, Message.FINALIZED):
            pids, message = wire.parse_event(body)
        else:
            pids = wire.parse_pids(body, message.value)
        async with self._acting_on(participant) as tx:
            arrival = await self.engine.arrive(tx, participant, pid, pids, message)
            negotiation, sender = arrival.process, arrival.sender
            if arrival.repeat:
                if message is Message.AGREEMENT and agreement.get("@id") != negotiation.agreement_id:
                    raise InvalidTransition(
                        f"negotiation {pid!r} already has agreement {negotiation.agreement_id!r}, "
                        f"not {agreement.get('@id')!r}"
                    )
                if arrival.changed:
                    negotiation = await self.engine.save(tx, negotiation)
                return negotiation  # a redelivery: acknowledged, nothing changes
            at = now_ms()
            if message is Message.TERMINATION:
                who = "provider" if sender is Role.PROVIDER else "consumer"
                negotiation = advance(
                    negotiation,
                    message,
                    sender,
                    at,
                    error_detail=f"terminated by the {who}: {reason}",
                    awaiting_ack=None,
                )
                await tx.outbox.drop_for(negotiation.id)
            elif message is Message.AGREEMENT:
                negotiation = await self._on_agreement(tx, negotiation, pids, agreement, rules, at)
            elif message is Message.OFFER:
                negotiation = await self._on_offer(tx, negotiation, pids, offer, at)
            elif message is Message.VERIFICATION:
                negotiation = advance(negotiation, message, sender, at, awaiting_ack=None)
                if self._react(Step.ON_VERIFICATION, negotiation.asset_id) is Act.TERMINATE:
                    negotiation = await self._terminate_scripted(tx, negotiation, Step.ON_VERIFICATION)
                else:
                    negotiation = replace(negotiation, awaiting_ack=Message.FINALIZED.value)
                    await self._owe(
                        tx,
                        negotiation,
                        Message.FINALIZED,
                        self._peer_url(negotiation, "/events"),
                        wire.render_event(self._pids(negotiation), "FINALIZED"),
                    )
            elif message is Message.ACCEPTED:
                negotiation = await self._on_accepted(tx, advance(negotiation, message, sender, at))
            else:
                negotiation = advance(negotiation, message, sender, at)
            negotiation = await self.engine.save(tx, negotiation)
        self._wake()
        return negotiation

    async def _on_accepted(self, tx: Transaction, negotiation: Negotiation) -> Negotiation:
        """The consumer accepted our offer: agree (or hold for the operator), or as scripted."""
        act = self._react(Step.ON_ACCEPTED, negotiation.asset_id)
        if act is Act.TERMINATE:
            return await self._terminate_scripted(tx, negotiation, Step.ON_ACCEPTED)
        if act is Act.NOTHING:
            return negotiation
        agreement = negotiation.agreement
        if agreement is None:
            reason = "this provider has no agreement to offer for the accepted offer"
            negotiation = replace(negotiation, error_detail=reason, awaiting_ack=Message.TERMINATION.value)
            await self._owe_termination(tx, negotiation, "400", reason)
            return negotiation
        if self._manual:
            return replace(negotiation, pending=True)
        await self._owe_agreement(tx, negotiation, agreement)
        return replace(negotiation, awaiting_ack=Message.AGREEMENT.value)

    async def _on_agreement(
        self,
        tx: Transaction,
        negotiation: Negotiation,
        pids: wire.Pids,
        agreement: dict[str, Any],
        rules: Any,
        at: int,
    ) -> Negotiation:
        problem = self._check_agreement(negotiation, agreement, rules)
        if problem is not None:
            # The consumer must not accept an agreement it did not ask for: it terminates, with the reason.
            negotiation = replace(negotiation, provider_pid=pids.provider_pid, error_detail=problem)
            await self._owe_termination(tx, negotiation, "400", problem)
            return replace(
                negotiation, awaiting_ack=Message.TERMINATION.value, updated_at=at, version=negotiation.version + 1
            )
        negotiation = advance(
            negotiation,
            Message.AGREEMENT,
            Role.PROVIDER,
            at,
            provider_pid=pids.provider_pid,
            agreement=agreement,
            agreement_id=agreement["@id"],
            awaiting_ack=Message.VERIFICATION.value,
        )
        act = self._react(Step.ON_AGREEMENT, negotiation.asset_id)
        if act is Act.TERMINATE:
            return await self._terminate_scripted(tx, replace(negotiation, awaiting_ack=None), Step.ON_AGREEMENT)
        if act is Act.NOTHING:
            return replace(negotiation, awaiting_ack=None)
        await self._owe(
            tx,
            negotiation,
            Message.VERIFICATION,
            self._peer_url(negotiation, "/agreement/verification"),
            wire.render_verification(self._pids(negotiation)),
        )
        return negotiation

    async def _on_offer(
        self, tx: Transaction, negotiation: Negotiation, pids: wire.Pids, offer: dict[str, Any], at: int
    ) -> Negotiation:
        """A provider's counter-offer: accept it at once when it is what we asked for, else hold it for the operator."""
        requested = negotiation.offer
        target = offer.get("target", requested.get("target"))
        if target != negotiation.asset_id:
            raise InvalidInput(f"the offer is for {target!r}; this negotiation is about {negotiation.asset_id!r}")
        current = {**offer, "target": negotiation.asset_id}
        act = self._react(Step.ON_OFFER, negotiation.asset_id)
        same = act is Act.ACCEPT or (act is Act.DEFAULT and same_rules(current, requested))
        if act in (Act.COUNTER, Act.TERMINATE):
            negotiation = advance(
                negotiation, Message.OFFER, Role.PROVIDER, at, provider_pid=pids.provider_pid, offer=current
            )
            if act is Act.TERMINATE:
                return await self._terminate_scripted(tx, negotiation, Step.ON_OFFER)
            message = wire.render_counter_request(self._pids(negotiation), offer)
            await self._owe(tx, negotiation, Message.REQUEST, self._peer_url(negotiation, "/request"), message)
            return replace(negotiation, awaiting_ack=Message.REQUEST.value)
        negotiation = advance(
            negotiation,
            Message.OFFER,
            Role.PROVIDER,
            at,
            provider_pid=pids.provider_pid,
            offer=current,
            pending=not same,
            awaiting_ack=Message.ACCEPTED.value if same else None,
        )
        if same:
            await self._owe_acceptance(tx, negotiation)
        else:
            log.info("counter-offer held for the operator", extra={"negotiation": negotiation.id})
        return negotiation

    async def _owe_acceptance(self, tx: Transaction, negotiation: Negotiation) -> None:
        message = wire.render_event(self._pids(negotiation), "ACCEPTED")
        await self._owe(tx, negotiation, Message.ACCEPTED, self._peer_url(negotiation, "/events"), message)

    def _check_agreement(self, negotiation: Negotiation, agreement: dict[str, Any], rules: Any) -> str | None:
        """Say why a received agreement is not the offer this node asked for (`rules`: the agreement expanded)."""
        if agreement.get("target") != negotiation.asset_id:
            return f"the agreement is for {agreement.get('target')!r}, the request was for {negotiation.asset_id!r}"
        if agreement.get("assignee") != self.participant_id:
            return (
                f"the agreement is assigned to {agreement.get('assignee')!r}, not to this node ({self.participant_id})"
            )
        if not same_rules(rules, negotiation.offer):
            return "the agreement's rules differ from the offer this node agreed to (or cannot be read)"
        return None

    def _agreement_record(self, negotiation: Negotiation, agreement: dict[str, Any]) -> Agreement:
        stamp = agreement.get("timestamp")
        try:
            signed = int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            signed = now_ms()
        provider = self.participant_id if negotiation.role is Role.PROVIDER else negotiation.counterparty_id
        consumer = negotiation.counterparty_id if negotiation.role is Role.PROVIDER else self.participant_id
        return Agreement(
            id=agreement["@id"],
            negotiation_id=negotiation.id,
            asset_id=str(agreement.get("target") or negotiation.asset_id),
            provider_id=provider,
            consumer_id=consumer,
            policy=agreement,
            signed_at=signed,
        )

    # Delivery results (from the dispatcher).

    async def on_delivered(self, item: OutboxItem, answer: Any, owner: str) -> None:
        """Advance a negotiation once the peer acknowledged a message, and forget the message, in one transaction."""
        async with self._store.transaction() as tx:
            negotiation = await self.engine.pending_for(tx, item, owner)
            if negotiation is None:
                return
            message = Message(item.message)
            changes: dict[str, Any] = {"awaiting_ack": None}
            if message is Message.REQUEST:
                provider_pid = answer.get("providerPid") if isinstance(answer, dict) else None
                if not isinstance(provider_pid, str) or not provider_pid:
                    changes["error_detail"] = "the provider acknowledged the request without a providerPid"
                    message = Message.TERMINATION
                else:
                    changes["provider_pid"] = provider_pid
            moved = await self.engine.acknowledged(tx, negotiation, message, **changes)
            if moved is None:
                return
            negotiation = moved
            follow_up = (
                Step.AFTER_OFFER
                if message is Message.OFFER and negotiation.role is Role.PROVIDER
                else Step.AFTER_REQUEST
                if message is Message.REQUEST and negotiation.role is Role.CONSUMER
                else None
            )
            if follow_up is not None and self._react(follow_up, negotiation.asset_id) is Act.TERMINATE:
                negotiation = await self._terminate_scripted(tx, negotiation, follow_up, self._react.follow_up_delay_ms)
            negotiation = await self.engine.save(tx, negotiation)

    async def on_undeliverable(self, item: OutboxItem, error: str, owner: str) -> None:
        """End a negotiation whose peer could not be reached or refused a message, and tell the peer why."""
        await self.engine.give_up(
            self._store, item, f"{item.message} could not be delivered to {item.url}: {error}", owner
        )
        self._wake()

    # Operator commands and reads.

    async def terminate(self, negotiation_id: str, reason: str) -> None:
        """Terminate a negotiation on the operator's word, telling the peer why."""
        async with self._store.transaction() as tx:
            negotiation = await tx.negotiations.get(negotiation_id, for_update=True)
            if negotiation is None:
                raise NotFound(f"no contract negotiation {negotiation_id!r}")
            if negotiation.state in TERMINAL:
                raise InvalidTransition(f"the negotiation is already {negotiation.state.value}")
            text = f"terminated by the operator: {reason}"
            negotiation = replace(negotiation, pending=False)
            if negotiation.peer_pid is None:
                negotiation = process.terminate(NEGOTIATION, negotiation, now_ms(), error_detail=text)
                await tx.outbox.drop_for(negotiation.id)
            else:
                await tx.outbox.drop_for(negotiation.id)
                negotiation = replace(
                    negotiation,
                    error_detail=text,
                    awaiting_ack=Message.TERMINATION.value,
                    updated_at=now_ms(),
                    version=negotiation.version + 1,
                )
                await self._owe_termination(tx, negotiation, "terminated", reason)
            negotiation = await self.engine.save(tx, negotiation)
        self._wake()

    async def finalized(self, negotiation_id: str) -> Negotiation | None:
        """Apply the acknowledgement of our FINALIZED event that the consumer's use of the agreement implies
        (a transfer request under it), when the event's own acknowledgement was lost; return the negotiation."""
        async with self._store.transaction() as tx:
            negotiation = await tx.negotiations.get(negotiation_id, for_update=True)
            if (
                negotiation is None
                or negotiation.role is not Role.PROVIDER
                or negotiation.state is not S.VERIFIED
                or negotiation.awaiting_ack != Message.FINALIZED.value
            ):
                return negotiation
            await tx.outbox.forget(negotiation.id, Message.FINALIZED.value)
            negotiation = advance(negotiation, Message.FINALIZED, Role.PROVIDER, now_ms(), awaiting_ack=None)
            return await self.engine.save(tx, negotiation)

    async def get(self, negotiation_id: str) -> Negotiation:
        """Return one negotiation (management view)."""
        async with self._store.read() as tx:
            found = await tx.negotiations.get(negotiation_id)
        if found is None:
            raise NotFound(f"no contract negotiation {negotiation_id!r}")
        return found

    async def for_peer(self, participant: Participant, pid: str) -> Negotiation:
        """Return a negotiation to its counterparty (GET on the protocol surface)."""
        return await self._own(participant, pid)
