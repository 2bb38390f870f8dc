"""One call to read a partner's battery passport through its Digital Twin Registry (issue 20 §3, docs/lookup.md).

Steps, each named in the error when it fails: `partner` (DID, BPN or DSP address to DID and DSP address),
`registry` (the DTR asset in the partner's catalog, filtered on its dct:type), `registry-access` (an agreement and
an EDR for it, reused while valid), `shell` (the shell found by the battery's global asset id or specific asset
ids, then its descriptor), `submodel` (the descriptor of the wanted semantic id, the endpoint of the best level
offered to this node, its dspEndpoint checked to be the partner's), `submodel-access` (agreement and EDR for
the submodel's asset) and `passport` (the submodel read at its `href` with that EDR).

HTTP steps are bounded by the peer client (CONNECTOR_PEER_TIMEOUT, CONNECTOR_PEER_MAX_BODY_BYTES); the steps that
wait for a negotiation or a transfer by CONNECTOR_ACCESS_WAIT_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from connector import vocab
from connector.domain import registry as wire
from connector.domain.assets import Criterion
from connector.domain.errors import ConnectorError, InvalidInput, NotFound, PeerError, Problem, ProblemList, Refused
from connector.services.access import Access, Partner, failed_at
from connector.store.negotiations import Agreement
from connector.transport.peer import PeerResponse

T = TypeVar("T")

DTR_TYPE = wire.DTR_TAXONOMY
DCT_TYPE_CRITERION = "'http://purl.org/dc/terms/type'.'@id'"
GLOBAL_ASSET_ID = "globalAssetId"
PART_INSTANCE_ID = "partInstanceId"
BATTERY_PASS_SEMANTIC_ID = "urn:samm:io.catenax.battery.battery_pass:6.1.0#BatteryPass"
# Access levels, most to least privileged: without a level asked for, the best one offered to this node is read.
LEVELS = ("authority", "legitimate_interest", "public")
MAX_ASSET_IDS = 20
CACHE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """What to look up: whose passport, which battery, which submodel, at which level."""

    partner: str
    battery_id: str | None = None
    specific_asset_ids: tuple[tuple[str, str], ...] = ()
    level: str | None = None
    semantic_id: str = BATTERY_PASS_SEMANTIC_ID


def parse_lookup_request(body: Any) -> LookupRequest:
    """Read a lookup body; every problem is named with its field."""
    problems = ProblemList()
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", [Problem("not an object", None)])
    partner = body.get("partner")
    if not isinstance(partner, str) or not partner.strip():
        problems.add("the partner (a DID, a BPN or a DSP address) is required", "partner", partner)
    battery = body.get("batteryId")
    if battery is not None and (not isinstance(battery, str) or not battery.strip() or len(battery) > 2048):
        problems.add("batteryId must be a non-empty string (the battery's global asset id)", "batteryId", battery)
    links: list[tuple[str, str]] = []
    raw_links = body.get("specificAssetIds")
    if raw_links is not None:
        if not isinstance(raw_links, list) or not raw_links or len(raw_links) > MAX_ASSET_IDS:
            problems.add(f"specificAssetIds must be a list of 1 to {MAX_ASSET_IDS} {{name, value}}", "specificAssetIds")
        else:
            for i, item in enumerate(raw_links):
                name = item.get("name") if isinstance(item, dict) else None
                value = item.get("value") if isinstance(item, dict) else None
                if not isinstance(name, str) or not name or not isinstance(value, str) or not value:
                    problems.add("each specific asset id has a non-empty name and value", f"specificAssetIds[{i}]")
                else:
                    links.append((name, value))
    if battery is None and raw_links is None:
        problems.add("batteryId or specificAssetIds is required", "batteryId")
    level = body.get("level")
    if level is not None and level not in LEVELS:
        problems.add(f"level must be one of {', '.join(LEVELS)}", "level", level)
    semantic = body.get("semanticId", BATTERY_PASS_SEMANTIC_ID)
    if not isinstance(semantic, str) or not semantic:
        problems.add("semanticId must be a non-empty string", "semanticId", semantic)
    problems.raise_if_any("the lookup request is invalid")
    return LookupRequest(
        str(partner).strip(),
        battery.strip() if isinstance(battery, str) else None,
        tuple(links),
        level if isinstance(level, str) else None,
        str(semantic),
    )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A submodel endpoint of a descriptor: where to read it, and which asset to negotiate with whom."""

    href: str
    asset_id: str
    dsp_endpoint: str
    level: str | None


