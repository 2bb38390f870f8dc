"""The Digital Twin Registry's wire shapes (AAS Part 2 registry and discovery APIs, as Catena-X uses them).

Pure functions shared by the provider (the embedded registry, `services/registry.py`) and consumers (a passport
lookup through a partner's registry): base64url identifiers, shell and submodel descriptors built from a stored
passport, the Tractus-X visibility rule for `specificAssetIds`, asset links, cursors, `subprotocolBody` parsing
and the AAS `Result` error body. Sources: the IDTA AAS Part 2 registry OpenAPI as the Tractus-X
sldt-digital-twin-registry ships it (`backend/src/main/resources/static/aas-registry-openapi.yaml`) and that
registry's `DefaultShellAccessHandler` / `ShellSpecification` (docs/registry.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote

import orjson

from connector.domain.errors import InvalidInput, Problem
from connector.domain.passport import aspects, idta

JSON = Any

# The DTR asset in the catalog (CX-0002): its dct:type and Catena-X common version.
DCT_TYPE = "http://purl.org/dc/terms/type"
CX_COMMON_VERSION = "https://w3id.org/catenax/ontology/common#version"
DTR_TAXONOMY = "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"
DTR_VERSION = "3.0"
DTR_ASSET_ID = "digital-twin-registry"
# Taxonomy of a submodel asset, as Tractus-X providers label them.
SUBMODEL_TAXONOMY = "https://w3id.org/catenax/taxonomy#Submodel"
AAS_SEMANTICS = "https://admin-shell.io/aas/3/0/Submodel"

# Tractus-X's wildcard externalSubjectId: a specificAssetId of an allowed name carrying it is visible to everyone.
PUBLIC_READABLE = "PUBLIC_READABLE"
GLOBAL_ASSET_ID = "globalAssetId"
DIGITAL_TWIN_TYPE = "PartInstance"
SUBMODEL_INTERFACE = "SUBMODEL-3.0"
SUBPROTOCOL = "DSP"
MAX_LINKS = 10_000  # what POST /lookup/shellsByAssetLink takes at most (the OpenAPI's maxItems)
_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes
BAD_BASE64 = "Incorrect Base64 encoded value provided as parameter"  # Tractus-X's text, which clients match

# The submodels each shell has: the Catena-X BatteryPass and the seven IDTA-02035 parts, by their path name.
BATTERY_PASS = "battery_pass"
PARTS: tuple[str, ...] = (BATTERY_PASS, *aspects.IDTA_PARTS)


def semantic_id(part: str) -> str:
    """Return a submodel part's semantic id (the aspect model URN)."""
    if part == BATTERY_PASS:
        return aspects.semantic_id(aspects.schema("catenax-6.1"))
    return idta.semantic_id(part)


def _b64decode(text: str) -> bytes:
    """Decode unpadded base64url strictly: a character outside the alphabet is an error, not skipped."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def encode_id(identifier: str) -> str:
    """Return an identifier base64url-encoded without padding, as AAS paths carry it."""
    return base64.urlsafe_b64encode(identifier.encode()).decode().rstrip("=")


def decode_id(encoded: str, what: str = "identifier") -> str:
    """Read a base64url identifier (padding optional; the standard alphabet is read too); 400 when broken."""
    try:
        raw = encoded.replace("+", "-").replace("/", "_").rstrip("=")
        return _b64decode(raw).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(
            f"the {what} is not base64url-encoded UTF-8 (AAS identifiers in paths are)",
            [Problem("not base64url", what, encoded[:200])],
        ) from None


def submodel_id(passport_id: str, part: str) -> str:
    """Return the stable id of one passport's submodel: a name-based (version 5) UUID of the passport and part.

    The same as `uuid.uuid5(uuid.NAMESPACE_URL, "bpc:passport:<id>#<part>")`, without building UUID objects
    (eight per shell, on every listing).
    """
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + f"bpc:passport:{passport_id}#{part}".encode()).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def submodel_asset_id(part: str, level: str) -> str:
    """Return the id of the asset that offers one submodel part at one access level."""
    return f"passport-submodel-{part.replace('_', '-')}-{level.replace('_', '-')}"


def submodel_path(passport_id: str, part: str) -> str:
    """Return the data-plane path (below `/public/`) of a passport's submodel."""
    return f"submodels/{encode_id(passport_id)}/{part}"


