"""What every DSP 2025-1 message shares: the context, the type, and error bodies."""

from __future__ import annotations

from typing import Any

from connector.domain.errors import InvalidInput, Problem

DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
DSPACE = "https://w3id.org/dspace/2025/1/"


def check_message(body: Any, expected_type: str) -> None:
    """Check a message's @context (an array holding the DSP context) and @type."""
    if not isinstance(body, dict):
        raise InvalidInput(f"a {expected_type} must be a JSON object")
    context = body.get("@context")
    if not isinstance(context, list) or DSP_CONTEXT not in context:
        raise InvalidInput(
            f"@context must be an array containing {DSP_CONTEXT}",
            [Problem("missing DSP context", "@context", context)],
        )
    message_type = body.get("@type")
    if message_type not in (
        expected_type,
        "dspace:" + expected_type,
        "https://w3id.org/dspace/2025/1/" + expected_type,
    ):
        raise InvalidInput(
            f"@type must be {expected_type!r}, got {message_type!r}", [Problem("wrong @type", "@type", message_type)]
        )


def render_error(error_type: str, code: int, reasons: list[str], **pids: str) -> dict[str, Any]:
    """Render a DSP error body (CatalogError, ContractNegotiationError, TransferError)."""
    body: dict[str, Any] = {"@context": [DSP_CONTEXT], "@type": error_type, **pids, "code": str(code)}
    body["reason"] = reasons
    return body
