"""The management API's OpenAPI 3.1 document, generated from the route table (so no route goes undocumented)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from multidict import MultiMapping

from connector import __version__
from connector.domain.errors import Problem
from connector.management import schemas as v4_schemas

_NOT_BLANK = r"\S"  # a string with at least one character that is not white space
_ANY_JSONLD = {"type": "object", "description": "JSON-LD; compacted with the EDC vocabulary as @context"}

_CRITERION = {
    "type": "object",
    "required": ["operandLeft", "operator", "operandRight"],
    "properties": {
        "@type": {"const": "Criterion"},
        "operandLeft": {"type": "string", "minLength": 1, "examples": ["https://w3id.org/edc/v0.0.1/ns/id", "name"]},
        "operator": {"enum": ["=", "!=", "<", "<=", ">", ">=", "in", "like", "ilike", "contains"]},
        "operandRight": {},
    },
}

_DATA_ADDRESS = v4_schemas.DATA_ADDRESS
DSP_ADDRESS = v4_schemas.DSP_ADDRESS

_CONTEXT = {
    "description": "JSON-LD context",
    "oneOf": [{"type": "object"}, {"type": "string"}, {"type": "array"}],
}

SCHEMAS: dict[str, Any] = {
    "AssetInput": {
        "type": "object",
        "required": ["dataAddress"],
        "properties": {
            "@context": _CONTEXT,
            "@id": {"type": "string", "maxLength": 512},
            "@type": {"const": "Asset"},
            "properties": {"type": "object", "description": "public: shown in the catalog"},
            "privateProperties": {
                "type": "object",
                "description": "never sent to peers; usable in selectors",
            },
            "dataAddress": _DATA_ADDRESS,
        },
    },
    "Asset": {
        "type": "object",
        "required": ["@id", "properties", "dataAddress"],
        "properties": {
            "@id": {"type": "string"},
            "@type": {"const": "Asset"},
            "properties": {"type": "object"},
            "privateProperties": {"type": "object"},
            "dataAddress": _DATA_ADDRESS,
            "createdAt": {"type": "integer"},
            "@context": _CONTEXT,
        },
    },
    "AssetList": {"type": "array", "items": {"$ref": "#/components/schemas/Asset"}},
    "PolicyDefinitionInput": {
        "type": "object",
        "required": ["policy"],
        "properties": {
            "@context": _CONTEXT,
            "@id": {"type": "string", "maxLength": 512},
            "@type": {"const": "PolicyDefinition"},
            "policy": {
                "type": "object",
                "description": "an ODRL Set; give the ODRL context (http://www.w3.org/ns/odrl.jsonld) inside it",
            },
            "privateProperties": {"type": "object"},
        },
    },
    "PolicyDefinition": {
        "type": "object",
        "required": ["@id", "policy", "createdAt"],
        "properties": {
            "@id": {"type": "string"},
            "@type": {"const": "PolicyDefinition"},
            "policy": {"type": "object", "description": "ODRL terms carry the odrl: prefix"},
            "privateProperties": {"type": "object"},
            "createdAt": {"type": "integer"},
            "@context": _CONTEXT,
        },
    },
    "PolicyDefinitionList": {"type": "array", "items": {"$ref": "#/components/schemas/PolicyDefinition"}},
    "ContractDefinitionInput": {
        "type": "object",
        "required": ["accessPolicyId", "contractPolicyId"],
        "properties": {
            "@context": _CONTEXT,
            "@id": {"type": "string", "maxLength": 512},
            "@type": {"const": "ContractDefinition"},
            "accessPolicyId": {"type": "string", "minLength": 1},
            "contractPolicyId": {"type": "string", "minLength": 1},
            "assetsSelector": {"type": "array", "items": _CRITERION},
            "privateProperties": {"type": "object"},
        },
    },
    "ContractDefinition": {
        "type": "object",
        "required": ["@id", "accessPolicyId", "contractPolicyId", "assetsSelector"],
        "properties": {
            "@id": {"type": "string"},
            "@type": {"const": "ContractDefinition"},
            "accessPolicyId": {"type": "string", "minLength": 1},
            "contractPolicyId": {"type": "string", "minLength": 1},
            "assetsSelector": {"type": "array", "items": _CRITERION},
            "privateProperties": {"type": "object"},
            "createdAt": {"type": "integer"},
            "@context": _CONTEXT,
        },
    },
    "ContractDefinitionList": {"type": "array", "items": {"$ref": "#/components/schemas/ContractDefinition"}},
    "QuerySpec": {
        "type": "object",
        "properties": {
            "@context": _CONTEXT,
            "@type": {"const": "QuerySpec"},
            "offset": {"type": "integer", "minimum": 0, "maximum": v4_schemas.MAX_OFFSET, "default": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": v4_schemas.MAX_LIMIT, "default": 50},
            "sortField": {"type": "string", "minLength": 1},
            "sortOrder": {"enum": ["ASC", "DESC"], "default": "ASC"},
            "filterExpression": {"type": "array", "items": _CRITERION},
        },
    },
    "CatalogRequest": {
        "type": "object",
        "required": ["counterPartyAddress"],
        "properties": {
            "@context": _CONTEXT,
            "@type": {"const": "CatalogRequest"},
            "counterPartyAddress": {
                "type": "string",
                "pattern": DSP_ADDRESS,
                "description": "the peer's DSP base URL, e.g. .../api/dsp/2025-1",
            },
            "counterPartyId": {
                "type": "string",
                "minLength": 1,
                "description": "the peer's DID (found from its version document if absent)",
            },
            "protocol": {"const": "dataspace-protocol-http:2025-1"},
            "querySpec": {
                "type": "object",
                "properties": {
                    "offset": {"type": "integer", "minimum": 0, "maximum": v4_schemas.MAX_PEER_OFFSET},
                    "limit": {"type": "integer", "minimum": 1, "maximum": v4_schemas.MAX_LIMIT},
                },
            },
        },
    },
    "DatasetRequest": {
        "type": "object",
        "required": ["@id", "counterPartyAddress"],
        "properties": {
            "@context": _CONTEXT,
            "@id": {"type": "string", "minLength": 1, "description": "the dataset id"},
            "counterPartyAddress": {"type": "string", "pattern": DSP_ADDRESS, "minLength": 1},
            "counterPartyId": {
                "type": "string",
                "minLength": 1,
            },
            "protocol": {"const": "dataspace-protocol-http:2025-1"},
        },
    },
    "PeerCatalog": {
        "type": "object",
        "description": "the peer's DSP catalog, compacted as EDC returns it (dcat:dataset, odrl:hasPolicy, dcat:distribution)",
    },
    "PeerDataset": {"type": "object", "description": "the peer's dataset, compacted as EDC returns it"},
    "Identity": {
        "type": "object",
        "required": ["did", "didDocument"],
        "properties": {
            "did": {"type": "string"},
            "didDocument": {"type": "object"},
            "credentialService": {"type": "string"},
            "issuer": {"type": ["string", "null"]},
        },
    },
    "CredentialInput": {
        "type": "object",
        "required": ["credential"],
        "properties": {"credential": {"type": "string", "description": "a VC-JWT (VCDM 2.0) issued to this node"}},
    },
    "Credential": {
        "type": "object",
        "required": ["id", "types", "issuer"],
        "properties": {
            "id": {"type": "string"},
            "types": {"type": "array", "items": {"type": "string"}},
            "issuer": {"type": "string"},
            "validUntil": {"type": ["integer", "null"], "description": "epoch seconds"},
        },
    },
    "CredentialList": {"type": "array", "items": {"$ref": "#/components/schemas/Credential"}},
    "ContractRequest": {
        "type": "object",
        "required": ["counterPartyAddress", "policy"],
        "properties": {
            "@context": _CONTEXT,
            "@type": {"const": "ContractRequest"},
            "counterPartyAddress": {
                "type": "string",
                "pattern": DSP_ADDRESS,
                "description": "the provider's DSP base URL",
            },
            "counterPartyId": {
                "type": "string",
                "minLength": 1,
                "description": "the provider's DID (default: policy.assigner)",
            },
            "protocol": {"const": "dataspace-protocol-http:2025-1"},
            "policy": {
                "type": "object",
                "description": "the offer from the provider's catalog: @id, assigner, target and its rules",
            },
        },
    },
    "ContractNegotiation": {
        "type": "object",
        "required": ["@id", "type", "state"],
        "properties": {
            "@id": {"type": "string"},
            "@type": {"const": "ContractNegotiation"},
            "type": {"enum": ["CONSUMER", "PROVIDER"]},
            "protocol": {"type": "string"},
            "state": {
                "enum": ["INITIAL", "REQUESTED", "OFFERED", "ACCEPTED", "AGREED", "VERIFIED", "FINALIZED", "TERMINATED"]
            },
            "counterPartyId": {
                "type": "string",
                "minLength": 1,
            },
            "counterPartyAddress": {"type": "string", "pattern": DSP_ADDRESS, "minLength": 1},
            "assetId": {"type": ["string", "null"]},
            "contractAgreementId": {"type": "string"},
            "errorDetail": {"type": "string", "description": "why the negotiation was terminated"},
            "pending": {"type": "boolean", "description": "held for the operator's approval"},
            "createdAt": {"type": "integer"},
            "callbackAddresses": {"type": "array"},
            "@context": _CONTEXT,
        },
    },
    "ContractNegotiationList": {"type": "array", "items": {"$ref": "#/components/schemas/ContractNegotiation"}},
    "NegotiationState": {
        "type": "object",
        "required": ["state"],
        "properties": {"@type": {"const": "NegotiationState"}, "state": {"type": "string"}, "@context": _CONTEXT},
    },
    "ContractAgreement": {
        "type": "object",
        "required": ["@id", "assetId", "policy"],
        "properties": {
            "@id": {"type": "string"},
            "@type": {"const": "ContractAgreement"},
            "assetId": {"type": "string"},
            "providerId": {"type": "string"},
            "consumerId": {"type": "string"},
            "contractSigningDate": {"type": "integer", "description": "epoch seconds"},
            "policy": {"type": "object"},
            "@context": _CONTEXT,
        },
    },
    "ContractAgreementList": {"type": "array", "items": {"$ref": "#/components/schemas/ContractAgreement"}},
    "TerminateNegotiation": {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "@context": _CONTEXT,
            "@type": {"const": "TerminateNegotiation"},
            "reason": {"type": "string", "minLength": 1},
        },
    },
    "TransferRequest": {
        "type": "object",
        "required": ["counterPartyAddress", "contractId", "transferType"],
        "properties": {
            "@context": _CONTEXT,
            "@type": {"const": "TransferRequest"},
            "counterPartyAddress": {
                "type": "string",
                "pattern": DSP_ADDRESS,
                "description": "the provider's DSP base URL",
            },
            "contractId": {"type": "string", "minLength": 1, "description": "the agreement id"},
            "transferType": {"enum": ["HttpData-PULL", "HttpData-PUSH"]},
            "protocol": {"const": "dataspace-protocol-http:2025-1"},
            "counterPartyId": {
                "type": "string",
                "minLength": 1,
            },
            "dataDestination": {
                "type": "object",
                "description": "for HttpData-PUSH: {type: HttpData, baseUrl, authorization?, authType?}",
            },
        },
    },
    "TransferProcess": {
        "type": "object",
        "required": ["@id", "type", "state"],
        "properties": {
            "@id": {"type": "string"},
            "@type": {"const": "TransferProcess"},
            "type": {"enum": ["CONSUMER", "PROVIDER"]},
            "state": {"enum": ["INITIAL", "REQUESTED", "STARTED", "SUSPENDED", "COMPLETED", "TERMINATED"]},
            "stateTimestamp": {"type": "integer"},
            "contractId": {
                "type": "string",
                "minLength": 1,
            },
            "assetId": {"type": "string"},
            "transferType": {"type": "string"},
            "counterPartyId": {
                "type": "string",
                "minLength": 1,
            },
            "counterPartyAddress": {"type": "string", "pattern": DSP_ADDRESS, "minLength": 1},
            "correlationId": {"type": ["string", "null"]},
            "errorDetail": {"type": "string", "description": "why the transfer was terminated or suspended"},
            "createdAt": {"type": "integer"},
            "callbackAddresses": {"type": "array"},
            "protocol": {"type": "string"},
            "@context": _CONTEXT,
        },
    },
    "TransferProcessList": {"type": "array", "items": {"$ref": "#/components/schemas/TransferProcess"}},
    "TransferState": {
        "type": "object",
        "required": ["state"],
        "properties": {"@type": {"const": "TransferState"}, "state": {"type": "string"}, "@context": _CONTEXT},
    },
    "TerminateTransfer": {
        "type": "object",
        "required": ["reason"],
        "properties": {"@context": _CONTEXT, "@type": {"type": "string"}, "reason": {"type": "string", "minLength": 1}},
    },
    "EdrEntryList": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["@id", "transferProcessId", "agreementId"],
            "properties": {
                "@type": {"const": "EndpointDataReferenceEntry"},
                "@id": {"type": "string"},
                "transferProcessId": {"type": "string"},
                "agreementId": {"type": "string"},
                "contractNegotiationId": {"type": ["string", "null"]},
                "assetId": {"type": "string"},
                "providerId": {"type": "string"},
                "createdAt": {"type": "integer"},
                "@context": _CONTEXT,
            },
        },
    },
    "EdrDataAddress": {
        "type": "object",
        "required": ["endpoint", "authorization"],
        "description": "call GET <endpoint> with the header `Authorization: <authorization>`",
        "properties": {
            "@type": {"const": "DataAddress"},
            "type": {"type": "string"},
            "endpointType": {"type": "string"},
            "endpoint": {"type": "string"},
            "authorization": {"type": "string"},
            "authType": {"type": "string"},
            "expiresIn": {"type": "string"},
            "refreshToken": {"type": "string"},
            "refreshEndpoint": {"type": "string"},
            "refreshAudience": {"type": "string", "description": "the DID a refresh's authentication token is for"},
        },
    },
    "AccessLogList": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["at", "method", "path", "status", "bytes"],
            "properties": {
                "at": {"type": "integer", "description": "epoch milliseconds"},
                "transferProcessId": {"type": ["string", "null"]},
                "agreementId": {"type": ["string", "null"]},
                "consumerId": {"type": ["string", "null"]},
                "assetId": {"type": ["string", "null"]},
                "method": {"type": "string"},
                "path": {"type": "string"},
                "status": {"type": "integer"},
                "bytes": {"type": "integer"},
                "reason": {"type": ["string", "null"]},
            },
        },
    },
    "IdResponse": {
        "type": "object",
        "required": ["@id", "createdAt"],
        "properties": {
            "@type": {"const": "IdResponse"},
            "@id": {"type": "string"},
            "createdAt": {"type": "integer"},
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `errors` lists each problem the way EDC does",
        "required": ["title", "status", "detail", "errors"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "path": {"type": ["string", "null"]},
                        "invalidValue": {},
                    },
                },
            },
        },
    },
}


_ANY = {"type": "object", "additionalProperties": True}
_STORED: dict[str, Any] = {
    "type": "object",
    "required": ["id", "version", "batteryId", "passport", "publicUrl"],
    "properties": {
        "id": {"type": "string", "description": "the passport's unique identifier"},
        "version": {"type": "integer", "minimum": 1},
        "batteryId": {"type": "string"},
        "modelId": {"type": ["string", "null"]},
        "manufacturerId": {"type": ["string", "null"]},
        "category": {"type": ["string", "null"]},
        "sourceFormat": {"type": "string", "description": "node, catenax-6.0, catenax-6.1 or idta"},
        "createdAt": {"type": "integer"},
        "updatedAt": {"type": "integer"},
        "deleted": {"type": "boolean"},
        "publicUrl": {"type": "string", "description": "the public view, what the battery's QR code points to"},
        "passport": {"type": "object", "description": "the passport in the node's JSON (docs/passport-model.md)"},
    },
}
# What a reading tolerated (IDTA-02035's published bare lists, docs/passport-model.md): the record is stored.
_WARNINGS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["path", "message"],
        "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
    },
}
SCHEMAS.update(
    {
        "PassportInput": {
            "type": "object",
            "description": (
                "A passport in the node's JSON, a Catena-X BatteryPass 6.0/6.1 document, or "
                '{"idta": {<part>: <IDTA-02035 part>}}; the format is recognised (docs/passport-model.md)'
            ),
            "additionalProperties": True,
        },
        "StoredPassport": _STORED,
        "SavedPassport": {
            **_STORED,
            "required": [*_STORED["required"], "warnings"],
            "properties": {**_STORED["properties"], "warnings": _WARNINGS},
        },
        "PassportList": {
            "type": "object",
            "required": ["items", "next"],
            "properties": {
                "items": {"type": "array", "items": _STORED},
                "next": {"type": ["string", "null"], "description": "cursor of the next page; null at the end"},
            },
        },
        "PassportHistory": {
            "type": "object",
            "required": ["id", "versions"],
            "properties": {
                "id": {"type": "string"},
                "versions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["version", "recordedAt", "deleted"],
                        "properties": {
                            "version": {"type": "integer"},
                            "recordedAt": {"type": "integer"},
                            "deleted": {"type": "boolean"},
                            "digest": {"type": "string"},
                            "sourceFormat": {"type": "string"},
                            "changedBy": {
                                "type": ["string", "null"],
                                "description": "who recorded the version (docs/lifecycle.md); null before",
                            },
                            "changes": {
                                "type": ["array", "null"],
                                "items": {"type": "string"},
                                "description": "what the version changed, one line per field",
                            },
                            "passport": {"type": ["object", "null"]},
                        },
                    },
                },
            },
        },
        "PassportDocument": _ANY,
        "PassportImport": {
            "description": 'a JSON array of passports, or {"passports": [...]}; JSON Lines with application/x-ndjson',
            "oneOf": [
                {"type": "array", "items": {"$ref": "#/components/schemas/PassportInput"}},
                {
                    "type": "object",
                    "required": ["passports"],
                    "properties": {
                        "passports": {"type": "array", "items": {"$ref": "#/components/schemas/PassportInput"}}
                    },
                },
            ],
        },
        "ImportSummary": {
            "type": "object",
            "description": "new + changed + unchanged + refused == read",
            "required": ["read", "new", "changed", "unchanged", "refused", "refusals", "warnings"],
            "properties": {
                "source": {"type": ["string", "null"]},
                "resumedFrom": {"type": "integer"},
                "read": {"type": "integer", "description": "records read"},
                "new": {"type": "integer", "description": "passports stored for the first time"},
                "changed": {"type": "integer", "description": "passports stored as a new version"},
                "unchanged": {"type": "integer", "description": "records equal to the stored version"},
                "refused": {"type": "integer", "description": "records not stored, each in refusals"},
                "refusals": {
                    "type": "array",
                    "description": "the first 1000 refusals, in record order",
                    "items": {
                        "type": "object",
                        "properties": {
                            "position": {"type": "integer"},
                            "where": {"type": "string"},
                            "reason": {"type": "string", "minLength": 1},
                            "errors": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "path": {"type": ["string", "null"]},
                                        "message": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
                "warnings": {
                    "type": "array",
                    "description": "the first 1000 records stored with warnings, in record order",
                    "items": {
                        "type": "object",
                        "properties": {
                            "position": {"type": "integer"},
                            "where": {"type": "string"},
                            "warnings": _WARNINGS,
                        },
                    },
                },
                "seconds": {"type": "number"},
            },
        },
        "PublishInput": {
            "type": "object",
            "properties": {
                "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "levels": {"type": "array", "items": {"enum": ["public", "legitimate_interest", "authority"]}},
            },
        },
        "PassportLookup": {
            "type": "object",
            "description": "Whose passport and which battery: `batteryId` (the global asset id) or `specificAssetIds`, "
            "or both (every one must match). Without `level`, the best level the partner offers this node is read.",
            "required": ["partner"],
            "anyOf": [{"required": ["batteryId"]}, {"required": ["specificAssetIds"]}],
            "properties": {
                "partner": {
                    "type": "string",
                    "pattern": _NOT_BLANK,
                    "description": "The partner's DID, BPN (BPNL...) or DSP address",
                },
                "batteryId": {"type": "string", "pattern": _NOT_BLANK, "maxLength": 2048},
                "specificAssetIds": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 20,
                    "items": {
                        "type": "object",
                        "required": ["name", "value"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "value": {"type": "string", "minLength": 1},
                        },
                    },
                },
                "level": {"enum": ["public", "legitimate_interest", "authority"]},
                "semanticId": {
                    "type": "string",
                    "minLength": 1,
                    "default": "urn:samm:io.catenax.battery.battery_pass:6.1.0#BatteryPass",
                },
            },
        },
        "PassportLookupResult": {
            "type": "object",
            "required": ["passport", "source", "elapsedMs"],
            "properties": {
                "passport": {"description": "The submodel's value as the partner's data plane answered it"},
                "source": {
                    "type": "object",
                    "properties": {
                        "partner": {"type": "string", "description": "The partner's DID"},
                        "bpn": {"type": ["string", "null"]},
                        "dspAddress": {"type": "string"},
                        "registry": {
                            "type": "object",
                            "properties": {"asset": {"type": "string"}, "agreement": {"type": "string"}},
                        },
                        "shell": {"type": "string"},
                        "globalAssetId": {"type": ["string", "null"]},
                        "semanticId": {"type": "string"},
                        "href": {"type": "string"},
                        "asset": {"type": "string", "description": "The submodel asset negotiated"},
                        "agreement": {"type": "string", "description": "The agreement the passport was read under"},
                        "level": {"type": ["string", "null"], "description": "The access level of that asset"},
                    },
                },
                "elapsedMs": {
                    "type": "object",
                    "description": "Milliseconds per step: partner, registry, registry-access, shell, submodel, "
                    "submodel-access, passport",
                    "additionalProperties": {"type": "number"},
                },
            },
        },
        "Published": {
            "type": "object",
            "description": "What publishing made: the passport datasets, and once the Digital Twin Registry's asset "
            "and its submodel assets (docs/registry.md), with their policies and contract definitions.",
            "required": ["assets", "policyDefinitions", "contractDefinitions"],
            "properties": {
                "assets": {"type": "array", "items": {"type": "string"}},
                "policyDefinitions": {"type": "array", "items": {"type": "string"}},
                "contractDefinitions": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
)

_PARTICIPANT = {
    "type": "object",
    "required": ["id", "participant", "origin", "datasets", "stale"],
    "properties": {
        "id": {"type": "string"},
        "participant": {"type": "string", "description": "as given: a DID, a BPN or a DSP address"},
        "origin": {"enum": ["api", "file"]},
        "did": {"type": ["string", "null"]},
        "dspAddress": {"type": ["string", "null"]},
        "addedAt": {"type": "integer"},
        "lastAttemptAt": {"type": ["integer", "null"]},
        "lastSuccessAt": {"type": ["integer", "null"]},
        "datasets": {"type": "integer"},
        "passports": {"type": "integer"},
        "stale": {"type": "boolean", "description": "the entry is not from the latest attempt, or is old"},
        "ageSeconds": {"type": ["integer", "null"], "description": "age of the entry (since the last good crawl)"},
        "expiredAt": {"type": ["integer", "null"]},
        "lastError": {"type": ["string", "null"]},
        "crawls": {"type": "array", "items": {"$ref": "#/components/schemas/FederationCrawl"}},
        "crawl": {"$ref": "#/components/schemas/FederationCrawl"},
    },
}
SCHEMAS.update(
    {
        "FederationParticipantInput": {
            "type": "object",
            "required": ["participant"],
            "properties": {
                "participant": {
                    "type": "string",
                    # What services.federation reads: a DID, a BPN (BPNL...) or an http(s) DSP address.
                    "pattern": r"^\s*(did:|https?://[^\s/]|[Bb][Pp][Nn][Ll])",
                    "maxLength": 1000,
                    "description": "a DID, a BPN (BPNL...) or a DSP address",
                }
            },
        },
        "FederationParticipant": _PARTICIPANT,
        "FederationParticipantList": {"type": "array", "items": _PARTICIPANT},
        "FederationCrawl": {
            "type": "object",
            "properties": {
                "runKey": {"type": "string"},
                "participantId": {"type": "string"},
                "startedAt": {"type": "integer"},
                "finishedAt": {"type": ["integer", "null"]},
                "outcome": {"enum": ["running", "succeeded", "failed"]},
                "error": {"type": ["string", "null"]},
                "datasets": {"type": ["integer", "null"]},
                "appeared": {"type": "array", "items": {"type": "string"}, "description": "at most 1000 listed"},
                "disappeared": {"type": "array", "items": {"type": "string"}},
                "appearedCount": {"type": "integer"},
                "disappearedCount": {"type": "integer"},
            },
        },
        "FederationDatasetList": {
            "type": "object",
            "required": ["datasets", "next"],
            "properties": {
                "datasets": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "participantId": {"type": "string"},
                            "provider": {"type": "string"},
                            "dspAddress": {"type": ["string", "null"]},
                            "title": {"type": ["string", "null"]},
                            "keywords": {"type": "array", "items": {"type": "string"}},
                            "batteryCategory": {"type": ["string", "null"]},
                            "chemistry": {"type": ["string", "null"]},
                            "model": {"type": ["string", "null"]},
                            "accessLevel": {"type": ["string", "null"]},
                            "assetType": {"type": ["string", "null"]},
                            "stale": {"type": ["boolean", "null"]},
                            "dataset": {"type": "object", "description": "the dataset as crawled (JSON-LD)"},
                        },
                    },
                },
                "next": {"type": ["string", "null"], "description": "the cursor of the next page"},
            },
        },
        "FederatedCatalogs": {
            "type": "array",
            "description": (
                "EDC's federated catalog answer: one dcat:Catalog per crawled participant with a good entry, paged "
                "by the QuerySpec's offset and limit; its filterExpression applies to each dataset (a catalog "
                "with none selected is left out) and its sortField orders each catalog's datasets "
                "(docs/federation.md)"
            ),
            "items": {"type": "object"},
        },
    }
)

# A battery's life across nodes (docs/lifecycle.md).
_LINK = {
    "type": "object",
    "required": ["passportId"],
    "properties": {
        "passportId": {"type": "string"},
        "node": {"type": ["string", "null"], "description": "the DID of the node that holds it"},
        "dspAddress": {"type": ["string", "null"]},
        "bpn": {"type": ["string", "null"]},
        "at": {"type": ["integer", "null"]},
    },
}
_CHAIN_PART = {
    "type": "object",
    "description": "The chain's public part, also in the public view (`lifecycle`)",
    "properties": {
        "predecessors": {"type": "array", "items": _LINK},
        "successors": {"type": "array", "items": _LINK},
        "superseded": {"type": "boolean"},
        "supersededAt": {"type": ["string", "null"]},
        "operator": {"type": ["string", "null"]},
        "node": {"type": "string"},
        "components": {"type": "array", "items": _LINK},
        "partOf": {"type": "array", "items": _LINK},
        "recoveredMaterials": {"type": "array", "items": {"type": "object"}},
    },
}
_NOTIFICATION = {
    "type": "object",
    "required": ["messageId", "direction", "partner", "context", "state"],
    "properties": {
        "messageId": {"type": "string"},
        "direction": {"enum": ["in", "out"]},
        "partner": {"type": "string", "description": "the sender's (in) or receiver's (out) DID"},
        "context": {"type": "string"},
        "passportId": {"type": ["string", "null"]},
        "state": {
            "enum": ["received", "applied", "ignored", "pending", "delivered", "failed"],
            "description": "in: received, applied or ignored; out: pending, delivered or failed (reason says why)",
        },
        "reason": {"type": ["string", "null"]},
        "createdAt": {"type": "integer"},
        "updatedAt": {"type": "integer"},
        "message": {
            "type": "object",
            "description": "the Digital Twin Event (CX-0151): header {messageId, context, sentDateTime, senderBpn, "
            "receiverBpn, version} and content",
        },
    },
}
SCHEMAS.update(
    {
        "SuccessorInput": {
            "type": "object",
            "required": ["passport", "predecessors", "status", "operator"],
            "properties": {
                "passport": {"type": "object", "description": "the successor passport, in any supported format"},
                "predecessors": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "required": ["passportId"],
                        "properties": {
                            "passportId": {"type": "string", "pattern": _NOT_BLANK},
                            "partner": {
                                "type": "string",
                                "description": "the DID, BPN or DSP address of the node holding it; absent: this node",
                            },
                        },
                    },
                },
                "status": {"enum": ["repurposed", "reused", "remanufactured", "waste"]},
                "operator": {
                    "type": "string",
                    "pattern": _NOT_BLANK,
                    "description": "the economic operator now responsible (its BPN)",
                },
                "changedBy": {"type": "string"},
                "recoveredMaterials": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["material", "massKg"],
                        "properties": {"material": {"type": "string"}, "massKg": {"type": "number", "minimum": 0}},
                    },
                },
            },
        },
        "SuccessorPassport": {
            **_STORED,
            "properties": {**_STORED["properties"], "lifecycle": _CHAIN_PART},
        },
        "ComponentsInput": {
            "type": "object",
            "required": ["components"],
            "properties": {
                "components": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "required": ["passportId"],
                        "properties": {
                            "passportId": {"type": "string", "pattern": _NOT_BLANK},
                            "partner": {"type": "string"},
                        },
                    },
                },
                "changedBy": {"type": "string"},
            },
        },
        "PassportChainPart": _CHAIN_PART,
        "PassportChange": {
            "type": "object",
            "additionalProperties": False,
            "description": "a change sets condition fields or adds events (or both)",
            "anyOf": [
                {"required": ["condition"], "properties": {"condition": {"minProperties": 1}}},
                {"required": ["events"], "properties": {"events": {"minItems": 1}}},
            ],
            "properties": {
                "changedBy": {"type": "string", "description": "who records it (default: this node's BPN)"},
                "condition": {
                    "type": "object",
                    "description": "condition fields to set, by their node names (status, state_of_health_pct, "
                    "remaining_capacity_ah, ...)",
                },
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["event"],
                        "properties": {"event": {"type": "string"}, "at": {"type": "string"}},
                    },
                },
            },
        },
        "ChangedPassport": {
            **_STORED,
            "properties": {**_STORED["properties"], "changed": {"type": "boolean"}},
        },
        "PassportLifecycle": {
            "type": "object",
            "required": ["passportId", "chain", "complete"],
            "properties": {
                "passportId": {"type": "string"},
                "complete": {"type": "boolean", "description": "every passport of the chain was read"},
                "chain": {
                    "type": "array",
                    "description": "oldest first",
                    "items": {
                        "type": "object",
                        "required": ["passportId", "node", "readable", "level"],
                        "properties": {
                            "passportId": {"type": "string"},
                            "batteryId": {"type": ["string", "null"]},
                            "node": {"type": "string"},
                            "status": {"type": ["string", "null"]},
                            "operator": {"type": ["string", "null"]},
                            "superseded": {"type": ["boolean", "null"]},
                            "readable": {"type": "boolean"},
                            "level": {
                                "type": ["string", "null"],
                                "description": "owner (this node holds it), authority, legitimate_interest or public",
                            },
                            "reason": {"type": "string", "description": "why it could not be read (better)"},
                            "predecessors": {"type": "array", "items": {"type": "string"}},
                            "successors": {"type": "array", "items": {"type": "string"}},
                            "components": {"type": "array", "items": {"type": "string"}},
                            "partOf": {"type": "array", "items": {"type": "string"}},
                            "recoveredMaterials": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
        "NotificationList": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": _NOTIFICATION}},
        },
        "Notification": _NOTIFICATION,
    }
)

# Management API v4: the JSON Schemas every v4 body is checked against (connector/management/schemas.py).
SCHEMAS.update(v4_schemas.components())

# v3 bodies whose schema is named apart from their EDC type.
_V3_BODIES = {
    "Asset": "AssetInput",
    "PolicyDefinition": "PolicyDefinitionInput",
    "ContractDefinition": "ContractDefinitionInput",
    "SuspendTransfer": "TerminateTransfer",
}


def body_schema(body: str, version: str) -> str:
    """Return the name of the schema of an EDC body type (Asset, QuerySpec, ...) in one API version."""
    if version == "v4":
        return v4_schemas.PREFIX + body
    return _V3_BODIES.get(body, body)


_COUNT = {"type": "integer", "minimum": 0}
_SYNC_JOB_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "maxLength": 128, "description": "letters, digits, -, _ and .; made up when left out"},
    "partnerAddress": {"type": "string", "format": "uri", "description": "the partner's DSP address"},
    "partnerId": {"type": ["string", "null"], "description": "the partner's DID or BPN (asked of it when left out)"},
    "datasets": {
        "type": "array",
        "items": {"type": "string"},
        "description": "dataset ids; none: every passport dataset",
    },
    "datasetFilter": {"type": "array", "items": _CRITERION, "description": "criteria on the partner's catalog"},
    "schedule": {"type": "string", "examples": ["PT15M", "0 2 * * *"], "description": "ISO 8601 interval or cron"},
    "timeZone": {"type": "string", "examples": ["UTC", "Europe/Berlin"], "description": "the cron expression's"},
    "destination": {
        "type": "object",
        "properties": {
            "type": {"enum": ["store", "folder", "http"]},
            "path": {"type": "string", "description": "folder: where the JSON Lines files go"},
            "url": {"type": "string", "description": "http: where each page is POSTed"},
            "headers": {"type": "object", "description": "http: sent with each page; shown as ***"},
        },
    },
    "state": {"enum": ["ACTIVE", "PAUSED"]},
    "mode": {
        "enum": ["auto", "feed", "registry"],
        "description": "feed: the partner's change feed; registry: its DTR by createdAfter (CX-0160); auto: feed if offered",
    },
}

SYNC_SCHEMAS: dict[str, Any] = {
    "SyncJobInput": {"type": "object", "required": ["partnerAddress"], "properties": _SYNC_JOB_PROPERTIES},
    "SyncJob": {
        "type": "object",
        "required": ["id", "partnerAddress", "schedule", "timeZone", "destination", "state"],
        "properties": {**_SYNC_JOB_PROPERTIES, "createdAt": {"type": "integer"}, "updatedAt": {"type": "integer"}},
    },
    "SyncJobList": {"type": "array", "items": {"$ref": "#/components/schemas/SyncJob"}},
    "SyncRun": {
        "type": "object",
        "required": ["id", "jobId", "state", "startedAt"],
        "properties": {
            "id": {"type": "string"},
            "jobId": {"type": "string"},
            "runKey": {
                "type": "string",
                "description": "the schedule's period (UTC fire time), manual:<id>, or event:<messageId> for a run "
                "a Digital Twin Event about a passport the job holds started",
            },
            "trigger": {"enum": ["schedule", "manual", "event"], "description": "why the run started"},
            "state": {"enum": ["RUNNING", "SUCCEEDED", "FAILED"]},
            "startedAt": {"type": "integer"},
            "endedAt": {"type": ["integer", "null"]},
            "new": _COUNT,
            "changed": _COUNT,
            "unchanged": _COUNT,
            "removed": _COUNT,
            "refused": _COUNT,
            "refusals": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {},
                        "dataset": {"type": "string"},
                        "reason": {"type": "string", "minLength": 1},
                    },
                },
            },
            "bytes": _COUNT,
            "error": {"type": ["string", "null"]},
            "seconds": {"type": "object", "description": "time in network, store, validation, and total"},
        },
    },
    "SyncRunList": {"type": "array", "items": {"$ref": "#/components/schemas/SyncRun"}},
    "SyncedPassportList": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "source": {
                            "type": "object",
                            "description": "jobId, partnerId, datasetId, accessLevel, partnerVersion",
                        },
                        "deleted": {"type": "boolean"},
                        "syncedAt": {"type": "integer"},
                        "digest": {"type": "string"},
                        "passport": {"type": ["object", "null"]},
                    },
                },
            },
            "next": {"type": ["string", "null"]},
        },
    },
}

QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "offset": {"type": "integer", "minimum": 0, "maximum": 10**9},
    "wait": {"type": "boolean", "description": "answer at the end of the run, not at its start"},
    "batteryId": {"type": "string"},
    "modelId": {"type": "string"},
    "manufacturerId": {"type": "string"},
    "category": {"type": "string"},
    "changedSince": {
        "type": "integer",
        "minimum": 0,
        "maximum": 2**63 - 1,  # the database's integers
        "description": "only passports changed after (ms since epoch)",
    },
    "cursor": {
        "type": "string",
        "maxLength": 4096,
        "description": (
            "opaque: the `next` of the previous page, passed back unchanged (empty or absent: the first page); "
            "a cursor this node did not issue is answered 400 (problem+json, path `cursor`)"
        ),
    },
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    "limit:notifications": {"type": "integer", "minimum": 1, "maximum": 500},
    "includeDeleted": {"type": "boolean"},
    "direction": {"enum": ["in", "out"], "description": "notifications received (in) or sent (out)"},
    "passportId": {"type": "string", "description": "only the notifications about this passport"},
    "format": {"enum": ["node", "catenax", "idta"]},
    "format:view": {"enum": ["node", "catenax"]},
    "level": {"enum": ["public", "legitimate_interest", "authority"]},
    "provider": {"type": "string", "description": "a participant id or the provider's DID"},
    "batteryCategory": {"type": "string"},
    "chemistry": {"type": "string"},
    "model": {"type": "string"},
    "accessLevel": {"type": "string"},
    "assetType": {"type": "string", "description": "a dct:type IRI, or a short name such as DigitalTwinRegistry"},
    "q": {
        "type": "string",
        "description": "words that must each begin a word of the title or keywords (q=passp finds passport)",
    },
    "auto_refresh": {
        "type": "boolean",
        "description": "refresh the tokens first when the access token has (nearly) expired",
    },
}


_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_WHOLE = re.compile(r"^-?[0-9]{1,30}$")


def _query_value(raw: str, schema: dict[str, Any]) -> Any:
    """Read a query string value as the type its schema names (a value that is not one stays a string)."""
    kind = schema.get("type")
    if kind == "integer" and _WHOLE.match(raw):
        return int(raw)
    if kind == "boolean" and raw.lower() in _BOOLEANS:
        return _BOOLEANS[raw.lower()]
    return raw


def check_query(keys: Iterable[str], query: MultiMapping[str]) -> list[Problem]:
    """Check a request's query parameters against the schemas the document shows for them (QUERY_PARAMETERS).

    The document and the check are one table, so a value the document allows is never refused here and one it
    refuses never reaches the handler; each problem names its parameter.
    """
    problems: list[Problem] = []
    for key in keys:
        name = key.split(":", 1)[0]
        for raw in query.getall(name, []):
            schema = QUERY_PARAMETERS[key]
            found = v4_schemas.check_value(_query_value(raw, schema), schema, name)
            if found and schema.get("type") == "integer" and "minimum" in schema and "maximum" in schema:
                # One message for every way a bounded integer can be wrong: it says what is wanted.
                found = [Problem(f"{name} must be an integer from {schema['minimum']} to {schema['maximum']}", name)]
            # The value shown is the text sent (cut short), never the number read from it (it may be huge).
            problems += [Problem(p.message, p.path, raw[:50]) for p in found]
    return problems


#: Answers that are not JSON: the metrics (Prometheus' text format) and the API browser's page and assets.
NOT_JSON = {
    "/metrics": "text/plain",
    "/management/docs": "text/html",
    "/management/docs/swagger-ui-bundle.js": "application/javascript",
    "/management/docs/swagger-ui.css": "text/css",
}


class _Route(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def request(self) -> str | None: ...
    @property
    def response(self) -> str | None: ...
    @property
    def status(self) -> int: ...


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def document(
    routes: Iterable[_Route], secured: bool = True, open_paths: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Return the OpenAPI document describing every route (`secured`: the node requires X-Api-Key, except on
    `open_paths`)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.method.lower()}{route.path.replace('/', '_').replace('{', '').replace('}', '')}",
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in ("id",)
            if "{" + name + "}" in route.path
        ]
        # A query entry "name:variant" is the parameter `name` with the schema QUERY_PARAMETERS["name:variant"]
        # (one name, another set of values on another route: a view's format is node or catenax only).
        parameters += [
            {"name": key.split(":", 1)[0], "in": "query", "required": False, "schema": QUERY_PARAMETERS[key]}
            for key in getattr(route, "query", ())
        ]
        if parameters:
            operation["parameters"] = parameters
        if route.path in open_paths:
            operation["security"] = []  # answered without X-Api-Key
        if route.request is not None:
            operation["requestBody"] = {
                # Only a QuerySpec may be left out (its defaults apply); every other body is required.
                "required": not route.request.endswith("QuerySpec"),
                "content": {
                    "application/json": {"schema": _ref(route.request)},
                    **{kind: {"schema": {"type": "string"}} for kind in getattr(route, "body_types", ())},
                },
            }
        ok: dict[str, Any] = {"description": "OK" if route.status == 200 else "Done, no content"}
        if route.response is not None:
            ok["content"] = {"application/json": {"schema": _ref(route.response)}}
        elif route.path in NOT_JSON:
            ok["content"] = {NOT_JSON[route.path]: {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {str(route.status): ok}
        for status, description in getattr(route, "statuses", ()):
            # Another answer of success with the same body (a run answers 202 while it goes, 200 with wait=true).
            responses[str(status)] = {**ok, "description": description}
        if route.path == "/metrics" and secured:
            responses["401"] = _problem("missing or wrong X-Api-Key")
        if route.path.startswith(("/management/v3", "/management/v4", "/management/v1", "/api/catalog/")):
            if secured:
                responses["401"] = _problem("missing or wrong X-Api-Key")
            if route.request is not None or tuple(getattr(route, "query", ())):
                responses["400"] = _problem("invalid body or parameter; every problem is listed with its path")
                responses["413"] = _problem("body larger than CONNECTOR_MAX_BODY_BYTES")
            # The browser guard (docs/security.md): a foreign Host, a foreign Origin, a body that is not JSON.
            responses["403"] = _problem("the Origin (or Sec-Fetch-Site) names another web origin")
            responses["421"] = _problem("the Host is not loopback nor in CONNECTOR_MANAGEMENT_HOSTNAMES")
            if route.method in ("POST", "PUT", "PATCH", "DELETE"):
                responses["415"] = _problem("a body whose Content-Type is not JSON")
            if "{id}" in route.path or route.method == "PUT":
                responses["404"] = _problem("no object with this id")
            if route.method in ("POST", "DELETE") and not route.path.endswith("/request"):
                responses["409"] = _problem("duplicate id, or the object is still referenced")
            if route.path.endswith("/export"):
                responses["422"] = _problem("the format requires a value the passport lacks; every path is listed")
            if route.path.endswith("/approve"):
                responses["400"] = _problem("the negotiation is not waiting for approval")
            if route.path.endswith("/terminate"):
                responses["400"] = _problem("no reason given, or the negotiation has ended already")
        if "/catalog/" in route.path or route.path.endswith("/contractnegotiations"):
            responses["502"] = _problem("the peer answered with an error or could not be reached")
            responses["504"] = _problem("the peer did not answer in time")
        if route.path == "/ready":
            responses["503"] = _problem("the database cannot be reached, or a background loop has ended")
        operation["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Battery-passport connector: management API",
            "version": __version__,
            "description": (
                "Compatible with the Eclipse EDC Management API v3 and v4, served side by side by one "
                "implementation. v3 (/management/v3): JSON-LD in (compacted, with the EDC vocabulary "
                "https://w3id.org/edc/v0.0.1/ns/ as @context; a @context object without @vocab gets it), "
                "compacted JSON-LD out. v4 (/management/v4, EDC 0.18): every body is checked against its "
                "V4* schema first (an @context array containing https://w3id.org/edc/connector/management/v2, "
                "the @type of each object), and answers carry that context with plain terms and DSP-style "
                "policies. v4 has no EDR API: use /management/v3/edrs. "
                "Authenticate with the X-Api-Key header when the node has CONNECTOR_API_KEY set."
            ),
        },
        "components": {
            "schemas": {**SCHEMAS, **SYNC_SCHEMAS},
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
        },
        "security": [{"ApiKey": []}] if secured else [],
        "paths": paths,
    }
