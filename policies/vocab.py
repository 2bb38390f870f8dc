"""Namespaces, ODRL 2.2 terms and the action hierarchy used by the policy engine.

Everything here is a fact taken from the ODRL 2.2 vocabulary (``ODRL22.ttl``), the DSP 2025-1 ODRL profile
context and the EDC/Tractus-X/Catena-X namespaces; it is declared once so that parsing, rendering and
evaluation agree on the same IRIs.
"""

from __future__ import annotations

from typing import Final

ODRL: Final = "http://www.w3.org/ns/odrl/2/"
XSD: Final = "http://www.w3.org/2001/XMLSchema#"
RDF: Final = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DCT: Final = "http://purl.org/dc/terms/"
EDC: Final = "https://w3id.org/edc/v0.0.1/ns/"
DSPACE: Final = "https://w3id.org/dspace/2025/1/"
#: The Catena-X policy namespace before 2025-9 (Tractus-X EDC up to 0.11; DSP 0.8 in 0.12 and 0.13).
CX_POLICY: Final = "https://w3id.org/catenax/policy/"
#: The Catena-X ODRL profile of 2025-9 (Tractus-X EDC 0.12 and 0.13 on DSP 2025-1).
CX_POLICY_2025: Final = "https://w3id.org/catenax/2025/9/policy/"
#: The namespace of the Catena-X credential types and their claims.
CX_CREDENTIALS: Final = "https://w3id.org/catenax/credentials/"
TX: Final = "https://w3id.org/tractusx/v0.0.1/ns/"
BPC: Final = "https://w3id.org/battery-passport-connector/ns/"

#: Prefixes understood in compact IRIs even when the document carries no ``@context`` for them.
DEFAULT_PREFIXES: Final[dict[str, str]] = {
    "odrl": ODRL,
    "xsd": XSD,
    "rdf": RDF,
    "dct": DCT,
    "edc": EDC,
    "dspace": DSPACE,
    # As the Catena-X context of 2025-9 defines it (the older namespace has no default prefix).
    "cx-policy": CX_POLICY_2025,
    "tx": TX,
    "bpc": BPC,
}

#: ``@context`` URLs whose term definitions the compacted-form parser knows. Anything else is refused:
#: the connector must expand such documents (with a local document loader) before handing them over.
KNOWN_CONTEXTS: Final[dict[str, str | None]] = {
    "http://www.w3.org/ns/odrl.jsonld": None,
    "https://www.w3.org/ns/odrl.jsonld": None,
    "https://w3id.org/dspace/2025/1/context.jsonld": None,
    "https://w3id.org/dspace/2025/1/odrl-profile.jsonld": None,
    # EDC's management context sets @vocab to the EDC namespace.
    "https://w3id.org/edc/connector/management/v0.0.1": EDC,
    "https://w3id.org/edc/connector/management/v2": EDC,
    # The Catena-X contexts of 2025-9: their terms are CX_POLICY_TERMS (context.jsonld) and ODRL's (odrl.jsonld).
    "https://w3id.org/catenax/2025/9/policy/context.jsonld": None,
    "https://w3id.org/catenax/2025/9/policy/odrl.jsonld": None,
}

#: The terms ``https://w3id.org/catenax/2025/9/policy/context.jsonld`` defines, each as ``cx-policy:<term>``.
CX_POLICY_TERMS: Final = (
    "access",
    "AffiliatesBpnl",
    "AffiliatesRegion",
    "BusinessPartnerGroup",
    "BusinessPartnerNumber",
    "ConfidentialInformationMeasures",
    "ConfidentialInformationSharing",
    "ContractReference",
    "ContractTermination",
    "DataFrequency",
    "DataProvisioningEndDate",
    "DataProvisioningEndDurationDays",
    "DataUsageEndDate",
    "DataUsageEndDurationDays",
    "DataUsageEndDefinition",
    "ExclusiveUsage",
    "FrameworkAgreement",
    "JurisdictionLocation",
    "JurisdictionLocationReference",
    "Liability",
    "Membership",
    "Precedence",
    "UsagePurpose",
    "UsageRestriction",
    "VersionChanges",
    "Warranty",
    "WarrantyDurationMonths",
    "WarrantyDefinition",
)

#: Term definitions of the known contexts that are not ODRL's own (read by the compacted-form parser).
CONTEXT_TERMS: Final[dict[str, dict[str, str]]] = {
    "https://w3id.org/catenax/2025/9/policy/context.jsonld": {t: CX_POLICY_2025 + t for t in CX_POLICY_TERMS},
}

POLICY_TYPES: Final = ("Set", "Offer", "Agreement", "Policy")
RULE_KINDS: Final = ("permission", "prohibition", "obligation")
LOGICAL_OPERATORS: Final = ("and", "or", "xone", "andSequence")