def parse_submodel_path(tail: str) -> tuple[str, str, bool] | None:
    """Read `submodels/<base64url passport id>/<part>[/$value]`: (passport id, part, value only); None if not one."""
    steps = tail.strip("/").split("/")
    if len(steps) not in (3, 4) or steps[0] != "submodels" or (len(steps) == 4 and steps[3] != "$value"):
        return None
    try:
        passport_id = decode_id(steps[1])
    except InvalidInput:
        return None
    return passport_id, steps[2], len(steps) == 4


def subprotocol_body(asset_id: str, dsp_url: str) -> str:
    """Return the `subprotocolBody` naming the asset to negotiate and the connector to negotiate it with."""
    return f"id={asset_id};dspEndpoint={dsp_url}"


def parse_subprotocol_body(body: str) -> dict[str, str]:
    """Read a `subprotocolBody` (`id=<assetId>;dspEndpoint=<DSP URL>`, `;`-separated key=value) into a dict.

    Both `id` and `dspEndpoint` are required; a value keeps every `=` after its key's first one.
    """
    found: dict[str, str] = {}
    for item in body.split(";"):
        key, sep, value = item.strip().partition("=")
        if sep and key:
            found[key.strip()] = value.strip()
    missing = [k for k in ("id", "dspEndpoint") if not found.get(k)]
    if missing:
        raise InvalidInput(
            f"the subprotocolBody lacks {' and '.join(missing)} (expected id=<assetId>;dspEndpoint=<DSP URL>)",
            [Problem("missing", "subprotocolBody", body[:200])],
        )
    return found


@dataclass(frozen=True, slots=True)
class SubmodelTarget:
    """Where a consumer reads a submodel: the href, and the asset to negotiate at which DSP endpoint first."""

    href: str
    asset_id: str
    dsp_endpoint: str
    semantic_id: str


def lookup_links(part_instance_id: str) -> list[dict[str, str]]:
    """Return the POST /lookup/shellsByAssetLink body that finds a battery by its id, as Catena-X consumers send it."""
    return [
        {"name": "partInstanceId", "value": part_instance_id},
        {"name": "digitalTwinType", "value": DIGITAL_TWIN_TYPE},
    ]


def submodel_targets(shell: Mapping[str, Any], semantic_id_prefix: str = "") -> list[SubmodelTarget]:
    """Return every DSP endpoint of a shell's submodels whose semantic id starts with a prefix, in descriptor order.

    For example `submodel_targets(shell, "urn:samm:io.catenax.battery.battery_pass:")`. Endpoints that are not
    `subprotocol` DSP, or whose body lacks `id` or `dspEndpoint`, are left out.
    """
    found: list[SubmodelTarget] = []
    for descriptor in shell.get("submodelDescriptors", ()):
        keys = (descriptor.get("semanticId") or {}).get("keys") or [{}]
        semantic = str(keys[0].get("value", ""))
        if not semantic.startswith(semantic_id_prefix):
            continue
        for endpoint in descriptor.get("endpoints", ()):
            info = endpoint.get("protocolInformation") or {}
            if info.get("subprotocol") != SUBPROTOCOL or not isinstance(info.get("href"), str):
                continue
            try:
                body = parse_subprotocol_body(str(info.get("subprotocolBody", "")))
            except InvalidInput:
                continue
            found.append(SubmodelTarget(info["href"], body["id"], body["dspEndpoint"], semantic))
    return found


def external_subject(readers: Sequence[str]) -> dict[str, Any]:
    """Return the externalSubjectId Reference naming the readers (BPNs or PUBLIC_READABLE)."""
    return {"type": "ExternalReference", "keys": [{"type": "GlobalReference", "value": r} for r in readers]}


def specific_asset_id(name: str, value: str, readers: Sequence[str]) -> dict[str, Any]:
    """Return one SpecificAssetId, visible to the readers."""
    out: dict[str, Any] = {"name": name, "value": value}
    if readers:
        out["externalSubjectId"] = external_subject(readers)
    return out


def id_short(prefix: str, value: str) -> str:
    """Return an AAS idShort (`^[a-zA-Z][a-zA-Z0-9_-]*[a-zA-Z0-9_]+$`, at most 128) made from a value."""
    shown = re.sub(r"[^A-Za-z0-9_-]", "_", value)
    text = (prefix + "_" + shown)[:128]
    return text[:-1] + "_" if text.endswith("-") else text


