"""A black-box reproduction of the Eclipse DSP TCK's way of driving a connector under test (CUT).

It plays the TCK's side over real HTTP on loopback: it sends the messages the TCK sends (with its quirks:
a message-level @id, plain-UUID pids, `code: "1"`, assigner/assignee on offers, an extra callbackAddress on
agreements), runs the TCK's callback server (404 for anything no step has registered, as the TCK does),
validates every message the CUT sends against the official DSP 2025-1 schemas, and reads the CUT's state
with GET as the TCK does. The cases and their sequences are the TCK's own (eclipse-dataspacetck/dsp-tck).

Nothing that fails inside the callback server is lost or left to a timeout: every handler-side failure
(a schema check, a case's `respond`, even pytest.skip or pytest.fail) is recorded, ends the wait of
whichever message the case is waiting for, and fails the case in `verify()` if nobody waited.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from tests.dsp_schemas import validate

CONTEXT = ["https://w3id.org/dspace/2025/1/context.jsonld"]
TCK_PARTICIPANT = "TCK_PARTICIPANT"
TOKEN = "tck-static-authorization-value"
WAIT = 15.0  # the TCK's default wait budget, in seconds

SCHEMAS = {
    "ContractRequestMessage": "negotiation/contract-request-message-schema.json",
    "ContractOfferMessage": "negotiation/contract-offer-message-schema.json",
    "ContractAgreementMessage": "negotiation/contract-agreement-message-schema.json",
    "ContractAgreementVerificationMessage": "negotiation/contract-agreement-verification-message-schema.json",
    "ContractNegotiationEventMessage": "negotiation/contract-negotiation-event-message-schema.json",
    "ContractNegotiationTerminationMessage": "negotiation/contract-negotiation-termination-message-schema.json",
    "ContractNegotiation": "negotiation/contract-negotiation-schema.json",
    "ContractNegotiationError": "negotiation/contract-negotiation-error-schema.json",
    "TransferRequestMessage": "transfer/transfer-request-message-schema.json",
    "TransferStartMessage": "transfer/transfer-start-message-schema.json",
    "TransferSuspensionMessage": "transfer/transfer-suspension-message-schema.json",
    "TransferCompletionMessage": "transfer/transfer-completion-message-schema.json",
    "TransferTerminationMessage": "transfer/transfer-termination-message-schema.json",
    "TransferProcess": "transfer/transfer-process-schema.json",
    "TransferError": "transfer/transfer-error-schema.json",
}


def check(body: Any) -> dict[str, Any]:
    """Assert what the TCK asserts of every CUT message: a JSON object with a string @type, schema-valid."""
    assert isinstance(body, dict), f"expected a JSON object, got {body!r}"
    kind = body.get("@type")
    assert isinstance(kind, str), f"no @type string in {body}"
    assert kind in SCHEMAS, f"@type {kind!r} is not a DSP message the TCK knows"
    assert body.get("@context") == CONTEXT or CONTEXT[0] in (body.get("@context") or []), body.get("@context")
    validate(body, SCHEMAS[kind])
    return body


def pid() -> str:
    """A TCK pid: a plain UUID, not a URN."""
    return str(uuid.uuid4())


def _message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"@context": CONTEXT, "@type": kind, "@id": str(uuid.uuid4()), **fields}


def contract_request(consumer_pid: str, offer_id: str, dataset: str, callback: str) -> dict[str, Any]:
    """The TCK's initial ContractRequestMessage."""
    offer = {"@id": offer_id, "@type": "Offer", "target": dataset, "permission": [{"action": "use"}]}
    return _message("ContractRequestMessage", consumerPid=consumer_pid, offer=offer, callbackAddress=callback)


def counter_request(provider_pid: str, consumer_pid: str, offer_id: str, dataset: str) -> dict[str, Any]:
    """The TCK's counter-offer (a ContractRequestMessage with both pids)."""
    offer = {"@id": offer_id, "@type": "Offer", "target": dataset, "permission": [{"action": "use"}]}
    return _message("ContractRequestMessage", providerPid=provider_pid, consumerPid=consumer_pid, offer=offer)


def offer_message(provider_pid: str, consumer_pid: str, offer_id: str, dataset: str, assignee: str) -> dict[str, Any]:
    """The TCK's ContractOfferMessage to a CUT consumer."""
    offer = {
        "@id": offer_id,
        "@type": "Offer",
        "target": dataset,
        "assigner": TCK_PARTICIPANT,
        "assignee": assignee,
        "permission": [{"action": "use"}],
    }
    return _message("ContractOfferMessage", providerPid=provider_pid, consumerPid=consumer_pid, offer=offer)


