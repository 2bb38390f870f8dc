"""What a node does at each decision point of a negotiation or a transfer, and who decides it.

A production node always takes the default: the provider agrees when the consumer satisfies the policy
(or holds for the operator), the consumer accepts what it asked for and verifies the agreement. The DSP
conformance test mode replaces the defaults with the script the TCK expects of a connector under test,
keyed by dataset id for negotiations and by agreement id for transfers (see `connector.services.tck`).
The services never know which one they run with.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Step(StrEnum):
    """A decision point; the comment lists the acts it allows (DEFAULT is always allowed)."""

    # Provider.
    ON_REQUEST = "on-request"  # AGREE (default), OFFER, TERMINATE, NOTHING
    AFTER_OFFER = "after-offer"  # the consumer acknowledged our offer: NOTHING (default), TERMINATE
    ON_COUNTER_REQUEST = "on-counter-request"  # decide again (default), TERMINATE, NOTHING
    ON_ACCEPTED = "on-accepted"  # AGREE (default), TERMINATE, NOTHING
    ON_VERIFICATION = "on-verification"  # FINALIZE (default), TERMINATE
    # Consumer.
    AFTER_REQUEST = "after-request"  # the provider acknowledged our request: NOTHING (default), TERMINATE
    ON_OFFER = (
        "on-offer"  # ACCEPT when it is what we asked for, else hold (default); ACCEPT, COUNTER, TERMINATE, NOTHING
    )
    ON_AGREEMENT = "on-agreement"  # VERIFY (default), TERMINATE, NOTHING
    # Transfers (the subject is the agreement id). Provider:
    ON_TRANSFER_REQUEST = "on-transfer-request"  # START (default), TERMINATE, NOTHING
    # Either role, once the peer acknowledged our message or, for a consumer, once the provider started:
    # NOTHING (default), SUSPEND, START (resume), COMPLETE, TERMINATE.
    AFTER_TRANSFER_REQUEST = "after-transfer-request"  # consumer
    AFTER_START = "after-start"  # provider: our first start acknowledged; consumer: the provider started
    AFTER_SUSPENSION = "after-suspension"  # our suspension acknowledged
    AFTER_RESUME = "after-resume"  # our resuming start acknowledged


class Act(StrEnum):
    """What to do at a decision point."""

    DEFAULT = "default"
    AGREE = "agree"
    OFFER = "offer"
    ACCEPT = "accept"
    COUNTER = "counter"
    VERIFY = "verify"
    FINALIZE = "finalize"
    START = "start"
    SUSPEND = "suspend"
    COMPLETE = "complete"
    TERMINATE = "terminate"
    NOTHING = "nothing"


class Reactions(Protocol):
    """Chooses the act at a decision point for a subject (a negotiation's dataset, a transfer's agreement)."""

    #: Delay before a follow-up the node sends on its own after an acknowledgement (AFTER_* steps), in ms.
    follow_up_delay_ms: int

    def __call__(self, step: Step, subject: str | None) -> Act:
        """Return the act for this step."""
        ...

    def offer_alias(self, offer_id: str) -> tuple[str, str] | None:
        """Return (contract definition id, asset id) for an offer id this node did not issue, or None."""
        ...


class DefaultReactions:
    """A production node: always the default."""

    follow_up_delay_ms = 0

    def __call__(self, step: Step, subject: str | None) -> Act:
        return Act.DEFAULT

    def offer_alias(self, offer_id: str) -> tuple[str, str] | None:
        return None