def timestamp(ms: int) -> str:
    """Return epoch milliseconds as an RFC 3339 UTC date-time with milliseconds (`...T12:00:00.123Z`)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_created_after(raw: str) -> int:
    """Read `createdAfter` (RFC 3339, e.g. 2026-12-01T00:00:00Z) into epoch milliseconds; 400 when it is not one."""
    try:
        parsed = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise InvalidInput(
            "createdAfter must be an RFC 3339 date-time such as 2026-12-01T00:00:00Z",
            [Problem("not a date-time", "createdAfter", raw[:100])],
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class ShellSource:
    """What a shell is built from: the stored passport's identifying columns."""

    passport_id: str
    battery_id: str
    model_id: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class Publication:
    """Where the provider serves what the descriptors point to, and who may see the specific asset ids."""

    data_plane_url: str  # the public data plane, e.g. https://provider.example/public
    dsp_url: str
    manufacturer_bpn: str | None
    readers: tuple[str, ...]
    levels: tuple[str, ...]


@cache
def _part_constants(part: str, dsp_url: str, levels: tuple[str, ...]) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """Return what every descriptor of a part shares: its idShort, semanticId and subprotocolBody per level.

    Shared between descriptors, so never changed by a caller.
    """
    semantic = semantic_id(part)
    reference = {"type": "ExternalReference", "keys": [{"type": "GlobalReference", "value": semantic}]}
    bodies = tuple(subprotocol_body(submodel_asset_id(part, level), dsp_url) for level in levels)
    return semantic.rsplit("#", 1)[-1], reference, bodies


_NO_SECURITY = [{"type": "NONE", "key": "NONE", "value": "NONE"}]


def submodel_descriptor(source: ShellSource, part: str, where: Publication) -> dict[str, Any]:
    """Return the descriptor of one passport's submodel: one endpoint per access level, each naming its asset."""
    href = where.data_plane_url.rstrip("/") + "/" + quote(submodel_path(source.passport_id, part), safe="/$")
    short, reference, bodies = _part_constants(part, where.dsp_url, where.levels)
    endpoints = [
        {
            "interface": SUBMODEL_INTERFACE,
            "protocolInformation": {
                "href": href,
                "endpointProtocol": "HTTP",
                "endpointProtocolVersion": ["1.1"],
                "subprotocol": SUBPROTOCOL,
                "subprotocolBody": body,
                "subprotocolBodyEncoding": "plain",
                "securityAttributes": _NO_SECURITY,
            },
        }
        for body in bodies
    ]
    return {
        "id": submodel_id(source.passport_id, part),
        "idShort": short,
        "semanticId": reference,
        "endpoints": endpoints,
    }


def shell_descriptor(source: ShellSource, where: Publication) -> dict[str, Any]:
    """Return the shell descriptor of one stored passport, as the owner sees it (every specific asset id)."""
    readers = where.readers
    ids = [specific_asset_id("partInstanceId", source.battery_id, readers)]
    if source.model_id:
        ids.append(specific_asset_id("manufacturerPartId", source.model_id, readers))
    ids.append(specific_asset_id("digitalTwinType", DIGITAL_TWIN_TYPE, readers))
    if where.manufacturer_bpn:
        ids.append(specific_asset_id("manufacturerId", where.manufacturer_bpn, readers))
    return {
        "id": source.passport_id,
        "idShort": id_short("BatteryPassport", source.battery_id),
        "globalAssetId": source.battery_id,
        "assetKind": "Instance",
        "specificAssetIds": ids,
        "submodelDescriptors": [submodel_descriptor(source, part, where) for part in PARTS],
        "createdAt": timestamp(source.created_at),
    }


