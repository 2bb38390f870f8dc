"""DSP 2025-1 contract negotiation messages: parse what peers send, render what the node sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector import jsonld
from connector.domain.errors import InvalidInput, Problem
from connector.domain.negotiation import Message, Negotiation, NegotiationState
from connector.dsp.common import DSP_CONTEXT, DSPACE, check_message

MAX_REASON = 2000


def _pid(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise InvalidInput(f"{name} must be a non-empty string", [Problem("missing or invalid", name, value)])
    return value


@dataclass(frozen=True, slots=True)
class ContractRequest:
    """A ContractRequestMessage: the initial one has a callback address, a counter-offer a provider pid."""

    consumer_pid: str
    provider_pid: str | None
    callback_address: str | None
    offer: dict[str, Any]
    # The offer read in the message's @context (expanded JSON-LD), or as sent when it cannot be expanded.
    rules: Any = None


def parse_contract_request(body: Any) -> ContractRequest:
    """Read a ContractRequestMessage."""
    check_message(body, "ContractRequestMessage")
    consumer_pid = _pid(body, "consumerPid")
    provider_pid = _pid(body, "providerPid", required=False)
    callback = body.get("callbackAddress")
    if (callback is None) == (provider_pid is None):
        raise InvalidInput(
            "a ContractRequestMessage has exactly one of callbackAddress (initial) and providerPid (counter-offer)",
            [Problem("exactly one of callbackAddress and providerPid", "callbackAddress", callback)],
        )
    if callback is not None and (not isinstance(callback, str) or not callback.startswith(("http://", "https://"))):
        raise InvalidInput(
            "callbackAddress must be an http(s) URL", [Problem("not a URL", "callbackAddress", callback)]
        )
    offer = body.get("offer")
    if not isinstance(offer, dict) or not isinstance(offer.get("@id"), str):
        raise InvalidInput("offer must be an Offer with an @id", [Problem("missing offer @id", "offer.@id", None)])
    assert consumer_pid is not None
    return ContractRequest(consumer_pid, provider_pid, callback, offer, policy_in_context(body, "offer"))


@dataclass(frozen=True, slots=True)
class Pids:
    """The pids every follow-up message carries."""

    provider_pid: str
    consumer_pid: str


def parse_pids(body: Any, message_type: str) -> Pids:
    """Read a follow-up message's type and pids."""
    check_message(body, message_type)
    provider_pid, consumer_pid = _pid(body, "providerPid"), _pid(body, "consumerPid")
    assert provider_pid is not None and consumer_pid is not None
    return Pids(provider_pid, consumer_pid)


def parse_agreement_message(body: Any) -> tuple[Pids, dict[str, Any]]:
    """Read a ContractAgreementMessage."""
    pids = parse_pids(body, "ContractAgreementMessage")
    agreement = body.get("agreement")
    if not isinstance(agreement, dict):
        raise InvalidInput("agreement is required", [Problem("missing", "agreement", None)])
    for field in ("@id", "target", "assigner", "assignee"):
        if not isinstance(agreement.get(field), str) or not agreement[field]:
            raise InvalidInput(f"agreement.{field} is required", [Problem("missing", f"agreement.{field}", None)])
    return pids, agreement


def policy_in_context(body: Any, field: str) -> Any:
    """Return the policy of a message's `field` (`offer`, `agreement`) read in the message's @context (expanded).

    A peer may compact the policy with contexts of its own (Tractus-X EDC: the Catena-X policy context, so
    `"leftOperand": "FrameworkAgreement"`); read outside them its terms would not be the rules it means. When
    the message cannot be expanded the policy is returned as sent.
    """
    policy = body.get(field) if isinstance(body, dict) else None
    if not isinstance(policy, dict):
        return policy
    try:
        nodes = [n for n in jsonld.expand_peer_document(body) if isinstance(n, dict)]
    except InvalidInput:
        return policy
    # The policy's terms are scoped to the message's property: expand the message, take that property.
    found = [a for n in nodes for a in jsonld.values(n, DSPACE + field) if isinstance(a, dict)]
    return found[0] if len(found) == 1 else policy


def agreement_rules(body: Any) -> Any:
    """Return a ContractAgreementMessage's agreement read in the message's @context (expanded JSON-LD)."""
    return policy_in_context(body, "agreement")


def parse_offer_message(body: Any) -> tuple[Pids, dict[str, Any]]:
    """Read a follow-up ContractOfferMessage (a provider's counter-offer)."""
    pids = parse_pids(body, "ContractOfferMessage")
    offer = body.get("offer")
    if not isinstance(offer, dict) or not isinstance(offer.get("@id"), str):
        raise InvalidInput("offer must be an Offer with an @id", [Problem("missing offer @id", "offer.@id", None)])
    return pids, offer


def parse_event(body: Any) -> tuple[Pids, Message]:
    """Read a ContractNegotiationEventMessage (ACCEPTED or FINALIZED)."""
    pids = parse_pids(body, "ContractNegotiationEventMessage")
    event = body.get("eventType")
    event = (
        event.removeprefix("dspace:").removeprefix("https://w3id.org/dspace/2025/1/")
        if isinstance(event, str)
        else event
    )
    if event == "ACCEPTED":
        return pids, Message.ACCEPTED
    if event == "FINALIZED":
        return pids, Message.FINALIZED
    raise InvalidInput("eventType must be ACCEPTED or FINALIZED", [Problem("unknown event", "eventType", event)])


