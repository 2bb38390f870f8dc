"""The DSP conformance test mode: what the Eclipse DSP TCK expects of a connector under test.

The TCK cannot tell a connector what to do next, so a connector under test reacts to fixed dataset ids
with fixed scripts (send an offer, then terminate; accept; stay passive...). This module holds that
script, the seed data the TCK's cases name (datasets ACN0101..., offers `CD123:<dataset>:456`,
catalog datasets CAT0101/CAT0102, FINALIZED agreements ATP0101... with the TCK as consumer), and the
static authentication the TCK uses (one configured
Authorization header). It is wired in only with CONNECTOR_TCK_MODE=true; see docs/conformance.md.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Protocol

from catalog.offers import parse_offer_id
from connector.domain.assets import Asset, ContractDefinition, Criterion, DataAddress, PolicyDefinition
from connector.domain.errors import Conflict
from connector.domain.participants import Participant, TokenUse
from connector.services.offers import AssetService, ContractDefinitionService, PolicyDefinitionService
from connector.services.reactions import Act, Step
from connector.store import Store
from connector.store.negotiations import Agreement

log = logging.getLogger("connector.tck")

TCK_PARTICIPANT = "TCK_PARTICIPANT"
TCK_DEFINITION = "CD123"
TCK_POLICY = "tck-use"
ODRL = "http://www.w3.org/ns/odrl/2/"
EDC = "https://w3id.org/edc/v0.0.1/ns/"

# Provider negotiation cases (CN:xx-yy use dataset ACNxxyy) and consumer cases (CN_C:xx-yy use ACNCxxyy).
PROVIDER_DATASETS = tuple(
    f"ACN{n}" for n in ("0101", "0102", "0103", "0104", "0201", "0202", "0203", "0204", "0205", "0206", "0207")
) + tuple(f"ACN030{n}" for n in range(1, 5))
CATALOG_DATASETS = ("CAT0101", "CAT0102")
# Provider transfer cases (TP:xx-yy use agreement ATPxxyy), which must find a FINALIZED agreement.
TRANSFER_AGREEMENTS = (
    tuple(f"ATP010{n}" for n in range(1, 6))
    + tuple(f"ATP020{n}" for n in range(1, 6))
    + tuple(f"ATP030{n}" for n in range(1, 7))
)
TRANSFER_DATASET = "ACN0101"


def _for(act: Act, *datasets: str) -> dict[str, Act]:
    return dict.fromkeys(datasets, act)


SCRIPT: Mapping[Step, Mapping[str, Act]] = {
    Step.ON_REQUEST: {
        **_for(
            Act.OFFER,
            "ACN0101",
            "ACN0102",
            "ACN0103",
            "ACN0204",
            "ACN0205",
            "ACN0206",
            "ACN0302",
            "ACN0303",
            "ACN0304",
        ),
        **_for(Act.AGREE, "ACN0104", "ACN0203", "ACN0207", "ACN0301"),
        **_for(Act.TERMINATE, "ACN0201"),
        **_for(Act.NOTHING, "ACN0202"),
    },
    Step.AFTER_OFFER: _for(Act.TERMINATE, "ACN0205"),
    Step.ON_COUNTER_REQUEST: {**_for(Act.TERMINATE, "ACN0102"), **_for(Act.NOTHING, "ACN0304")},
    Step.ON_ACCEPTED: {
        **_for(Act.AGREE, "ACN0103"),
        **_for(Act.TERMINATE, "ACN0206"),
        **_for(Act.NOTHING, "ACN0303"),
    },
    Step.ON_VERIFICATION: {**_for(Act.FINALIZE, "ACN0103", "ACN0104", "ACN0301"), **_for(Act.TERMINATE, "ACN0207")},
    Step.ON_OFFER: {
        **_for(Act.ACCEPT, "ACNC0101", "ACNC0205", "ACNC0304", "ACNC0305", "ACNC0306"),
        **_for(Act.COUNTER, "ACNC0102"),
        **_for(Act.TERMINATE, "ACNC0103"),
        **_for(Act.NOTHING, "ACNC0204", "ACNC0302", "ACNC0303"),
    },
    Step.AFTER_REQUEST: _for(Act.TERMINATE, "ACNC0202"),
    Step.ON_AGREEMENT: {
        **_for(Act.VERIFY, "ACNC0101", "ACNC0104", "ACNC0206"),
        **_for(Act.TERMINATE, "ACNC0203"),
        **_for(Act.NOTHING, "ACNC0306"),
    },
    # Transfers, keyed by agreement id: provider cases ATP..., consumer cases ATPC...
    Step.ON_TRANSFER_REQUEST: {
        **_for(Act.TERMINATE, "ATP0105"),
        **_for(Act.NOTHING, "ATP0205", "ATP0301", "ATP0302"),
    },
    Step.AFTER_TRANSFER_REQUEST: _for(Act.TERMINATE, "ATPC0205"),
    Step.AFTER_START: {
        **_for(Act.TERMINATE, "ATP0101", "ATPC0201"),
        **_for(Act.COMPLETE, "ATP0102", "ATPC0202"),
        **_for(Act.SUSPEND, "ATP0103", "ATP0104", "ATPC0203", "ATPC0204"),
    },
    Step.AFTER_SUSPENSION: {
        **_for(Act.TERMINATE, "ATP0103", "ATPC0203"),
        **_for(Act.START, "ATP0104", "ATPC0204"),
    },
    Step.AFTER_RESUME: _for(Act.COMPLETE, "ATP0104", "ATPC0204"),
}


class TckReactions:
    """The TCK's script; every dataset it does not name gets the production default."""

    # The TCK registers its handler for a follow-up only after it has seen the previous message.
    follow_up_delay_ms = 1000

    def __call__(self, step: Step, subject: str | None) -> Act:
        return SCRIPT.get(step, {}).get(subject or "", Act.DEFAULT)

    def offer_alias(self, offer_id: str) -> tuple[str, str] | None:
        """Read the TCK's offer ids, `<definition>:<dataset>:<anything>` in plain text (e.g. CD123:ACN0101:456)."""
        parts = offer_id.split(":")
        if parse_offer_id(offer_id) is None and len(parts) == 3 and all(parts):
            return parts[0], parts[1]
        return None