def visible(
    shell: Mapping[str, Any], bpn: str | None, owner: str | None, public_names: frozenset[str]
) -> dict[str, Any] | None:
    """Return the shell as a requester sees it, by the Tractus-X DTR's rule; None when it may not see it at all.

    The owner sees everything. Anyone else sees only the specific asset ids whose externalSubjectId names its
    BPN, or PUBLIC_READABLE on a name in `public_names` (each shown with the matching keys only); a shell with
    none of those is not shown. A requester matched only by the wildcard sees the id, those specific asset ids,
    the submodel descriptors and the creation time, without globalAssetId.
    """
    if bpn is not None and bpn == owner:
        return dict(shell)
    kept: list[dict[str, Any]] = []
    named = False
    for item in shell.get("specificAssetIds", ()):
        keys = (item.get("externalSubjectId") or {}).get("keys", ())
        matching = [
            k
            for k in keys
            if (bpn is not None and k.get("value") == bpn)
            or (k.get("value") == PUBLIC_READABLE and item.get("name") in public_names)
        ]
        if matching:
            named = named or any(k.get("value") == bpn for k in matching)
            kept.append({**item, "externalSubjectId": {**item["externalSubjectId"], "keys": matching}})
    if not kept:
        return None
    if not named:
        out = {"id": shell["id"], "specificAssetIds": kept, "submodelDescriptors": shell.get("submodelDescriptors", [])}
        if "createdAt" in shell:
            out["createdAt"] = shell["createdAt"]
        return out
    return {**shell, "specificAssetIds": kept}


def matches(shell: Mapping[str, Any], links: Iterable[tuple[str, str]]) -> bool:
    """Return whether a (visible) shell has every asset link: a specific asset id, or its globalAssetId."""
    have = {(i.get("name"), i.get("value")) for i in shell.get("specificAssetIds", ())}
    if "globalAssetId" in shell:
        have.add((GLOBAL_ASSET_ID, shell["globalAssetId"]))
    return all(link in have for link in links)


def _link(item: Any, path: str) -> tuple[str, str]:
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("name"), str)
        or not isinstance(item.get("value"), str)
        or not item["name"]
        or not item["value"]
    ):
        raise InvalidInput(
            "an asset link is an object with a non-empty name and value", [Problem("invalid", path, item)]
        )
    if len(item["name"]) > 64 or len(item["value"]) > 2048:
        raise InvalidInput(
            "an asset link's name has at most 64 characters and its value 2048", [Problem("too long", path)]
        )
    return item["name"], item["value"]


def parse_asset_links(body: Any) -> list[tuple[str, str]]:
    """Read the body of POST /lookup/shellsByAssetLink: a list of {name, value} (at most 10,000)."""
    if not isinstance(body, list):
        raise InvalidInput("the body must be a JSON array of {name, value} asset links")
    if len(body) > MAX_LINKS:
        raise InvalidInput(f"at most {MAX_LINKS} asset links are taken in one lookup, not {len(body)}")
    return [_link(item, f"[{i}]") for i, item in enumerate(body)]


def parse_asset_ids(values: Iterable[str]) -> list[tuple[str, str]]:
    """Read GET /lookup/shells' `assetIds`: each a base64url-encoded SpecificAssetId JSON object."""
    links = []
    for i, raw in enumerate(values):
        try:
            document = orjson.loads(decode_id(raw, "assetIds"))
        except (InvalidInput, orjson.JSONDecodeError):
            raise InvalidInput(BAD_BASE64, [Problem(BAD_BASE64, f"assetIds[{i}]", raw[:200])]) from None
        links.append(_link(document, f"assetIds[{i}]"))
    return links


def encode_cursor(position: Sequence[Any]) -> str:
    """Return an opaque cursor for a keyset position."""
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """Read a cursor from `encode_cursor` with `size` parts; 400 when it is not one this registry issued."""
    try:
        found = orjson.loads(_b64decode(cursor))
    except (binascii.Error, ValueError):
        found = None
    if not isinstance(found, list) or len(found) != size:
        raise InvalidInput(
            "cursor is not one this registry issued", [Problem("invalid cursor", "cursor", cursor[:200])]
        )
    return found


def paged(items: list[Any], cursor: str | None) -> dict[str, Any]:
    """Return a PagedResult: `paging_metadata` (with `cursor` when there is a next page) and `result`."""
    return {"paging_metadata": {"cursor": cursor} if cursor else {}, "result": items}


def result(status: int, text: str, now_ms: int) -> dict[str, Any]:
    """Return the AAS Part 2 `Result` error body: one Error message with its code, text and time."""
    return {"messages": [{"code": str(status), "messageType": "Error", "text": text, "timestamp": timestamp(now_ms)}]}