def parse_termination(body: Any) -> tuple[Pids, str]:
    """Read a ContractNegotiationTerminationMessage; return the pids and a readable reason."""
    pids = parse_pids(body, "ContractNegotiationTerminationMessage")
    reasons = body.get("reason")
    parts = (
        [str(r) if not isinstance(r, dict) else str(r.get("@value", r)) for r in reasons]
        if isinstance(reasons, list)
        else []
    )
    code = body.get("code")
    # A peer's reason ends up in errorDetail: keep it readable and bounded.
    text = ("; ".join(parts) or "no reason given")[:MAX_REASON]
    return pids, f"{code[:64]}: {text}" if isinstance(code, str) and code else text


def _both(pids: Pids) -> dict[str, str]:
    return {"providerPid": pids.provider_pid, "consumerPid": pids.consumer_pid}


def _message(message_type: str, **fields: Any) -> dict[str, Any]:
    return {"@context": [DSP_CONTEXT], "@type": message_type, **{k: v for k, v in fields.items() if v is not None}}


def render_negotiation(negotiation: Negotiation) -> dict[str, Any]:
    """Render the ContractNegotiation acknowledgement (the protocol's state; INITIAL is never shown)."""
    state = negotiation.state if negotiation.state is not NegotiationState.INITIAL else NegotiationState.REQUESTED
    return _message(
        "ContractNegotiation",
        # The schema requires providerPid; it is "" until the provider has acknowledged the request.
        providerPid=negotiation.provider_pid or "",
        consumerPid=negotiation.consumer_pid,
        state=state.value,
    )


def render_request(consumer_pid: str, callback: str, offer: dict[str, Any]) -> dict[str, Any]:
    """Render an initial ContractRequestMessage."""
    return _message("ContractRequestMessage", consumerPid=consumer_pid, callbackAddress=callback, offer=offer)


def render_counter_request(pids: Pids, offer: dict[str, Any]) -> dict[str, Any]:
    """Render a consumer's counter-offer: a ContractRequestMessage with both pids and no callback address."""
    return _message("ContractRequestMessage", **_both(pids), offer=offer)


def render_offer(pids: Pids, offer: dict[str, Any]) -> dict[str, Any]:
    """Render a provider's ContractOfferMessage in an ongoing negotiation."""
    return _message("ContractOfferMessage", **_both(pids), offer=offer)


def parse_initial_offer(body: Any) -> tuple[str, str, dict[str, Any]]:
    """Read a provider-initiated ContractOfferMessage; return (providerPid, callbackAddress, offer)."""
    check_message(body, "ContractOfferMessage")
    provider_pid = _pid(body, "providerPid")
    callback = body.get("callbackAddress")
    if body.get("consumerPid") is not None:
        raise InvalidInput(
            "an offer that opens a negotiation has no consumerPid (send it to /negotiations/{consumerPid}/offers)",
            [Problem("not allowed here", "consumerPid", body.get("consumerPid"))],
        )
    if not isinstance(callback, str) or not callback.startswith(("http://", "https://")):
        raise InvalidInput(
            "an offer that opens a negotiation needs callbackAddress, an http(s) URL",
            [Problem("missing or not a URL", "callbackAddress", callback)],
        )
    offer = body.get("offer")
    if not isinstance(offer, dict) or not isinstance(offer.get("@id"), str):
        raise InvalidInput("offer must be an Offer with an @id", [Problem("missing offer @id", "offer.@id", None)])
    if not isinstance(offer.get("target"), str) or not offer["target"]:
        raise InvalidInput("offer.target (the dataset id) is required", [Problem("missing", "offer.target", None)])
    assert provider_pid is not None
    return provider_pid, callback, offer


def render_agreement(pids: Pids, agreement: dict[str, Any]) -> dict[str, Any]:
    """Render a ContractAgreementMessage."""
    return _message(
        "ContractAgreementMessage", providerPid=pids.provider_pid, consumerPid=pids.consumer_pid, agreement=agreement
    )


def render_verification(pids: Pids) -> dict[str, Any]:
    """Render a ContractAgreementVerificationMessage."""
    return _message(
        "ContractAgreementVerificationMessage", providerPid=pids.provider_pid, consumerPid=pids.consumer_pid
    )


def render_event(pids: Pids, event: str) -> dict[str, Any]:
    """Render a ContractNegotiationEventMessage."""
    return _message(
        "ContractNegotiationEventMessage", providerPid=pids.provider_pid, consumerPid=pids.consumer_pid, eventType=event
    )


def render_termination(pids: Pids, code: str, reason: str) -> dict[str, Any]:
    """Render a ContractNegotiationTerminationMessage."""
    return _message(
        "ContractNegotiationTerminationMessage",
        **_both(pids),
        code=code,
        reason=[reason[:1000]],
    )
