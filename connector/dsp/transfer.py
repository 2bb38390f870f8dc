"""DSP 2025-1 transfer process messages: parse what peers send, render what the node sends."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

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


def _bare_properties(address: Mapping[str, Any]) -> dict[str, Any]:
    """Return a DataAddress's endpoint property values as sent, by bare name (EDC and Tractus-X auth names)."""
    found: dict[str, Any] = {}
    for entry in address.get("endpointProperties") or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            found[entry["name"].removeprefix(EDC).removeprefix(TX_AUTH)] = entry.get("value")
    return found


def endpoint_properties(address: Mapping[str, Any]) -> dict[str, str]:
    """Return a DataAddress's endpoint properties by bare name (EDC and Tractus-X auth names are accepted)."""
    found = {k: v if isinstance(v, str) else str(v) for k, v in _bare_properties(address).items()}
    endpoint = address.get("endpoint")
    if isinstance(endpoint, str) and endpoint:
        found["endpoint"] = endpoint
    return found


# Push destinations: DSP's form (`endpoint`, `authorization`/`authType`) and EDC's HttpData form (`baseUrl`, `path`,
# `authKey`/`authCode`, `method`, `contentType`, `header:<name>`, research §6), read by one function for both.

PUSH_METHODS = ("POST", "PUT", "PATCH")
HEADER_PREFIX = "header:"
# Headers the HTTP client sets itself or that would change how the request is framed or routed.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade", "expect"}
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")  # an HTTP header name (RFC 9110 token)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_HEADER_VALUE = 8192


