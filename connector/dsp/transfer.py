"""DSP 2025-1 transfer process messages: parse what peers send, render what the node sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.domain.errors import InvalidInput, Problem
from connector.domain.transfer import Transfer, TransferMessage, TransferState
from connector.dsp.common import DSP_CONTEXT, check_message
from connector.dsp.negotiation import MAX_REASON, Pids, parse_pids

HTTP_ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"
EDC = "https://w3id.org/edc/v0.0.1/ns/"
# Tractus-X's namespace of the token refresh properties of an endpoint data reference.
TX_AUTH = "https://w3id.org/tractusx/auth/"
MAX_FIELD = 2048


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """A TransferRequestMessage."""

    consumer_pid: str
    agreement_id: str
    format: str
    callback_address: str
    data_address: dict[str, Any] | None


def _string(body: dict[str, Any], name: str, limit: int = 256) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"{name} must be a non-empty string", [Problem("missing or invalid", name, value)])
    return value


def parse_transfer_request(body: Any) -> TransferRequest:
    """Read a TransferRequestMessage."""
    check_message(body, "TransferRequestMessage")
    callback = _string(body, "callbackAddress", MAX_FIELD)
    if not callback.startswith(("http://", "https://")):
        raise InvalidInput("callbackAddress must be an http(s) URL", [Problem("not a URL", "callbackAddress")])
    address = body.get("dataAddress")
    if address is not None:
        address = parse_data_address(address, "dataAddress")
    return TransferRequest(
        _string(body, "consumerPid"), _string(body, "agreementId"), _string(body, "format", 128), callback, address
    )


def parse_data_address(value: Any, path: str) -> dict[str, Any]:
    """Read a DSP DataAddress, leniently as EDC sends it (namespaced names, non-string values)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{path} must be a DataAddress object", [Problem("not an object", path)])
    endpoint_type = value.get("endpointType")
    if not isinstance(endpoint_type, str) or not endpoint_type:
        raise InvalidInput(f"{path}.endpointType is required", [Problem("missing", f"{path}.endpointType")])
    return value


def endpoint_properties(address: dict[str, Any]) -> dict[str, str]:
    """Return a DataAddress's endpoint properties by bare name (EDC and Tractus-X auth names are accepted)."""
    found: dict[str, str] = {}
    for entry in address.get("endpointProperties") or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            value = entry.get("value")
            name = entry["name"].removeprefix(EDC).removeprefix(TX_AUTH)
            found[name] = value if isinstance(value, str) else str(value)
    endpoint = address.get("endpoint")
    if isinstance(endpoint, str) and endpoint:
        found["endpoint"] = endpoint
    return found


def render_data_address(endpoint: str, properties: dict[str, str]) -> dict[str, Any]:
    """Render a DataAddress; the endpoint also as EDC's namespaced property, which EDC reads instead."""
    entries = [{"@type": "EndpointProperty", "name": EDC + "endpoint", "value": endpoint}]
    entries += [{"@type": "EndpointProperty", "name": k, "value": v} for k, v in properties.items()]
    return {
        "@type": "DataAddress",
        "endpointType": HTTP_ENDPOINT_TYPE,
        "endpoint": endpoint,
        "endpointProperties": entries,
    }


def parse_start(body: Any) -> tuple[Pids, dict[str, Any] | None]:
    """Read a TransferStartMessage."""
    pids = parse_pids(body, "TransferStartMessage")
    address = body.get("dataAddress")
    return pids, parse_data_address(address, "dataAddress") if address is not None else None


def parse_reasoned(body: Any, message: TransferMessage) -> tuple[Pids, str]:
    """Read a suspension, completion or termination; return the pids and a readable reason."""
    pids = parse_pids(body, message.value)
    reasons = body.get("reason")
    parts = (
        [str(r) if not isinstance(r, dict) else str(r.get("@value", r)) for r in reasons]
        if isinstance(reasons, list)
        else []
    )
    code = body.get("code")
    text = ("; ".join(parts) or "no reason given")[:MAX_REASON]
    return pids, f"{code[:64]}: {text}" if isinstance(code, str) and code else text


def _message(message_type: str, **fields: Any) -> dict[str, Any]:
    return {"@context": [DSP_CONTEXT], "@type": message_type, **{k: v for k, v in fields.items() if v is not None}}


def render_transfer(transfer: Transfer) -> dict[str, Any]:
    """Render the TransferProcess acknowledgement (INITIAL is shown as REQUESTED)."""
    state = transfer.state if transfer.state is not TransferState.INITIAL else TransferState.REQUESTED
    return _message(
        # The schema requires providerPid; it is "" until the provider has acknowledged the request.
        "TransferProcess",
        providerPid=transfer.provider_pid or "",
        consumerPid=transfer.consumer_pid,
        state=state.value,
    )


def render_request(transfer: Transfer, callback: str) -> dict[str, Any]:
    """Render a TransferRequestMessage (with the push destination when there is one)."""
    return _message(
        "TransferRequestMessage",
        consumerPid=transfer.consumer_pid,
        agreementId=transfer.agreement_id,
        format=transfer.transfer_type,
        callbackAddress=callback,
        dataAddress=transfer.destination,
    )


def render_start(pids: Pids, data_address: dict[str, Any] | None) -> dict[str, Any]:
    """Render a TransferStartMessage."""
    return _message(
        "TransferStartMessage", providerPid=pids.provider_pid, consumerPid=pids.consumer_pid, dataAddress=data_address
    )


def render_reasoned(message: TransferMessage, pids: Pids, code: str | None, reason: str | None) -> dict[str, Any]:
    """Render a suspension, completion or termination."""
    return _message(
        message.value,
        providerPid=pids.provider_pid,
        consumerPid=pids.consumer_pid,
        code=code,
        reason=[reason[:1000]] if reason else None,
    )
