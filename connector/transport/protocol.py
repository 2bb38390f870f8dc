"""The protocol surface: DSP under /api/dsp, the data plane under /public, and /.well-known documents."""

from __future__ import annotations

from aiohttp import web

from connector.transport.http import MAX_BODY, MAX_DEPTH, json_response, request_context

DSP_ROOT = "/api/dsp"
DSP_VERSION = "2025-1"
DSP_BASE = f"{DSP_ROOT}/{DSP_VERSION}"

PARTICIPANT_ID: web.AppKey[str] = web.AppKey("participant_id", str)


def version_document(path: str, participant_id: str) -> dict[str, object]:
    """Return the DSP VersionResponse for a root; `path` is the 2025-1 base relative to that root."""
    entry: dict[str, object] = {
        "version": DSP_VERSION,
        "path": path,
        "binding": "HTTPS",
        "serviceId": participant_id,
    }
    if participant_id.startswith("did:web:"):
        entry["identifierType"] = "did:web"
    return {"protocolVersions": [entry]}


async def dspace_version_at_host_root(request: web.Request) -> web.Response:
    return json_response(version_document(DSP_BASE, request.app[PARTICIPANT_ID]))


async def dspace_version_at_dsp_root(request: web.Request) -> web.Response:
    # EDC looks for the document under its protocol base, and reads `path` relative to it.
    return json_response(version_document(f"/{DSP_VERSION}", request.app[PARTICIPANT_ID]))


def create_app(participant_id: str, max_body: int, max_depth: int) -> web.Application:
    """Build the protocol application."""
    app = web.Application(middlewares=[request_context], client_max_size=max_body)
    app[PARTICIPANT_ID] = participant_id
    app[MAX_BODY] = max_body
    app[MAX_DEPTH] = max_depth
    app.router.add_get("/.well-known/dspace-version", dspace_version_at_host_root)
    app.router.add_get(f"{DSP_ROOT}/.well-known/dspace-version", dspace_version_at_dsp_root)
    return app