@dataclass(frozen=True, slots=True)
class PushDestination:
    """Where and how a provider pushes: the URL, the method, the headers the destination asks for (credentials)."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def __repr__(self) -> str:
        # The headers carry the consumer's credential: never shown.
        url = self.url.split("?", 1)[0]
        return f"PushDestination(url={url!r}, method={self.method!r}, headers={sorted(self.headers)})"


def _text(props: Mapping[str, Any], name: str, where: str, limit: int = MAX_FIELD) -> str | None:
    value = props.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}.{name} must be a non-empty string", [Problem("not a string", f"{where}.{name}")])
    if len(value) > limit or _CONTROL.search(value):
        # The value is a credential, or sits next to one: it is never echoed.
        what = f"at most {limit} characters" if len(value) > limit else "must not hold control characters"
        raise InvalidInput(f"{where}.{name} {what}", [Problem(f"{name} {what}", f"{where}.{name}")])
    return value


def _put(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, replacing one of the same name in another case (HTTP names ignore case)."""
    for existing in [k for k in headers if k.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value


def _header_name(name: str, where: str) -> str:
    if not _TOKEN.match(name) or name.lower() in _RESERVED_HEADERS:
        raise InvalidInput(
            f"{where} names a header this node cannot send: {name[:64]!r}",
            [Problem("not a header this node can send", where, name[:64])],
        )
    return name


def _http_url(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = value.split("?", 1)[0][:200]
        raise InvalidInput(f"{where} must be an http(s) URL, got {shown!r}", [Problem("not an http(s) URL", where)])
    return value


def parse_push_destination(address: Mapping[str, Any], where: str = "dataAddress") -> PushDestination:
    """Read where a push goes, from DSP's form or EDC's HttpData form; raise InvalidInput naming what is wrong.

    EDC's form wins when both are there: URL = `baseUrl` + `path`, header `<authKey>: <authCode>`, `header:<name>`
    properties, `method` (default POST), `contentType`. DSP's form: URL = `endpoint`, `Authorization: Bearer
    <authorization>` (or as it is when `authType` is not bearer).
    """
    props = _bare_properties(address)
    base = _text(props, "baseUrl", where)
    endpoint = address.get("endpoint") if isinstance(address.get("endpoint"), str) else None
    endpoint = endpoint or _text(props, "endpoint", where)
    if base is not None:
        url = _http_url(base, f"{where}.baseUrl")
        path = _text(props, "path", where)
        if path:
            # As EDC's HTTP sink: the path's segments appended below baseUrl (what a URL may not hold, encoded).
            url = url.rstrip("/") + "/" + quote(path.lstrip("/\\"), safe="/!$&'()*+,;=:@-._~")
    elif endpoint:
        url = _http_url(endpoint, f"{where}.endpoint")
    else:
        raise InvalidInput(
            "an HttpData-PUSH dataAddress needs an endpoint (DSP) or a baseUrl endpoint property (EDC HttpData) to "
            "push to",
            [Problem("missing", f"{where}.endpoint"), Problem("missing", f"{where}.baseUrl")],
        )
    headers: dict[str, str] = {}
    for name in props:
        if name.startswith(HEADER_PREFIX) and name[len(HEADER_PREFIX) :].lower() != "content-type":  # EDC ignores it
            text = _text(props, name, where, MAX_HEADER_VALUE)
            assert text is not None
            _put(headers, _header_name(name[len(HEADER_PREFIX) :], f"{where}.{name}"), text)
    authorization = _text(props, "authorization", where, MAX_HEADER_VALUE)
    if authorization is not None:
        kind = _text(props, "authType", where) or "bearer"
        _put(headers, "Authorization", f"Bearer {authorization}" if kind.lower() == "bearer" else authorization)
    auth_key = _text(props, "authKey", where)
    if auth_key is not None:
        auth_code = _text(props, "authCode", where, MAX_HEADER_VALUE)
        if auth_code is None:
            # EDC could read the code from its own vault (secretName); a provider holds no secrets of its consumers.
            raise InvalidInput(
                f"{where}: authKey needs authCode (the value of the {auth_key[:64]!r} header); "
                "secretName is not supported (it names a secret in the provider's vault)",
                [Problem("authKey without authCode", f"{where}.authCode")],
            )
        _put(headers, _header_name(auth_key, f"{where}.authKey"), auth_code)
    method = (_text(props, "method", where) or "POST").upper()
    if method not in PUSH_METHODS:
        raise InvalidInput(
            f"{where}.method must be one of {', '.join(PUSH_METHODS)} (a push sends the data), got {method[:16]!r}",
            [Problem("unsupported method", f"{where}.method", method[:16])],
        )
    return PushDestination(url, method, headers, _text(props, "contentType", where))


def render_destination(fields: Mapping[str, Any], where: str = "dataDestination") -> dict[str, Any]:
    """Render a management dataDestination (EDC's HttpData form) as the DataAddress of a push TransferRequestMessage.

    As EDC sends it, which is what EDC providers read: `endpointType` is the destination's `type`, and each other
    property is an endpoint property named by its EDC IRI (`authorization` and `authType` by DSP's bare names,
    `header:<name>` as it is). `endpoint` is added for providers that read DSP's field. Raise InvalidInput naming the
    property a provider could not use.
    """
    endpoint_type = fields.get("type") if isinstance(fields.get("type"), str) else None
    entries: list[dict[str, Any]] = []
    for name, value in fields.items():
        if name == "type" or name.startswith("@") or value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise InvalidInput(f"{where}.{name} must be a string", [Problem("not a string", f"{where}.{name}")])
        bare = name in ("authorization", "authType") or name.startswith(HEADER_PREFIX) or ":" in name
        entries.append({"@type": "EndpointProperty", "name": name if bare else EDC + name, "value": value})
    if "authorization" in fields and "authType" not in fields:
        entries.append({"@type": "EndpointProperty", "name": "authType", "value": "bearer"})
    address: dict[str, Any] = {"@type": "DataAddress", "endpointType": endpoint_type or "HttpData"}
    target = parse_push_destination({**address, "endpointProperties": entries}, where)
    if "baseUrl" in fields or "endpoint" in fields:
        address["endpoint"] = target.url
    address["endpointProperties"] = entries
    return address


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