class Authenticates(Protocol):
    """The node's own authentication of DSP requests."""

    async def authenticate(self, authorization: str | None, read: bool = False, record: bool = True) -> Participant:
        """Return the verified participant or raise (`read`: the request changes nothing; with `record=False`,
        its token id unrecorded)."""
        ...

    async def record(self, use: TokenUse | None) -> None:
        """Remember a token id handed out unrecorded; raise if it was seen before."""
        ...


class TckAuthenticator:
    """Accepts the TCK's static Authorization header as TCK_PARTICIPANT; all else goes to the node's DCP check."""

    def __init__(self, token: str, fallback: Authenticates) -> None:
        self._token = token.encode()
        self._fallback = fallback

    async def authenticate(self, authorization: str | None, read: bool = False, record: bool = True) -> Participant:
        """Return TCK_PARTICIPANT for the configured header, else what the node's own authentication says."""
        if authorization is not None and hmac.compare_digest(authorization.encode(), self._token):
            return Participant(TCK_PARTICIPANT)
        return await self._fallback.authenticate(authorization, read=read, record=record)

    async def record(self, use: TokenUse | None) -> None:
        """Remember a token id the node's own authentication handed out unrecorded."""
        await self._fallback.record(use)


async def seed(
    assets: AssetService, policies: PolicyDefinitionService, contracts: ContractDefinitionService, now: int
) -> int:
    """Create the TCK's datasets, their policy and contract definition if absent; return how many were created."""
    created = 0
    use = {
        "@type": [ODRL + "Set"],
        ODRL + "permission": [{ODRL + "action": [{"@id": ODRL + "use"}]}],
    }
    try:
        await policies.create(PolicyDefinition(TCK_POLICY, use, {}, now))
        created += 1
    except Conflict:
        pass
    for dataset in (*PROVIDER_DATASETS, *CATALOG_DATASETS):
        try:
            await assets.create(
                Asset(
                    id=dataset,
                    properties={EDC + "id": dataset, EDC + "description": f"DSP TCK dataset {dataset}"},
                    private_properties={},
                    data_address=DataAddress("HttpData", {"baseUrl": f"https://example.com/tck/{dataset}"}),
                    created_at=now,
                )
            )
            created += 1
        except Conflict:
            pass
    selector = (Criterion(EDC + "id", "in", [*PROVIDER_DATASETS, *CATALOG_DATASETS]),)
    try:
        await contracts.create(ContractDefinition(TCK_DEFINITION, TCK_POLICY, TCK_POLICY, selector, {}, now))
        created += 1
    except Conflict:
        pass
    if created:
        log.info("conformance test data seeded", extra={"created": created})
    return created


async def seed_agreements(store: Store, provider_id: str, now: int) -> int:
    """Create the FINALIZED agreements the TCK's provider transfer cases name, if absent; return how many."""
    created = 0
    async with store.transaction() as tx:
        for agreement_id in TRANSFER_AGREEMENTS:
            if await tx.agreements.get(agreement_id) is not None:
                continue
            policy = {
                "@id": agreement_id,
                "@type": "Agreement",
                "target": TRANSFER_DATASET,
                "assigner": provider_id,
                "assignee": TCK_PARTICIPANT,
                "permission": [{"action": "use"}],
            }
            # No negotiation record: the TCK's agreements exist only as seed data, FINALIZED by definition.
            await tx.agreements.add(
                Agreement(agreement_id, "tck-seed", TRANSFER_DATASET, provider_id, TCK_PARTICIPANT, policy, now)
            )
            created += 1
    return created