@dataclass(slots=True)
class LookupResult:
    """The passport and where it came from."""

    passport: Any
    source: dict[str, Any]
    elapsed_ms: dict[str, float] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        """Return the management answer."""
        return {"passport": self.passport, "source": self.source, "elapsedMs": self.elapsed_ms}


def level_of(asset_id: str, dataset: Mapping[str, Any] | None = None) -> str | None:
    """Return the access level an asset offers: its dataset's accessLevel property, else its id's last part."""
    for key, value in (dataset or {}).items():
        name = key.rsplit("/", 1)[-1].rsplit(":", 1)[-1].rsplit("#", 1)[-1]
        if name in ("accessLevel", "passportAccessLevel") and value in LEVELS:
            return str(value)
    normal = asset_id.replace("_", "-")
    return next((level for level in LEVELS if normal.endswith("-" + level.replace("_", "-"))), None)


def _semantic_ids(descriptor: Mapping[str, Any]) -> list[str]:
    semantic = descriptor.get("semanticId")
    keys = semantic.get("keys") if isinstance(semantic, dict) else None
    return [str(k["value"]) for k in keys or [] if isinstance(k, dict) and isinstance(k.get("value"), str)]


def endpoints_of(descriptor: Mapping[str, Any]) -> list[Endpoint]:
    """Return a submodel descriptor's DSP endpoints (those with an href and a complete subprotocolBody)."""
    found = []
    for item in descriptor.get("endpoints") or []:
        info = item.get("protocolInformation") if isinstance(item, dict) else None
        if not isinstance(info, dict) or not isinstance(info.get("href"), str):
            continue
        if info.get("subprotocol") not in (None, "DSP"):
            continue
        try:
            body = wire.parse_subprotocol_body(str(info.get("subprotocolBody") or ""))
        except InvalidInput:
            continue  # no asset or no connector named: nothing this node could negotiate
        found.append(Endpoint(info["href"], body["id"], body["dspEndpoint"], level_of(body["id"])))
    return found


def _result_ids(body: Any) -> list[str]:
    """Return the shell ids of a lookup answer (a PagedResult, or a bare list as older registries answer)."""
    items = body.get("result") if isinstance(body, dict) else body
    return [str(i) for i in items if isinstance(i, str)] if isinstance(items, list) else []