def agreement_message(
    provider_pid: str, consumer_pid: str, dataset: str, assignee: str, callback: str
) -> dict[str, Any]:
    """The TCK's ContractAgreementMessage to a CUT consumer (with the extra top-level callbackAddress)."""
    agreement = {
        "@id": str(uuid.uuid4()),
        "@type": "Agreement",
        "target": dataset,
        "assigner": TCK_PARTICIPANT,
        "assignee": assignee,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "permission": [{"action": "use"}],
    }
    return _message(
        "ContractAgreementMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        agreement=agreement,
        callbackAddress=callback,
    )


def event(provider_pid: str, consumer_pid: str, kind: str) -> dict[str, Any]:
    """A ContractNegotiationEventMessage (ACCEPTED or FINALIZED)."""
    return _message(
        "ContractNegotiationEventMessage", providerPid=provider_pid, consumerPid=consumer_pid, eventType=kind
    )


def verification(provider_pid: str, consumer_pid: str) -> dict[str, Any]:
    """A ContractAgreementVerificationMessage."""
    return _message("ContractAgreementVerificationMessage", providerPid=provider_pid, consumerPid=consumer_pid)


def termination(provider_pid: str, consumer_pid: str) -> dict[str, Any]:
    """The TCK's termination: code "1"."""
    return _message(
        "ContractNegotiationTerminationMessage", providerPid=provider_pid, consumerPid=consumer_pid, code="1"
    )


def negotiation(provider_pid: str, consumer_pid: str, state: str) -> dict[str, Any]:
    """The TCK's ContractNegotiation answer."""
    return {
        "@context": CONTEXT,
        "@type": "ContractNegotiation",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "state": state,
    }


def transfer_request(consumer_pid: str, agreement_id: str, callback: str) -> dict[str, Any]:
    """The TCK's TransferRequestMessage (HttpData-PULL, no dataAddress)."""
    return _message(
        "TransferRequestMessage",
        consumerPid=consumer_pid,
        agreementId=agreement_id,
        format="HttpData-PULL",
        callbackAddress=callback,
    )


def transfer_start(provider_pid: str, consumer_pid: str, with_address: bool = True) -> dict[str, Any]:
    """The TCK's TransferStartMessage (a provider's carries the TCK's fixed dataAddress)."""
    address = {
        "@type": "DataAddress",
        "endpoint": "http://example.com",
        "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
    }
    extra = {"dataAddress": address} if with_address else {}
    return _message("TransferStartMessage", providerPid=provider_pid, consumerPid=consumer_pid, **extra)


def transfer_message(kind: str, provider_pid: str, consumer_pid: str) -> dict[str, Any]:
    """The TCK's suspension, completion or termination (code "1" where a code goes)."""
    extra = {"code": "1"} if kind in ("TransferTerminationMessage", "TransferSuspensionMessage") else {}
    return _message(kind, providerPid=provider_pid, consumerPid=consumer_pid, **extra)


def transfer_process(provider_pid: str, consumer_pid: str, state: str) -> dict[str, Any]:
    """The TCK's TransferProcess answer."""
    return {
        "@context": CONTEXT,
        "@type": "TransferProcess",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "state": state,
    }


Respond = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


class HandlerFailure(AssertionError):
    """Something failed inside the harness's callback server while it handled one CUT request."""


@dataclass
class _Expected:
    method: str
    pattern: re.Pattern[str]
    respond: Respond
    received: asyncio.Future[dict[str, Any]]