OPERATORS: Final = (
    "eq",
    "neq",
    "lt",
    "lteq",
    "gt",
    "gteq",
    "isA",
    "hasPart",
    "isPartOf",
    "isAllOf",
    "isAnyOf",
    "isNoneOf",
)
SCALAR_OPERATORS: Final = frozenset({"eq", "neq", "lt", "lteq", "gt", "gteq", "isA"})
ORDER_OPERATORS: Final = frozenset({"lt", "lteq", "gt", "gteq"})
SET_OPERATORS: Final = frozenset({"hasPart", "isPartOf", "isAllOf", "isAnyOf", "isNoneOf"})

#: ODRL 2.2 ``odrl:includedIn`` (child -> parent), from ODRL22.ttl. ``use`` and ``transfer`` are roots.
ACTION_PARENT: Final[dict[str, str | None]] = {
    "use": None,
    "transfer": None,
    "acceptTracking": "use",
    "aggregate": "use",
    "annotate": "use",
    "anonymize": "use",
    "archive": "use",
    "attribute": "use",
    "compensate": "use",
    "concurrentUse": "use",
    "delete": "use",
    "derive": "use",
    "digitize": "use",
    "display": "play",
    "distribute": "use",
    "ensureExclusivity": "use",
    "execute": "use",
    "extract": "reproduce",
    "give": "transfer",
    "grantUse": "use",
    "include": "use",
    "index": "use",
    "inform": "use",
    "install": "use",
    "modify": "use",
    "move": "use",
    "nextPolicy": "use",
    "obtainConsent": "use",
    "play": "use",
    "present": "use",
    "print": "use",
    "read": "use",
    "reproduce": "use",
    "reviewPolicy": "use",
    "sell": "transfer",
    "stream": "use",
    "synchronize": "use",
    "textToSpeech": "use",
    "transform": "use",
    "translate": "use",
    "uninstall": "use",
    "watermark": "use",
}

#: ODRL 2.2 left operands (common vocabulary). Only some have resolvers; the rest are known terms that the
#: parser expands but the default registry does not evaluate (so they are reported as unknown operands).
LEFT_OPERANDS: Final = (
    "absolutePosition",
    "absoluteSpatialPosition",
    "absoluteTemporalPosition",
    "absoluteSize",
    "count",
    "dateTime",
    "delayPeriod",
    "deliveryChannel",
    "device",
    "elapsedTime",
    "event",
    "fileFormat",
    "industry",
    "language",
    "media",
    "meteredTime",
    "payAmount",
    "percentage",
    "product",
    "purpose",
    "recipient",
    "relativePosition",
    "relativeSpatialPosition",
    "relativeTemporalPosition",
    "relativeSize",
    "resolution",
    "spatial",
    "spatialCoordinates",
    "system",
    "systemDevice",
    "timeInterval",
    "unitOfCount",
    "version",
    "virtualLocation",
)

#: Bare terms that name a value in the ODRL namespace when they appear in a vocabulary position
#: (``@type``, ``action``, ``operator``, ``leftOperand``), as the ODRL and DSP contexts define them.
ODRL_VALUE_TERMS: Final = frozenset(
    (
        *POLICY_TYPES,
        *("Permission", "Prohibition", "Duty", "Constraint", "LogicalConstraint", "Rule"),
        *ACTION_PARENT,
        *OPERATORS,
        *LEFT_OPERANDS,
        *LOGICAL_OPERATORS,
        *("prohibit", "perm", "invalid"),
    )
)

#: Bare property names that mean an ODRL property (the ODRL and DSP contexts map them into ``odrl:``).
ODRL_PROPERTY_TERMS: Final = frozenset(
    (
        "permission",
        "prohibition",
        "obligation",
        "duty",
        "action",
        "constraint",
        "leftOperand",
        "operator",
        "rightOperand",
        "rightOperandReference",
        "target",
        "assigner",
        "assignee",
        "profile",
        "consequence",
        "remedy",
        "refinement",
        "unit",
        "dataType",
        "status",
        "conflict",
        "inheritFrom",
        "partOf",
        "source",
        "function",
        "relation",
        "failure",
        "uid",
        *LOGICAL_OPERATORS,
    )
)


def odrl(term: str) -> str:
    """Return the full ODRL IRI of a local term."""
    return ODRL + term


def local(iri: str) -> str:
    """Return the ODRL local name of an IRI in the ODRL namespace, else the IRI unchanged."""
    return iri[len(ODRL) :] if iri.startswith(ODRL) else iri


def is_absolute_iri(value: str) -> bool:
    """Tell whether ``value`` looks like an absolute IRI (has a scheme)."""
    head, sep, _ = value.partition(":")
    return bool(sep) and head.isascii() and head[:1].isalpha() and all(c.isalnum() or c in "+-." for c in head)