def _aas_reason(answer: PeerResponse) -> str:
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("messages"), list) and body["messages"]:
        first = body["messages"][0]
        if isinstance(first, dict) and first.get("text"):
            return str(first["text"])[:300]
    if isinstance(body, dict):
        for key in ("reason", "detail", "message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])[:300]
    return "no reason given"


class PassportLookup:
    """Finds and reads a partner's passport through its registry, reusing agreements and EDRs (services.access)."""

    def __init__(self, access: Access, clock: Callable[[], float] = time.monotonic) -> None:
        self._access = access
        self._clock = clock
        self._registries: dict[str, tuple[float, dict[str, Any]]] = {}  # partner DID -> its DTR dataset
        # (partner DID, the endpoints' asset ids, level asked for) -> the endpoint chosen and its dataset
        self._by_serial: set[str] = set()  # partners whose registry finds batteries by partInstanceId only
        self._chosen: dict[tuple[str, tuple[str, ...], str | None], tuple[float, Endpoint, Any]] = {}

    async def lookup(self, wanted: LookupRequest) -> LookupResult:
        """Return the passport of a battery at the best level the partner grants this node (or the one asked)."""
        timings: dict[str, float] = {}

        async def step(name: str, work: Callable[[], Awaitable[T]]) -> T:
            started = time.perf_counter()
            try:
                return await work()
            except ConnectorError as exc:
                raise failed_at(name, exc) from None
            finally:
                timings[name] = round((time.perf_counter() - started) * 1000, 2)

        partner = await step("partner", lambda: self._access.partner(wanted.partner))
        registry = await step("registry", lambda: self._registry(partner))
        registry_agreement = await step("registry-access", lambda: self._grant(partner, registry))
        shell = await step("shell", lambda: self._shell(partner, registry_agreement, wanted))
        endpoint, sub_partner, dataset = await step(
            "submodel", lambda: self._endpoint(partner, registry_agreement, shell, wanted)
        )
        agreement = await step("submodel-access", lambda: self._grant(sub_partner, dataset or endpoint.asset_id))
        passport = await step("passport", lambda: self._read(sub_partner, agreement, endpoint))
        source = {
            "partner": partner.did,
            "bpn": partner.bpn,
            "dspAddress": partner.address,
            "registry": {"asset": registry["@id"], "agreement": registry_agreement.id},
            "shell": shell.get("id"),
            "globalAssetId": shell.get("globalAssetId"),
            "semanticId": wanted.semantic_id,
            "href": endpoint.href,
            "asset": agreement.asset_id,
            "agreement": agreement.id,
            "level": endpoint.level,
        }
        return LookupResult(passport, source, timings)

    async def _registry(self, partner: Partner) -> dict[str, Any]:
        hit = self._registries.get(partner.did)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        found = await self._access.datasets(partner, (Criterion(DCT_TYPE_CRITERION, "=", DTR_TYPE),))
        if not found:
            raise NotFound(f"{partner.did} offers this node no Digital Twin Registry (no dataset of type {DTR_TYPE})")
        self._registries[partner.did] = (self._clock() + CACHE_SECONDS, found[0])
        return found[0]

    async def _grant(self, partner: Partner, dataset: str | Mapping[str, Any]) -> Agreement:
        agreement, _ = await self._access.grant(partner, dataset)
        return agreement

    async def _shell(self, partner: Partner, agreement: Agreement, wanted: LookupRequest) -> dict[str, Any]:
        extra = list(wanted.specific_asset_ids)
        tries = [extra] if wanted.battery_id is None else [[(GLOBAL_ASSET_ID, wanted.battery_id), *extra]]
        if wanted.battery_id is not None:
            # A registry shows the global asset id only to the BPNs it names; to everyone else (PUBLIC_READABLE)
            # the battery is found by its partInstanceId, which Catena-X sets to the same serial.
            by_serial = [(PART_INSTANCE_ID, wanted.battery_id), *extra]
            tries = [by_serial, *tries] if partner.did in self._by_serial else [*tries, by_serial]
        ids: list[str] = []
        for links in tries:
            ids = await self._lookup(partner, agreement, links)
            if ids:
                if links[0][0] == PART_INSTANCE_ID:
                    self._by_serial.add(partner.did)
                else:
                    self._by_serial.discard(partner.did)
                break
        if not ids:
            shown = " or ".join(", ".join(f"{n}={v}" for n, v in links) for links in tries)
            raise NotFound(f"the partner's registry has no shell visible to this node with {shown}")
        answer = await self._access.get(partner, agreement, "/shell-descriptors/" + wire.encode_id(ids[0]))
        if answer.status == 404:
            raise NotFound(f"the partner's registry lists shell {ids[0]!r} but has no descriptor for it")
        if not answer.ok or not isinstance(answer.body, dict):
            raise PeerError(f"the registry answered {answer.status} for shell {ids[0]!r}: {_aas_reason(answer)}")
        return dict(answer.body)

    async def _lookup(self, partner: Partner, agreement: Agreement, links: list[tuple[str, str]]) -> list[str]:
        """Return the ids of the shells with every asset link (POST /lookup/shellsByAssetLink, else the GET form)."""
        body = [{"name": name, "value": value} for name, value in links]
        answer = await self._access.request(partner, agreement, "POST", "/lookup/shellsByAssetLink", json=body)
        if answer.status in (404, 405, 501) and not _result_ids(answer.body):
            # A registry without the AAS 3.1 POST lookup (or a data plane that proxies GET only): the older GET.
            query = "&".join("assetIds=" + wire.encode_id(orjson.dumps(link).decode()) for link in body)
            answer = await self._access.get(partner, agreement, "/lookup/shells?" + query)
        if not answer.ok:
            raise PeerError(f"the registry's lookup answered {answer.status}: {_aas_reason(answer)}")
        return _result_ids(answer.body)

    async def _endpoint(
        self, partner: Partner, agreement: Agreement, shell: Mapping[str, Any], wanted: LookupRequest
    ) -> tuple[Endpoint, Partner, Any]:
        descriptors = [d for d in shell.get("submodelDescriptors") or [] if isinstance(d, dict)]
        descriptor = next((d for d in descriptors if wanted.semantic_id in _semantic_ids(d)), None)
        if descriptor is None:
            have = sorted({s for d in descriptors for s in _semantic_ids(d)})
            raise NotFound(
                f"shell {shell.get('id')!r} has no submodel {wanted.semantic_id}"
                + (f" (it has {', '.join(have[:10])})" if have else " (it has none)")
            )
        endpoints = endpoints_of(descriptor)
        if wanted.level is not None:
            endpoints = [e for e in endpoints if e.level in (wanted.level, None)]
        if not endpoints:
            level = f" of level {wanted.level}" if wanted.level else ""
            raise NotFound(f"the submodel {wanted.semantic_id} has no DSP endpoint{level} (href and subprotocolBody)")
        endpoints.sort(key=lambda e: LEVELS.index(e.level) if e.level in LEVELS else len(LEVELS))
        key = (partner.did, tuple(e.asset_id for e in endpoints), wanted.level)
        hit = self._chosen.get(key)
        if hit is not None and hit[0] > self._clock():
            # The same assets as last time: the same choice, with this shell's href.
            known = next(e for e in endpoints if e.asset_id == hit[1].asset_id)
            known = Endpoint(known.href, known.asset_id, known.dsp_endpoint, hit[1].level)
            return known, await self._access.partner_at(partner, known.dsp_endpoint), hit[2]
        sub_partner = await self._access.partner_at(partner, endpoints[0].dsp_endpoint)
        others = {e.dsp_endpoint for e in endpoints[1:]}
        for other in others - {endpoints[0].dsp_endpoint}:
            await self._access.partner_at(partner, other)
        # One endpoint whose agreement this node holds is used as it is; otherwise the catalog says which levels
        # are offered to this node, so no negotiation is started for a level its policy would refuse.
        for endpoint in endpoints:
            if await self._access.held_agreement(sub_partner, endpoint.asset_id) is not None:
                self._chosen[key] = (self._clock() + CACHE_SECONDS, endpoint, None)
                return endpoint, sub_partner, None
        ids = [e.asset_id for e in endpoints]
        offered = {
            str(d.get("@id")): d
            for d in await self._access.datasets(sub_partner, (Criterion(vocab.EDC + "id", "in", ids),))
        }
        chosen = next((e for e in endpoints if e.asset_id in offered), None)
        if chosen is None:
            levels = ", ".join(e.level or e.asset_id for e in endpoints)
            raise Refused(
                f"the partner offers this node none of the submodel's assets ({levels}): its policies do not grant "
                "this node that level (which credentials does it hold?)"
            )
        if chosen.level is None:
            chosen = Endpoint(chosen.href, chosen.asset_id, chosen.dsp_endpoint, level_of("", offered[chosen.asset_id]))
        self._chosen[key] = (self._clock() + CACHE_SECONDS, chosen, offered[chosen.asset_id])
        return chosen, sub_partner, offered[chosen.asset_id]

    async def _read(self, partner: Partner, agreement: Agreement, endpoint: Endpoint) -> Any:
        url = endpoint.href.rstrip("/") + "/$value"
        answer = await self._access.get(partner, agreement, url=url)
        if answer.status == 404:
            raise NotFound(f"the partner's data plane has no submodel at {endpoint.href[:200]}")
        if not answer.ok:
            raise PeerError(f"the partner's data plane answered {answer.status}: {_aas_reason(answer)}")
        if answer.body is None:
            raise PeerError("the partner's data plane answered the submodel without a JSON body")
        return answer.body