@dataclass
class Tck:
    """The TCK's side: a client of the CUT and a callback server the CUT sends to."""

    http: aiohttp.ClientSession
    dsp_url: str  # the CUT's DSP base (dataspacetck.dsp.connector.http.url)
    trigger_url: str  # the CUT's negotiation trigger
    agent_id: str  # the CUT's participant id
    management_url: str = ""  # not the TCK's: for the cases of ours that need the operator
    transfer_trigger_url: str = ""  # the CUT's transfer trigger
    callback: str = ""
    _expected: list[_Expected] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    failures: list[HandlerFailure] = field(default_factory=list)
    _failed: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Open the callback server on a free loopback port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.callback = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Close the callback server."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        expected = next((e for e in self._expected if e.method == request.method and e.pattern.fullmatch(path)), None)
        if expected is None:
            self.unexpected.append(f"{request.method} {path}")
            return web.json_response({"error": "No handler registered on this endpoint"}, status=404)
        self._expected.remove(expected)
        try:
            body = await request.json() if request.can_read_body else {}
            check(body)
            status, answer = expected.respond(body)
        # BaseException on purpose: pytest.skip and pytest.fail raise BaseExceptions, and one escaping into
        # aiohttp's task would drop the connection and leave the case waiting for a message that came.
        except asyncio.CancelledError:
            raise  # the server is closing: nothing the CUT did
        except BaseException as error:
            failure = self._record(f"{request.method} {path}", error)
            return web.json_response({"error": str(failure)}, status=400)
        expected.received.set_result(body)
        return web.json_response(answer, status=status)

    def _record(self, request: str, error: BaseException) -> HandlerFailure:
        if isinstance(error, Exception):
            reason = f"{type(error).__name__}: {error}"
        else:  # pytest's outcomes (Skipped, Failed) and other BaseExceptions
            reason = f"pytest.skip or pytest.fail inside a server handler ({type(error).__name__}: {error})"
        failure = HandlerFailure(f"{request}: {reason}")
        failure.__cause__ = error
        self.failures.append(failure)
        self._failed.set()
        return failure

    def raise_failures(self) -> None:
        """Raise the first failure recorded inside the callback server, if any."""
        if self.failures:
            raise self.failures[0]

    def verify(self) -> None:
        """Assert what every case ends with: no handler-side failure and no CUT message it did not expect."""
        self.raise_failures()
        assert not self.unexpected, f"the CUT sent messages the case does not expect: {self.unexpected}"

    def expect(self, method: str, path: str, respond: Respond | None = None) -> asyncio.Future[dict[str, Any]]:
        """Register a handler for one CUT message at a path regex; the future gets the message."""

        def acknowledge(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, negotiation(body.get("providerPid", ""), body.get("consumerPid", ""), "REQUESTED")

        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._expected.append(_Expected(method, re.compile(path), respond or acknowledge, future))
        return future

    async def received(self, future: asyncio.Future[dict[str, Any]], kind: str) -> dict[str, Any]:
        """Wait (up to the TCK's budget) for a CUT message of a type; a handler-side failure ends the wait."""
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait({future, failed}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        self.raise_failures()
        if not future.done():
            raise TimeoutError(f"no {kind} from the CUT within the TCK's {WAIT:g} s budget")
        body = future.result()
        assert body["@type"] == kind, body
        return body

    async def send(self, url: str, message: dict[str, Any], expect: str = "2xx") -> dict[str, Any]:
        """POST to the CUT as the TCK does; `expect` is "2xx" or "4xx" (meaning 4xx but not 404, as the TCK)."""
        self.raise_failures()
        headers = {"Authorization": TOKEN}
        async with self.http.post(url, json=message, headers=headers) as response:
            body = await response.json(content_type=None)
            status = response.status
        if expect == "2xx":
            assert 200 <= status < 300, f"{url}: expected 2xx, got {status}: {body}"
        else:
            assert 400 <= status < 500 and status != 404, f"{url}: expected 4xx (not 404), got {status}: {body}"
            assert status == 400, f"the spec's status for an invalid transition is 400, got {status}"
            validate(body, SCHEMAS[body["@type"]])
        return dict(body)

    async def send_dsp(self, path: str, message: dict[str, Any], expect: str = "2xx") -> dict[str, Any]:
        """POST to the CUT's DSP base; a 2xx answer with a body must be schema-valid."""
        body = await self.send(self.dsp_url + path, message, expect)
        if expect == "2xx" and body:
            check(body)
        return body

    async def state(self, url: str) -> str:
        """GET a process from the CUT once, after the TCK's 100 ms pause, and return its state."""
        await asyncio.sleep(0.1)
        self.raise_failures()
        async with self.http.get(url, headers={"Authorization": TOKEN}) as response:
            body = await response.json(content_type=None)
            assert response.status == 200, f"GET {url}: {response.status} {body}"
        check(body)
        return str(body["state"])

    async def poll_state(self, url: str, expected: str) -> str:
        """GET a transfer from the CUT until it shows `expected` (the TCK polls TP states); return the last state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            self.raise_failures()
            async with self.http.get(url, headers={"Authorization": TOKEN}) as response:
                body = await response.json(content_type=None)
                assert response.status == 200, f"GET {url}: {response.status} {body}"
            check(body)
            if body["state"] == expected or loop.time() > deadline:
                return str(body["state"])
            await asyncio.sleep(0.05)

    async def trigger_transfer(self, agreement: str) -> None:
        """Make the CUT start a transfer as consumer, as the TCK's transfer trigger does."""
        body = {
            "providerId": TCK_PARTICIPANT,
            "agreementId": agreement,
            "format": "HttpData-PULL",
            "connectorAddress": self.callback,
        }
        url = self.transfer_trigger_url
        async with self.http.post(url, json=body, headers={"Authorization": TOKEN}) as response:
            assert 200 <= response.status < 300, f"transfer trigger: {response.status} {await response.text()}"

    async def trigger(self, dataset: str) -> None:
        """Make the CUT start a negotiation as consumer, as the TCK's negotiation trigger does."""
        body = {
            "providerId": TCK_PARTICIPANT,
            "offerId": "offer" + dataset,
            "datasetId": dataset,
            "connectorAddress": self.callback,
        }
        async with self.http.post(self.trigger_url, json=body, headers={"Authorization": TOKEN}) as response:
            assert 200 <= response.status < 300, f"trigger: {response.status} {await response.text()}"
